/*
 * adapt.h - a backend's slots, adapted to its load (AIMD).
 *
 * `max_inflight` is a guess: too low starves the inference server's batch,
 * too high moves the queue into the server, where priority does not apply.
 * With `slots: { adapt: vllm_metrics | latency }` sluice adapts each
 * backend's slots to what the server actually batches, one controller per
 * backend, fed once per interval_ms (gateway/adapt.c) by one of two
 * signals:
 *
 *   vllm_metrics  the server's own gauges, polled from its Prometheus
 *                 /metrics: requests running (R), waiting (W) and the KV
 *                 cache's usage.  It is *congested* when requests queue
 *                 inside it: W > 0 on two polls in a row, with R on one of
 *                 them at the largest seen over the last
 *                 BACKEND_ADAPT_RUN_WINDOW polls or more and no higher than
 *                 at the poll before.  A request that arrives while a step
 *                 or a prefill runs waits for its end even when the batch
 *                 has room, and sequences admitted together end together,
 *                 so such short waits come in waves (R dips) that a poll
 *                 catches often; a server still taking more at each poll
 *                 (R rising) is filling, not full.  Congested too: a KV
 *                 cache at least BACKEND_ADAPT_KV_HIGH full on two polls
 *                 (the next admission would preempt).  Any poll that sees a
 *                 wait or a full cache stops the increase.  R is what the
 *                 server batches now.  A batch that shrinks shows once the
 *                 larger one is forgotten (2 x BACKEND_ADAPT_RUN_WINDOW
 *                 polls at most), or at once through the KV cache.
 *   latency       sluice's own requests: the mean time from dispatch to
 *                 first token over the interval, against a baseline (the
 *                 lowest single first token seen, which a request that
 *                 found the batch free sets, allowed to creep up slowly
 *                 towards each interval's lowest so that a change of
 *                 prompts does not pin it).  Congested when the mean
 *                 exceeds BACKEND_ADAPT_TTFT_RISE times the baseline (and
 *                 the baseline by a millisecond): in a continuous-batching
 *                 server a request that finds the batch full waits for a
 *                 sequence to end.
 *
 * The rule, each step:
 *
 *   congested   multiplicative decrease, by the factor the server showed:
 *               to what it batches (R, when requests wait: a server that
 *               queues runs a full batch; with a full KV cache and no
 *               queue, limit * 7/8; for latency, the highest limit last
 *               seen clean, when below the limit), by half when nothing
 *               tells, and always by at least one slot.  No increase for
 *               BACKEND_ADAPT_HOLD steps after.  While more requests are in
 *               flight than the limit allows, a congested step cuts
 *               nothing: the server still runs what the old limit sent.
 *   clean       additive increase by one slot, only when the limit binds
 *               (sluice held all its slots of the backend at some point of
 *               the interval): an idle backend says nothing about a larger
 *               batch, and a limit that drifted up while idle would let the
 *               next burst queue inside the server.  Before the first
 *               congestion (slow start) requests of the pool waiting in
 *               sluice's queue count as binding too, and the step is a
 *               quarter of the limit, so that a limit four times too low
 *               catches up in a few steps even when class caps
 *               (max_slot_share) keep sluice from filling every slot.
 *   no signal   (a poll failed, no first token came) nothing changes: the
 *               last limit is kept.  It is the last value the server was
 *               seen to handle; max_inflight may be the bad guess this
 *               exists to replace, and a server that stops answering its
 *               metrics is the health checks' business.
 *
 * At steady load this settles at the server's batch size and moves by at
 * most one slot: a probe one above it is congested and falls back to R
 * (the floor), then holds.  The limit stays within [min, max] always.
 *
 * Replicas: the limit is the backend's total, across every sluice replica,
 * like max_inflight and like the server's gauges (R and W count every
 * replica's requests).  Each replica uses its share of it,
 * backend_slots_share(limit, replicas).  Every replica runs its own
 * controller on the same gauges, so they move together.  (The latency
 * signal is each replica's own; its limits may differ between replicas.)
 *
 * This file is pure: no I/O, no clock of its own; tests drive it by hand.
 */
