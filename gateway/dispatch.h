/*
 * dispatch.h - from a complete request to a backend slot.
 *
 * A request is placed in the first pool of its class (in the class's
 * preference order) that has a free slot, on that pool's least-loaded
 * backend.  When none has, it waits in its class's FIFO, bounded by the
 * class's max_queue (429 queue_full) and max_wait_ms (429 queue_timeout).
 * When a slot frees, waiting requests are placed in strict class order.
 *
 * This is where admission (tenants, buckets, fair queues) hooks in.
 */
#ifndef SLUICE_GATEWAY_DISPATCH_H
#define SLUICE_GATEWAY_DISPATCH_H

struct gw_conn;
struct gw_server;

/* c's request is complete: classify it and start it, queue it, or reject it. */
void gw_dispatch_request(struct gw_conn *c);

/* Slots may have freed: start waiting requests that can now be placed. */
void gw_dispatch_kick(struct gw_server *srv);

/* Remove a QUEUED connection from its queue (the client left). */
void gw_dispatch_withdraw(struct gw_conn *c);

/* A QUEUED connection's deadline passed: answer 429 queue_timeout. */
void gw_dispatch_expire(struct gw_conn *c);

/* Answer every queued request with `reason` (drain timeout). */
void gw_dispatch_flush(struct gw_server *srv);

#endif
