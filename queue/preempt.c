/*
 * preempt.c - the choice of a preemption victim; see preempt.h.
 *
 * Invariants: a bucket exists (rate_ms > 0) exactly for the classes whose
 * config enables preemption; a class without one is never chosen, whatever
 * the slots say, and the preempting class never is, even if a config
 * loader let it through.
 */
#include <string.h>

#include "queue/admit.h"
#include "queue/preempt.h"

static double burst_of(double rate)
{
	return rate >= 1 ? rate : 1;
}

static bool enabled(const struct conf *c, int k)
{
	return k != QUEUE_PREEMPTOR && k != CONF_CLASS_STANDARD && c->classes[k].defined &&
	       c->classes[k].preemption.enabled && c->classes[k].preemption.max_per_s > 0;
}

void queue_preempt_init(struct queue_preempt *p, const struct conf *c, uint64_t now_ms)
{
	memset(p, 0, sizeof(*p));
	queue_preempt_reconfigure(p, c, now_ms);	/* every bucket new: made full */
}

void queue_preempt_reconfigure(struct queue_preempt *p, const struct conf *c, uint64_t now_ms)
{
	p->any = false;
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		struct queue_bucket *b = &p->rate[k];
		if (!enabled(c, k)) {
			memset(b, 0, sizeof(*b));
			continue;
		}
		double r = c->classes[k].preemption.max_per_s;
		if (b->rate_ms > 0)
			queue_bucket_reconfigure(b, r, burst_of(r), now_ms);
		else
			queue_bucket_init(b, r, burst_of(r), now_ms);
		p->any = true;
	}
}

uint64_t queue_preempt_judge_at(uint8_t klass, uint64_t enqueued_ms, uint64_t deadline_ms)
{
	if (klass != QUEUE_PREEMPTOR)
		return UINT64_MAX;
	if (deadline_ms <= enqueued_ms)
		return enqueued_ms;
	return enqueued_ms + (deadline_ms - enqueued_ms) / 2;
}

bool queue_preempt_would_miss(const struct queue_preempt_need *n, uint64_t now_ms)
{
	if (n->klass != QUEUE_PREEMPTOR)
		return false;
	if (n->predicted_ms != 0 && n->predicted_ms > n->deadline_ms)
		return true;
	return now_ms >= queue_preempt_judge_at(n->klass, n->enqueued_ms, n->deadline_ms);
}

int queue_preempt_choose(struct queue_preempt *p, const struct conf *c, const struct queue_preempt_need *n,
			 const struct queue_preempt_slot *s, size_t ns, uint64_t now_ms, uint64_t *wait_ms)
{
	if (!p->any || n->slot_free || !queue_preempt_would_miss(n, now_ms))
		return -1;
	/* The shortest-running exchange of a preemptible class whose bucket
	 * can pay; the first of equals, so that the choice is stable. */
	int best = -1;
	uint64_t limited = UINT64_MAX;
	for (size_t i = 0; i < ns; i++) {
		const struct queue_preempt_slot *v = &s[i];
		if (v->klass >= CONF_CLASS_COUNT || !enabled(c, v->klass) || v->pool >= 64 ||
		    !((n->pools >> v->pool) & 1))
			continue;
		if (best >= 0 && v->started_ms <= s[best].started_ms)
			continue;
		if (queue_bucket_level(&p->rate[v->klass], now_ms) < 1) {
			uint64_t w = 0;
			queue_bucket_take(&p->rate[v->klass], 1, now_ms, &w);	/* only asks: it cannot pay */
			if (w < limited)
				limited = w;
			continue;
		}
		best = (int)i;
	}
	if (best < 0) {
		if (limited != UINT64_MAX && wait_ms != NULL)
			*wait_ms = limited;
		return -1;
	}
	uint64_t w;
	queue_bucket_take(&p->rate[s[best].klass], 1, now_ms, &w);
	return best;
}

void queue_preempt_refund(struct queue_item *it, double produced, uint64_t now_ms)
{
	if (produced < 0)
		queue_refund(it, now_ms);
	else	/* the prompt was read and stays charged; the output is what was produced */
		queue_settle(it, it->charge.tokens - it->charge.output + produced, now_ms);
}
