/*
 * dispatch.h - from a complete request to a slot.
 *
 * gw__dispatch_request() carries out the verdict of the admission policy
 * (queue/admit.h) for a connection's request: it starts the request's
 * exchange on a slot, leaves it waiting in its class queue, or answers it.
 * Queued requests are started by the queue kick, which runs from the loop
 * (defer.h) after a slot is given back; deadlines are kept by one server
 * timer for the earliest of them.
 */
#ifndef SLUICE_GATEWAY_DISPATCH_H
#define SLUICE_GATEWAY_DISPATCH_H

#include <stdbool.h>

#include "queue/admit.h"

struct gw_conn;
struct gw_server;
struct queue_item;

/* Set up the queue timer and the kick.  Returns 0 or a negative uv error. */
int gw__dispatch_init(struct gw_server *srv);

/* Close the queue timer (at the end of a drain). */
void gw__dispatch_close(struct gw_server *srv);

/* c's request is complete: admit it and start it, queue it, or answer it. */
void gw__dispatch_request(struct gw_conn *c);

/* Slots may have freed: schedule the kick that starts queued requests.
 * Never starts anything before returning. */
void gw__dispatch_kick(struct gw_server *srv);

/*
 * c's request could not be sent to its backend (the connect failed or
 * timed out; no byte of it left sluice): start it on another healthy
 * backend of its class's pools, in the class's order, or put it back at
 * the head of its queue if they are all busy, keeping its deadline and its
 * charge.  Returns false, with nothing done, when no backend of those
 * pools is healthy: the caller answers the request.
 */
bool gw__dispatch_retry(struct gw_conn *c);

/*
 * After a reload: `gone` is a list that queue_reconfigure_pools() took off
 * the queues (linked through `next`): each is refunded and answered `why`,
 * QUEUE_R_NO_BACKEND (503: every pool it could use was removed) or
 * QUEUE_R_MODEL_NOT_FOUND (404: no pool of its class serves its model any
 * more).  The deadline timer is re-armed for what stays queued.
 */
void gw__dispatch_reconfigured(struct gw_server *srv, struct queue_item *gone, enum queue_reason why);

/* The client of a QUEUED connection left: off the queue, charges given back. */
void gw__dispatch_withdraw(struct gw_conn *c);

/* Answer every queued request 503 shutting_down (drain timeout). */
void gw__dispatch_flush(struct gw_server *srv);

/* The response reported `used` tokens: correct the admission estimate. */
void gw__dispatch_settle(struct gw_conn *c, double used);

#endif
