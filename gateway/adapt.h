/*
 * adapt.h - feeding each backend's slot controller (backends/adapt.h).
 *
 * For every pool whose `slots.adapt` is not off, one timer of the server
 * (every ADAPT_TICK_MS) walks the members: a backend whose interval_ms has
 * passed gets a step.  `vllm_metrics` first polls the backend's /metrics,
 * off the request path, on a connection of its own (like the active health
 * checks, gateway/health.c), and steps the controller with what it read
 * when the answer comes, or with nothing when the poll failed or timed out
 * (interval_ms).  `latency` steps on the first tokens that gateway/exchange.c
 * reported (gw__adapt_first_token()).  A step that moves the limit changes
 * the backend's share of slots at once (backends/pool.c), and the queues
 * learn the pool's new slot count; a limit below the requests in flight
 * only stops new ones until enough have finished.
 *
 * Log lines: one when a backend starts or stops adapting (start, reload,
 * a member that joins), one when its metrics stop answering (its slots are
 * held where they are) and one when they answer again.
 */
#ifndef SLUICE_GATEWAY_ADAPT_H
#define SLUICE_GATEWAY_ADAPT_H

#include <stdint.h>

#include "backends/backend.h"

struct gw_server;

#define GW_ADAPT_TICK_MS 50	/* the granularity of interval_ms */

/* Start the timer (at server start).  Returns 0 or a negative uv error. */
int gw__adapt_init(struct gw_server *srv);

/* Make every member follow its pool's `slots` section now (start, stop or
 * re-bound its controller): after a reload and as members join. */
void gw__adapt_sync(struct gw_server *srv);

/* End every poll and close the timer (the drain is over); the server's
 * state goes once libuv is done with it. */
void gw__adapt_stop(struct gw_server *srv);

/* A request to b had its first token `ns` nanoseconds after dispatch. */
void gw__adapt_first_token(struct backend *b, uint64_t ns);

#endif
