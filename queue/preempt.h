/*
 * preempt.h - which running exchange to end so that an interactive request
 * meets its deadline (docs: README, "Preemption").
 *
 * A class may let its work be preempted (`preemption: { enabled: true,
 * max_per_s: N }`; only opportunistic may, conf/preempt.h).  When an
 * interactive request would miss its deadline and no slot it may use is
 * free, the gateway ends the preemptible exchange that has run the shortest
 * time on one of the pools the request may use, and the freed slot goes to
 * the interactive queue (interactive is served first when a slot frees).
 *
 * "Would miss" is judged at two moments, both cheap and both before the
 * deadline, so that the freed slot still serves the request in time:
 *   - at admission, when the predicted start (queue_predicted_wait(), the
 *     estimate that refuses deadline_unmeetable) is past the deadline;
 *   - while it waits, once it has spent half of its wait budget (deadline
 *     minus enqueue time) without a slot: an interactive request is short,
 *     so a slot that frees by itself usually does so within the first
 *     half, which spares the preemption; the second half leaves more than
 *     enough time for the freed slot (an abort is immediate) to start it.
 *
 * The shortest-running exchange is the victim because it has the least
 * work to lose: its prompt was just read and little of its output was
 * produced.  Preemptions of a class are bounded by its max_per_s through a
 * token bucket (burst: one second's worth, at least one), so that a
 * misjudged burst can never turn into a stream of aborted batch work.
 *
 * Everything here is a function of its arguments and a clock in
 * milliseconds: the gateway collects the facts (gateway/preempt.c) and
 * carries out the verdict.
 */
#ifndef SLUICE_QUEUE_PREEMPT_H
#define SLUICE_QUEUE_PREEMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "queue/bucket.h"
#include "queue/queue.h"

/* The only class whose requests preempt. */
#define QUEUE_PREEMPTOR CONF_CLASS_INTERACTIVE

/* A slot held now by a running exchange. */
struct queue_preempt_slot {
	uint8_t klass;			/* enum conf_class of its holder */
	size_t pool;
	uint64_t started_ms;		/* when it took the slot */
};

/* A request that waits for a slot, or is being admitted. */
struct queue_preempt_need {
	uint8_t klass;
	uint64_t pools;			/* bit p: a slot of pool p would serve it */
	uint64_t enqueued_ms;		/* admission time */
	uint64_t deadline_ms;		/* it must start by then */
	uint64_t predicted_ms;		/* predicted start (absolute); 0: unknown */
	bool slot_free;			/* a slot of its pools that it may take is free */
};

/* Rate bounds, one bucket per class that may be preempted. */
struct queue_preempt {
	struct queue_bucket rate[CONF_CLASS_COUNT];
	bool any;			/* some class may be preempted */
};

/* Buckets from the config's preemption keys, full. */
void queue_preempt_init(struct queue_preempt *p, const struct conf *c, uint64_t now_ms);

/* A reload: new rates; a kept bucket keeps its level (capped). */
void queue_preempt_reconfigure(struct queue_preempt *p, const struct conf *c, uint64_t now_ms);

/* When a waiting request of the preempting class is judged (half its
 * budget spent); UINT64_MAX for a request of another class. */
uint64_t queue_preempt_judge_at(uint8_t klass, uint64_t enqueued_ms, uint64_t deadline_ms);

/* Would n miss its deadline, as judged at now_ms (see the top)? */
bool queue_preempt_would_miss(const struct queue_preempt_need *n, uint64_t now_ms);

/*
 * The slot to end for n: the index in s[0..ns) of the shortest-running
 * exchange of a class with preemption enabled on one of n's pools, or -1
 * when n is not of the preempting class, would not miss, has a free slot,
 * or there is no such exchange, or the victim's class has used up its
 * max_per_s (then *wait_ms, when not NULL, is the time until it may again;
 * otherwise it is left alone).  A slot returned is charged to its class's
 * bucket: the caller must end it.
 */
int queue_preempt_choose(struct queue_preempt *p, const struct conf *c, const struct queue_preempt_need *n,
			 const struct queue_preempt_slot *s, size_t ns, uint64_t now_ms, uint64_t *wait_ms);

/*
 * What a preempted request is charged in the end, given back to its
 * tenant's token bucket: produced output tokens (< 0 when nothing reached
 * the client, which makes it a request never served: everything, the
 * request too, is refunded, as queue_refund()); otherwise the prompt stays
 * charged and the output becomes what was produced.
 */
void queue_preempt_refund(struct queue_item *it, double produced, uint64_t now_ms);

#endif
