/*
 * defer.c - the deferred-work list; see defer.h.
 *
 * A turn takes the whole list as one batch (moved under a local sentinel,
 * so that cancelling an entry of the batch still unlinks it in O(1)) and
 * runs it entry by entry.  Entries scheduled meanwhile go on the fresh
 * list, for the next turn.
 */
#include <stddef.h>

#include "gateway/defer.h"

void gw_defer_init(struct gw_defer *d, void (*fn)(struct gw_defer *d))
{
	d->next = d->prev = NULL;
	d->fn = fn;
}

static void link_tail(struct gw_defer *head, struct gw_defer *d)
{
	d->prev = head->prev;
	d->next = head;
	head->prev->next = d;
	head->prev = d;
}

void gw_defer_cancel(struct gw_defer *d)
{
	if (d->next == NULL)
		return;
	d->prev->next = d->next;
	d->next->prev = d->prev;
	d->next = d->prev = NULL;
}

static void on_idle(uv_idle_t *h)
{
	(void)h;	/* its being active is the point: the poll does not block */
}

static void on_check(uv_check_t *h)
{
	struct gw_defer_list *l = h->data;
	struct gw_defer batch;
	if (l->head.next == &l->head) {
		/* everything scheduled was cancelled meanwhile */
		uv_idle_stop(&l->idle);
		uv_check_stop(&l->check);
		return;
	}
	batch.next = l->head.next;
	batch.prev = l->head.prev;
	batch.next->prev = &batch;
	batch.prev->next = &batch;
	l->head.next = l->head.prev = &l->head;
	while (batch.next != &batch) {
		struct gw_defer *d = batch.next;
		gw_defer_cancel(d);
		d->fn(d);
	}
	if (l->head.next == &l->head) {
		uv_idle_stop(&l->idle);
		uv_check_stop(&l->check);
	}
}

void gw_defer_schedule(struct gw_defer_list *l, struct gw_defer *d)
{
	if (d->next != NULL)
		return;
	if (l->head.next == &l->head) {
		uv_idle_start(&l->idle, on_idle);
		uv_check_start(&l->check, on_check);
	}
	link_tail(&l->head, d);
}

int gw_defer_list_init(struct gw_defer_list *l, uv_loop_t *loop)
{
	l->head.next = l->head.prev = &l->head;
	l->head.fn = NULL;
	int rc = uv_idle_init(loop, &l->idle);
	if (rc == 0)
		rc = uv_check_init(loop, &l->check);
	l->idle.data = l->check.data = l;
	return rc;
}

void gw_defer_list_close(struct gw_defer_list *l)
{
	while (l->head.next != &l->head)
		gw_defer_cancel(l->head.next);
	uv_close((uv_handle_t *)&l->idle, NULL);
	uv_close((uv_handle_t *)&l->check, NULL);
}
