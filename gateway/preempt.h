/*
 * preempt.h - carrying out preemption: ending opportunistic exchanges so
 * that interactive requests meet their deadlines.
 *
 * The policy (when a request would miss, which exchange is the victim, how
 * many a second) is queue/preempt.h, a pure function of facts and a clock.
 * This is the glue that gathers those facts from the queues, the pools
 * and the connections in flight, and ends the victim (exchange.h,
 * gw__exchange_preempt()).  It is asked at two moments:
 *   - at admission, by dispatch.c, for an interactive request the policy
 *     refused deadline_unmeetable: when a slot can be freed, the request is
 *     admitted again (it may then start on the freed slot, or wait behind
 *     the interactive requests already queued, which get it first);
 *   - from its own timer, armed at the judge point of each queued
 *     interactive request (half its wait budget), and again every
 *     GW_PREEMPT_RECHECK_MS while a request past that point still waits.
 *
 * A freed slot is not handed to one request directly: giving it back
 * schedules the queue kick, and the dispatch order gives a free slot to
 * the interactive class first.  A pass sees the pools as they were when
 * it began, so that each request past its judge point that finds no free
 * slot asks for a victim of its own: one preemption per waiting request,
 * within max_per_s.
 *
 * Nothing here starts a request or answers one but the victim, and ending
 * the victim never runs another request's code synchronously (its slot's
 * release only schedules the kick).  The timer is the server's, closed
 * with the dispatch machinery.
 */
#ifndef SLUICE_GATEWAY_PREEMPT_H
#define SLUICE_GATEWAY_PREEMPT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "queue/preempt.h"

/* How often a request past its judge point that could not preempt yet
 * (no victim, or the rate bound) is looked at again. */
#define GW_PREEMPT_RECHECK_MS 10

struct gw_server;
struct gw_conn;
struct queue_verdict;

struct gw_preempt {
	uv_timer_t timer;
	struct queue_preempt policy;
	uint64_t generation;		/* of the config the policy follows */
	uint64_t armed_ms;		/* when the timer fires; UINT64_MAX: not armed */
	struct queue_preempt_slot *slots;	/* scratch: candidates of one pass */
	struct gw_conn **owners;	/* their connections */
	size_t cap;
	uint64_t preempted;		/* exchanges ended, ever */
	uint64_t limited;		/* looks where max_per_s held one back (a metric) */
};

/* Set up srv->preempt (its timer on srv->loop).  Returns 0 or a uv error. */
int gw__preempt_init(struct gw_server *srv);

/* Close the timer and free the scratch (at shutdown). */
void gw__preempt_close(struct gw_server *srv);

/* A reload was applied: the policy follows it now; if it turned preemption
 * on, the requests already queued are looked at at once. */
void gw__preempt_reloaded(struct gw_server *srv);

/* c's request was queued: make sure it is looked at by its judge point. */
void gw__preempt_watch(struct gw_server *srv, const struct gw_conn *c);

/*
 * c's request was refused deadline_unmeetable (v): end one preemptible
 * exchange on a pool it may use, if the policy allows.  True when a slot
 * was freed (the caller admits the request again).
 */
bool gw__preempt_admission(struct gw_server *srv, struct gw_conn *c, const struct queue_verdict *v);

#endif
