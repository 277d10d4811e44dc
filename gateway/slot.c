/*
 * slot.c - the slot ledger; see slot.h.
 */
#include <errno.h>
#include <stdlib.h>

#include "gateway/conn.h"
#include "gateway/dispatch.h"
#include "gateway/server.h"
#include "gateway/slot.h"
#include "queue/share.h"
#include "queue/tenant.h"

int gw__slot_take(struct gw_server *srv, struct backend *b, struct gw_conn *c, struct gw_slot **out)
{
	struct gw_slot *s = malloc(sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	enum conf_class k = (enum conf_class)c->qi.klass;
	struct queue_tenant *t = c->qi.tenant;
	*s = (struct gw_slot){ .magic = GW_SLOT_MAGIC, .klass = (uint8_t)k, .backend = b, .tenant = t,
			       .owner = c, .next = srv->held[k], .taken_ms = gw_now_ms(srv) };
	if (s->next != NULL)
		s->next->prev = s;
	srv->held[k] = s;
	backend_acquire(b);
	queue_on_dispatch(&srv->queue, b->pool->index, k);
	queue_share_take(&srv->queue, t, b->pool->index, k, s->taken_ms);
	*out = s;
	return 0;
}

void gw__slot_give(struct gw_server *srv, struct gw_slot **sp)
{
	struct gw_slot *s = *sp;
	if (s == NULL)
		return;
	*sp = NULL;
	if (s->magic != GW_SLOT_MAGIC)
		abort();
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->held[s->klass] = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	/* Read before the release, which may free a retired backend and its
	 * retired pool.  A pool a reload removed is no longer in the queues:
	 * its slots were forgotten there with it. */
	size_t p = s->backend->pool->index;
	backend_release(s->backend);
	if (p != BACKEND_POOL_RETIRED) {
		uint64_t now = gw_now_ms(srv);
		queue_on_release(&srv->queue, p, (enum conf_class)s->klass, now - s->taken_ms);
		queue_share_give(&srv->queue, s->tenant, p, (enum conf_class)s->klass, now);
	}
	s->tenant = NULL;
	s->owner = NULL;
	s->magic = 0;
	free(s);
	gw__dispatch_kick(srv);
}

void gw__slot_sync_pools(struct gw_server *srv)
{
	for (size_t p = 0; p < srv->backends.npools; p++)
		queue_set_pool_slots(&srv->queue, p, srv->backends.pools[p]->slots);
}
