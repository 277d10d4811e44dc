/*
 * adapt.c - the AIMD controller of a backend's slots; see adapt.h.
 *
 * The two signals differ only in how a step is judged (congested, clean or
 * unknown) and in the floor of a decrease; step() applies the rule.
 */
#include <string.h>

#include "backends/adapt.h"

enum verdict { CLEAN, CONGESTED, UNKNOWN };

static unsigned clamp(unsigned v, unsigned lo, unsigned hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void backend_adapt_start(struct backend_adapt *a, unsigned start, unsigned min, unsigned max)
{
	if (min < 1)
		min = 1;
	if (max < min)
		max = min;
	if (!a->on) {
		memset(a, 0, sizeof(*a));
		a->on = true;
		a->slow_start = true;
		a->load.kv_usage = -1;
		a->limit = start;
	}
	a->min = min;
	a->max = max;
	a->limit = clamp(a->limit, min, max);
	if (a->good > a->limit)
		a->good = 0;
}

void backend_adapt_stop(struct backend_adapt *a)
{
	memset(a, 0, sizeof(*a));
}

/* `floor`: what the backend showed it can run (0: nothing known). */
static enum backend_adapt_change step(struct backend_adapt *a, enum verdict v, unsigned floor,
				      struct backend_adapt_use use, uint64_t now_ms)
{
	unsigned was = a->limit;
	bool binding = use.binding || (a->slow_start && use.queued);
	a->last_ms = now_ms;
	a->peak = 0;
	a->lost = v == UNKNOWN;
	if (v == UNKNOWN || !a->on)
		return BACKEND_ADAPT_SAME;
	if (v == CONGESTED && use.draining) {
		a->hold = BACKEND_ADAPT_HOLD;	/* the last cut is still under way */
	} else if (v == CONGESTED) {
		unsigned next = floor > 0 ? floor : a->limit / 2;
		if (next >= a->limit)
			next = a->limit - 1;	/* a congested step always gives one back */
		a->limit = clamp(next, a->min, a->max);
		a->slow_start = false;
		a->hold = BACKEND_ADAPT_HOLD;
	} else if (a->hold > 0) {
		a->hold--;
	} else if (binding) {
		unsigned inc = a->slow_start && a->limit >= 8 ? a->limit / 4 : 1;
		a->limit = clamp(a->limit + inc, a->min, a->max);
	}
	if (a->limit > was) {
		a->increases++;
		return BACKEND_ADAPT_UP;
	}
	if (a->limit < was) {
		a->decreases++;
		return BACKEND_ADAPT_DOWN;
	}
	return BACKEND_ADAPT_SAME;
}

enum backend_adapt_change backend_adapt_metrics(struct backend_adapt *a, const struct backend_vllm_load *load,
						struct backend_adapt_use use, uint64_t now_ms)
{
	if (load == NULL)
		return step(a, UNKNOWN, 0, use, now_ms);
	a->load = *load;
	/* The most the server was seen to run lately: two buckets of
	 * BACKEND_ADAPT_RUN_WINDOW polls, so that it forgets a batch that
	 * shrank.  Waiting requests are a queue only when the server runs its
	 * most (R at least that) and no more than at the last poll: requests
	 * that arrive while a step or a prefill runs wait for its end even
	 * when the batch has room, and sequences admitted together end
	 * together, so such waits come in waves (R dips) that a poll catches
	 * often; a server still taking more each poll (R rising) is filling,
	 * not full. */
	double seen = a->run_max[0] > a->run_max[1] ? a->run_max[0] : a->run_max[1];
	if (load->running > a->run_max[0])
		a->run_max[0] = load->running;
	if (++a->run_polls >= BACKEND_ADAPT_RUN_WINDOW) {
		a->run_max[1] = a->run_max[0];
		a->run_max[0] = 0;
		a->run_polls = 0;
	}
	double prev = a->run_prev;
	bool at_batch = load->running >= seen && load->running <= prev;
	a->run_prev = load->running;
	bool waiting = load->waiting > 0;
	bool full = load->kv_usage >= BACKEND_ADAPT_KV_HIGH;
	/* Any poll that sees a wait stops the increase.  A queue is waits on
	 * two polls in a row with the server at its batch on one of them. */
	bool queued = false;
	if (waiting || full) {
		queued = waiting && a->congested_polls > 0 && (at_batch || a->was_at_batch);
		a->congested_polls++;
		a->was_at_batch = at_batch;
		if (!queued && !(full && a->congested_polls > 1)) {
			a->hold = a->hold > 0 ? a->hold : 1;
			use.binding = false;
			return step(a, CLEAN, 0, use, now_ms);
		}
	} else {
		a->congested_polls = 0;
		a->was_at_batch = false;
	}
	/* A server that queues runs a full batch: R (the larger of the two
	 * polls: one may have caught a dip).  A full cache without a queue
	 * gives back an eighth. */
	unsigned floor = 0;
	if (queued) {
		double r = load->running > prev ? load->running : prev;
		floor = r >= (double)a->max ? a->max : (unsigned)r;
		/* R is the batch now, however much more it ran before (the
		 * server may have shrunk it). */
		a->run_max[0] = a->run_max[1] = r;
		a->run_polls = 0;
	} else if (full) {
		floor = a->limit - a->limit / 8;
	}
	return step(a, queued || full ? CONGESTED : CLEAN, floor, use, now_ms);
}

void backend_adapt_ttft(struct backend_adapt *a, double ttft_ms)
{
	if (ttft_ms < 0 || a->ttft_n == UINT32_MAX)
		return;
	if (a->ttft_n == 0 || ttft_ms < a->ttft_min_ms)
		a->ttft_min_ms = ttft_ms;
	a->ttft_sum_ms += ttft_ms;
	a->ttft_n++;
}

enum backend_adapt_change backend_adapt_latency(struct backend_adapt *a, struct backend_adapt_use use,
						uint64_t now_ms)
{
	if (a->ttft_n == 0)
		return step(a, UNKNOWN, 0, use, now_ms);
	double mean = a->ttft_sum_ms / a->ttft_n, low = a->ttft_min_ms;
	a->ttft_sum_ms = 0;
	a->ttft_n = 0;
	a->ttft_last_ms = mean;
	if (a->ttft_base_ms <= 0 || low < a->ttft_base_ms)
		a->ttft_base_ms = low;
	else	/* creep up by 1/32 of the gap per step (see adapt.h) */
		a->ttft_base_ms += (low - a->ttft_base_ms) / 32;
	/* A millisecond of slack: sub-millisecond first tokens (a server on
	 * the same host) would read their jitter as queueing. */
	bool congested = mean > BACKEND_ADAPT_TTFT_RISE * a->ttft_base_ms && mean > a->ttft_base_ms + 1.0;
	unsigned floor = 0;
	if (congested && use.draining) {
		/* judged by step() */
	} else if (congested) {
		/* The highest limit seen clean is the batch, unless it is this
		 * one: then the batch shrank, and it is forgotten. */
		floor = a->good < a->limit ? a->good : 0;
		a->good = 0;
	} else {
		if (use.binding && a->limit > a->good)
			a->good = a->limit;
	}
	return step(a, congested ? CONGESTED : CLEAN, floor, use, now_ms);
}
