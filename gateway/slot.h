/*
 * slot.h - the slot ledger: one object per slot taken, given back once.
 *
 * A request in flight holds one slot of one backend.  Taking it counts it
 * in backends/ (the backend's and its pool's inflight: the ledger) and
 * tells queue/ which class holds it (for max_slot_share and min_share, and
 * how long it was held, for predicted waits) and which tenant (for the
 * tenant slot shares, queue/share.h).  The slot borrows its request's
 * reference to the tenant: a request holds it from admission to its end
 * (gw__conn_finish_request(), or its connection's close), and its exchange
 * gives the slot back before that, so a tenant a reload retires is still
 * there to get its slot back.  Giving it back undoes both,
 * exactly once: gw__slot_give() takes the caller's pointer and sets it to
 * NULL, so a second give is a NULL no-op instead of a double count.
 *
 * Giving a slot back never starts the request that will use it: it
 * schedules the server's queue kick (defer.h), which runs from the loop.
 *
 * The slots held are also listed per class (srv->held[k]), with the
 * connection whose request holds each: preemption looks for its victims
 * there (gateway/preempt.c), among the exchanges of the classes it may
 * end, without a walk of every connection.
 */
#ifndef SLUICE_GATEWAY_SLOT_H
#define SLUICE_GATEWAY_SLOT_H

#include <stdint.h>

#include "backends/backend.h"
#include "conf/conf.h"

#define GW_SLOT_MAGIC 0x534c4f54u	/* "SLOT" */

struct gw_conn;
struct gw_server;
struct queue_tenant;

struct gw_slot {
	uint32_t magic;
	uint8_t klass;			/* enum conf_class of the holder */
	struct queue_tenant *tenant;	/* the holder (its request's reference) */
	struct backend *backend;
	struct gw_conn *owner;		/* the connection whose request holds it */
	struct gw_slot *next, *prev;	/* in srv->held[klass] */
	uint64_t taken_ms;
};

/* Take a free slot of `b` (backend_pool_pick() chose it) for the request
 * of c (its tenant and class).  Returns 0 and sets *out, or -ENOMEM
 * (nothing taken). */
int gw__slot_take(struct gw_server *srv, struct backend *b, struct gw_conn *c, struct gw_slot **out);

/* Give the slot back and schedule the queue kick; *sp becomes NULL.  NULL
 * *sp is a no-op. */
void gw__slot_give(struct gw_server *srv, struct gw_slot **sp);

/* Tell the queues how many slots each pool has (after init and reloads). */
void gw__slot_sync_pools(struct gw_server *srv);

#endif
