/* lease.c - leases of shared buckets and the link state; see lease.h. */
#include "queue/lease.h"

static double floor_of(double burst, unsigned replicas)
{
	double f = burst / (10.0 * (replicas ? replicas : 1));
	double unit = burst < 1 ? burst : 1;
	return f > unit ? f : unit;
}

void queue_lease_local(struct queue_lease *l, struct queue_bucket *b, double rate_per_s, double burst,
		       unsigned replicas, uint64_t now_ms)
{
	double n = replicas ? replicas : 1;
	double level = queue_bucket_level(b, now_ms);
	double asked = b->asked;
	queue_bucket_init(b, rate_per_s / n, burst / n, now_ms);
	b->asked = asked;
	if (level < b->level)
		b->level = level;
	l->seen = true;
	l->dry = false;
}

void queue_lease_hold(struct queue_lease *l, struct queue_bucket *b, double rate_per_s, double burst,
		      unsigned replicas, uint64_t now_ms)
{
	double n = replicas ? replicas : 1;
	double level = queue_bucket_level(b, now_ms);
	if (!l->seen && level > burst / n)
		level = burst / n;
	double asked = b->asked;
	queue_bucket_init(b, rate_per_s, burst, now_ms);
	b->asked = asked;
	b->held = true;
	b->level = level < b->burst ? level : b->burst;
	l->seen = true;
	l->dry = false;
	l->sent_ms = 0;	/* renew at once */
}

bool queue_lease_due(const struct queue_lease *l, const struct queue_bucket *b, uint64_t now_ms)
{
	/* A tick a few milliseconds early still renews: once a second, not every two. */
	if (l->sent_ms == 0 || now_ms + 100 >= l->sent_ms + QUEUE_LEASE_RENEW_MAX_MS)
		return true;
	if (l->dry || now_ms < l->sent_ms + QUEUE_LEASE_RENEW_MIN_MS)
		return false;
	return b->level < l->target / 2;
}

double queue_lease_plan(struct queue_lease *l, struct queue_bucket *b, unsigned replicas, uint64_t now_ms)
{
	if (l->sample_ms != 0 && now_ms > l->sample_ms) {
		double dt = (double)(now_ms - l->sample_ms);
		double inst = (b->asked - l->asked_mark) * 1000.0 / dt;
		/* Smoothed over about a second, whatever the renewal pace. */
		double w = dt / 1000.0;
		l->demand += (w < 1 ? w : 1) * (inst - l->demand);
	}
	if (l->sample_ms == 0 || now_ms > l->sample_ms) {
		l->asked_mark = b->asked;
		l->sample_ms = now_ms;
	}
	double target = l->demand * QUEUE_LEASE_HORIZON_MS / 1000.0;
	double lo = floor_of(b->burst, replicas);
	if (target < lo)
		target = lo;
	if (target > b->burst)
		target = b->burst;
	l->target = target;
	l->sent_ms = now_ms ? now_ms : 1;
	double give = b->level - target;
	if (give > 0)
		b->level -= give;
	return give;
}

void queue_lease_grant(struct queue_lease *l, struct queue_bucket *b, double sent, double grant)
{
	if (grant > 0) {
		b->level += grant;
		if (b->level > b->burst)
			b->level = b->burst;
	}
	l->dry = sent < 0 && grant < -sent / 2;
}

void queue_shared_init(struct queue_shared *s, uint64_t now_ms)
{
	*s = (struct queue_shared){ .state = QUEUE_SHARED_DOWN, .since_ms = now_ms,
				    .backoff_ms = QUEUE_SHARED_BACKOFF_MIN_MS };
}

bool queue_shared_set_up(struct queue_shared *s, uint64_t now_ms)
{
	if (s->state == QUEUE_SHARED_UP)
		return false;
	s->fallback_ms += now_ms - s->since_ms;
	s->state = QUEUE_SHARED_UP;
	s->since_ms = now_ms;
	s->backoff_ms = QUEUE_SHARED_BACKOFF_MIN_MS;
	bool told = s->told_down;
	s->told_down = false;
	return told;
}

bool queue_shared_set_down(struct queue_shared *s, uint64_t now_ms)
{
	if (s->state == QUEUE_SHARED_UP) {
		s->state = QUEUE_SHARED_DOWN;
		s->since_ms = now_ms;
	}
	if (s->told_down)
		return false;
	s->told_down = true;
	return true;
}

uint64_t queue_shared_backoff(struct queue_shared *s)
{
	uint64_t d = s->backoff_ms;
	s->backoff_ms = d * 2 < QUEUE_SHARED_BACKOFF_MAX_MS ? d * 2 : QUEUE_SHARED_BACKOFF_MAX_MS;
	return d;
}

uint64_t queue_shared_fallback_ms(const struct queue_shared *s, uint64_t now_ms)
{
	return s->fallback_ms + (s->state == QUEUE_SHARED_DOWN && now_ms > s->since_ms ? now_ms - s->since_ms : 0);
}
