/* bucket.c - token bucket; see bucket.h. */
#include <math.h>

#include "queue/bucket.h"

void queue_bucket_init(struct queue_bucket *b, double rate_per_s, double burst, uint64_t now_ms)
{
	b->rate_ms = rate_per_s / 1000.0;
	b->burst = burst > 0 ? burst : 1;
	b->level = b->burst;
	b->last_ms = now_ms;
	b->held = false;
	b->asked = 0;
}

static void refill(struct queue_bucket *b, uint64_t now_ms)
{
	if (b->held) {
		b->last_ms = now_ms;
		return;
	}
	if (now_ms > b->last_ms) {
		b->level += (double)(now_ms - b->last_ms) * b->rate_ms;
		if (b->level > b->burst)
			b->level = b->burst;
		b->last_ms = now_ms;
	}
}

void queue_bucket_reconfigure(struct queue_bucket *b, double rate_per_s, double burst, uint64_t now_ms)
{
	/* A bucket that is not full keeps its level (and any debt): a reload
	 * must not hand every tenant a fresh burst.  A full one stays full. */
	bool partial = false;
	double level = 0;
	double asked = b->asked;
	if (b->held && !queue_bucket_unlimited(b) && rate_per_s > 0) {
		b->rate_ms = rate_per_s / 1000.0;
		b->burst = burst > 0 ? burst : 1;
		if (b->level > b->burst)
			b->level = b->burst;
		b->last_ms = now_ms;
		return;
	}
	if (!queue_bucket_unlimited(b)) {
		refill(b, now_ms);
		partial = b->level < b->burst;
		level = b->level;
	}
	queue_bucket_init(b, rate_per_s, burst, now_ms);
	b->asked = asked;
	if (partial && level < b->burst)
		b->level = level;
}

static uint64_t ms_until(const struct queue_bucket *b, double level)
{
	double ms = ceil((level - b->level) / b->rate_ms);
	return ms < 1 ? 1 : (uint64_t)ms;
}

bool queue_bucket_take(struct queue_bucket *b, double n, uint64_t now_ms, uint64_t *wait_ms)
{
	if (queue_bucket_unlimited(b))
		return true;
	b->asked += n;
	refill(b, now_ms);
	double need = n < b->burst ? n : b->burst;
	if (b->level >= need) {
		b->level -= n;
		return true;
	}
	*wait_ms = ms_until(b, need);
	return false;
}

void queue_bucket_adjust(struct queue_bucket *b, double delta, uint64_t now_ms)
{
	if (queue_bucket_unlimited(b))
		return;
	refill(b, now_ms);
	b->level += delta;
	if (b->level > b->burst)
		b->level = b->burst;
	if (b->level < -b->burst)
		b->level = -b->burst;
}

double queue_bucket_level(struct queue_bucket *b, uint64_t now_ms)
{
	if (queue_bucket_unlimited(b))
		return INFINITY;
	refill(b, now_ms);
	return b->level;
}

uint64_t queue_bucket_wait(struct queue_bucket *b, double n, uint64_t now_ms)
{
	if (queue_bucket_unlimited(b))
		return 0;
	refill(b, now_ms);
	double need = n < b->burst ? n : b->burst;
	return b->level >= need ? 0 : ms_until(b, need);
}

uint64_t queue_bucket_full_in(struct queue_bucket *b, uint64_t now_ms)
{
	if (queue_bucket_unlimited(b))
		return 0;
	refill(b, now_ms);
	return b->level >= b->burst ? 0 : ms_until(b, b->burst);
}
