/*
 * dispatch.c - placing complete requests on backend slots; see dispatch.h.
 *
 * The class of a request comes from its x-sluice-class field when that
 * names a configured class, else it is `standard` (or the least urgent
 * configured class when there is no standard one).
 *
 * Waiting requests sit in one FIFO per class, linked through the
 * connections themselves (no allocation).  gw_dispatch_kick() visits the
 * classes in strict priority order and, inside a class, the oldest request
 * first; a request that fits none of its pools stays where it is, and the
 * scan of a class stops as soon as none of its pools has a free slot, so a
 * kick costs O(placed requests + classes).
 */
#include <stdio.h>

#include "backends/backend.h"
#include "gateway/conn.h"
#include "gateway/dispatch.h"
#include "gateway/log.h"
#include "gateway/proxy.h"
#include "gateway/server.h"

static int classify(const struct gw_conn *c)
{
	const struct conf *conf = c->srv->conf;
	const struct gw_field *f = gw_msg_field(&c->http.msg, "x-sluice-class");
	enum conf_class k;
	if (f != NULL && conf_class_parse(gw_field_value(&c->http.msg, f), f->value_len, &k) == 0 &&
	    conf->classes[k].defined)
		return (int)k;
	if (conf->classes[CONF_CLASS_STANDARD].defined)
		return CONF_CLASS_STANDARD;
	for (int i = CONF_CLASS_COUNT - 1; i >= 0; i--)
		if (conf->classes[i].defined)
			return i;
	return -1;
}

/* The backend for a request of class k, slot taken, or NULL. */
static struct backend *place(struct gw_server *srv, enum conf_class k)
{
	const struct conf_class_cfg *cc = &srv->conf->classes[k];
	for (size_t i = 0; i < cc->npools; i++) {
		struct backend *b = backend_pool_pick(&srv->backends.pools[cc->pools[i]]);
		if (b != NULL) {
			backend_acquire(b);
			return b;
		}
	}
	return NULL;
}

static bool class_has_room(struct gw_server *srv, enum conf_class k)
{
	const struct conf_class_cfg *cc = &srv->conf->classes[k];
	for (size_t i = 0; i < cc->npools; i++)
		if (backend_pool_free(&srv->backends.pools[cc->pools[i]]) > 0)
			return true;
	return false;
}

static void waitq_remove(struct gw_waitq *q, struct gw_conn *c)
{
	if (c->qprev != NULL)
		c->qprev->qnext = c->qnext;
	else
		q->head = c->qnext;
	if (c->qnext != NULL)
		c->qnext->qprev = c->qprev;
	else
		q->tail = c->qprev;
	c->qnext = c->qprev = NULL;
	q->count--;
}

void gw_dispatch_request(struct gw_conn *c)
{
	struct gw_server *srv = c->srv;
	int k = classify(c);
	if (k < 0) {
		gw_conn_reject(c, GW_R_NO_BACKEND, "no class is configured", NULL);
		return;
	}
	c->klass = (uint8_t)k;
	const struct conf_class_cfg *cc = &srv->conf->classes[k];
	struct gw_waitq *q = &srv->waitq[k];
	/* Requests already waiting in this class go first. */
	struct backend *b = q->count == 0 ? place(srv, (enum conf_class)k) : NULL;
	if (b != NULL) {
		gw_exchange_start(c, b);
		return;
	}
	if (q->count >= cc->max_queue) {
		char msg[128];
		snprintf(msg, sizeof(msg), "class '%s' has %u requests queued (max_queue)",
			 conf_class_name((enum conf_class)k), q->count);
		gw_conn_reject(c, GW_R_QUEUE_FULL, msg, NULL);
		return;
	}
	c->state = GW_CONN_QUEUED;
	c->qnext = NULL;
	c->qprev = q->tail;
	if (q->tail != NULL)
		q->tail->qnext = c;
	else
		q->head = c;
	q->tail = c;
	q->count++;
	gw_conn_arm(c, cc->max_wait_ms);
}

void gw_dispatch_kick(struct gw_server *srv)
{
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		struct gw_waitq *q = &srv->waitq[k];
		while (q->head != NULL && class_has_room(srv, (enum conf_class)k)) {
			struct gw_conn *c = q->head;
			struct backend *b = place(srv, (enum conf_class)k);
			if (b == NULL)
				break;
			waitq_remove(q, c);
			gw_exchange_start(c, b);
		}
	}
}

void gw_dispatch_withdraw(struct gw_conn *c)
{
	waitq_remove(&c->srv->waitq[c->klass], c);
}

void gw_dispatch_expire(struct gw_conn *c)
{
	char msg[128];
	gw_dispatch_withdraw(c);
	c->state = GW_CONN_BODY;	/* read, not queued: being answered */
	snprintf(msg, sizeof(msg), "no slot for class '%s' within %llu ms (max_wait_ms)",
		 conf_class_name((enum conf_class)c->klass),
		 (unsigned long long)c->srv->conf->classes[c->klass].max_wait_ms);
	gw_conn_reject(c, GW_R_QUEUE_TIMEOUT, msg, NULL);
}

void gw_dispatch_flush(struct gw_server *srv)
{
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		while (srv->waitq[k].head != NULL) {
			struct gw_conn *c = srv->waitq[k].head;
			waitq_remove(&srv->waitq[k], c);
			c->state = GW_CONN_BODY;
			gw_conn_reject(c, GW_R_SHUTTING_DOWN, "sluice is shutting down", NULL);
		}
	}
}
