/*
 * dispatch.h - admission and dispatch: from a complete request to a slot.
 *
 * gw_dispatch_request() identifies the tenant, classifies the request,
 * charges the tenant's buckets, and then starts the request on a backend,
 * queues it in its class queue (queue/), or answers it with a structured
 * rejection.  Slots freed by gw_dispatch_release() go to queued requests in
 * the dispatch order of DESIGN.md.
 */
#ifndef SLUICE_GATEWAY_DISPATCH_H
#define SLUICE_GATEWAY_DISPATCH_H

#include <stdint.h>
#include <uv.h>

#include "gateway/buf.h"

struct backend;
struct gw_conn;
struct gw_server;

/* c's request is complete: admit it and start it, queue it, or reject it. */
void gw_dispatch_request(struct gw_conn *c);

/* Give back c's slot on b, held for held_ms, and let queued requests have it. */
void gw_dispatch_release(struct gw_conn *c, struct backend *b, uint64_t held_ms);

/* Slots may have freed: start queued requests that can now be placed. */
void gw_dispatch_kick(struct gw_server *srv);

/* Remove a QUEUED connection from its queue (the client left); its bucket
 * charges are given back, as it used nothing. */
void gw_dispatch_withdraw(struct gw_conn *c);

/* The server's queue timer: answer expired requests 429 queue_timeout. */
void gw_dispatch_on_deadline(uv_timer_t *t);

/* Answer every queued request 503 shutting_down (drain timeout). */
void gw_dispatch_flush(struct gw_server *srv);

/* Append the tenant's x-ratelimit-* headers (for limited buckets). */
void gw_dispatch_ratelimit_headers(const struct gw_conn *c, struct gw_buf *out);

/* The response reported `used_tokens`: correct the admission estimate. */
void gw_dispatch_reconcile(struct gw_conn *c, double used_tokens);

#endif