#ifndef SLUICE_BACKENDS_ADAPT_H
#define SLUICE_BACKENDS_ADAPT_H

#include <stdbool.h>
#include <stdint.h>

#define BACKEND_ADAPT_KV_HIGH 0.95	/* KV cache usage that counts as full */
#define BACKEND_ADAPT_TTFT_RISE 2.0	/* TTFT over baseline that counts as queueing */
#define BACKEND_ADAPT_HOLD 3		/* steps without increase after a decrease */
#define BACKEND_ADAPT_RUN_WINDOW 16	/* polls per bucket of the largest batch seen */

/* What one poll of a vLLM server's /metrics read (backends/promtext.h). */
struct backend_vllm_load {
	double running;			/* vllm:num_requests_running, summed over label sets */
	double waiting;			/* vllm:num_requests_waiting */
	double kv_usage;		/* vllm:kv_cache_usage_perc, 0..1; < 0: not exposed */
};

/* The state of one backend's controller; zero is "not adapting". */
struct backend_adapt {
	bool on;			/* the pool adapts: limit drives the slots */
	bool slow_start;		/* no congestion seen yet: big steps up */
	bool lost;			/* the last step had no signal */
	unsigned limit;			/* the backend's slots, all replicas together */
	unsigned min, max;
	unsigned hold;			/* steps left without an increase */
	unsigned congested_polls;	/* vllm_metrics: congested polls in a row */
	double run_max[2];		/* largest R seen: this bucket of polls, the last */
	double run_prev;		/* R at the last poll */
	bool was_at_batch;		/* the last poll saw the server at its batch */
	unsigned run_polls;		/* polls in this bucket */
	unsigned good;			/* latency: highest limit last seen clean and binding */
	unsigned peak;			/* most slots this replica held since the last step */
	uint64_t last_ms;		/* the last step */
	/* latency: first-token samples of the current interval, baseline */
	double ttft_sum_ms, ttft_min_ms;
	unsigned ttft_n;
	double ttft_base_ms;		/* 0: none yet */
	/* the last signal, for /status */
	struct backend_vllm_load load;
	double ttft_last_ms;
	uint64_t increases, decreases;
};

/* What a step did. */
enum backend_adapt_change {
	BACKEND_ADAPT_SAME = 0,
	BACKEND_ADAPT_UP,
	BACKEND_ADAPT_DOWN,
};

/*
 * Start (or restart, after a reload changed the pool's slots) adapting
 * between min and max (1 <= min <= max) from `start`, clamped.  A running
 * controller keeps its limit (clamped to the new bounds) and its baseline.
 */
void backend_adapt_start(struct backend_adapt *a, unsigned start, unsigned min, unsigned max);

/* Stop adapting: *a is zero again. */
void backend_adapt_stop(struct backend_adapt *a);

/* What the gateway knows of a step's interval. */
struct backend_adapt_use {
	bool binding;			/* this replica held all its slots (see above) */
	bool queued;			/* requests the pool could take wait in sluice */
	bool draining;			/* more in flight than the limit allows: the last
					 * decrease has not taken effect yet */
};

/*
 * One step on a vLLM server's gauges (load == NULL: the poll failed).
 * Returns what changed; a->limit is the new limit.  While `draining`, a
 * congested step changes nothing: the server still runs what the old limit
 * sent, and cutting again on that would overshoot.
 */
enum backend_adapt_change backend_adapt_metrics(struct backend_adapt *a, const struct backend_vllm_load *load,
						struct backend_adapt_use use, uint64_t now_ms);

/* A first token came `ttft_ms` after dispatch (latency mode's sample). */
void backend_adapt_ttft(struct backend_adapt *a, double ttft_ms);

/* One step on the first tokens recorded since the last step (none: no
 * signal, nothing changes); `use` as above. */
enum backend_adapt_change backend_adapt_latency(struct backend_adapt *a, struct backend_adapt_use use,
						uint64_t now_ms);

/* This replica holds `inflight` slots of the backend now (after each take):
 * the interval's peak, for `binding`. */
static inline void backend_adapt_note(struct backend_adapt *a, unsigned inflight)
{
	if (inflight > a->peak)
		a->peak = inflight;
}

#endif
