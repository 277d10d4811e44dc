/*
 * bucket.h - a token bucket with an injected clock.
 *
 * The bucket holds up to `burst` units and refills at `rate` units per
 * second.  Taking succeeds when the level covers the amount (or, for an
 * amount larger than the whole bucket, when the bucket is full, so that a
 * request bigger than the burst is slow, not impossible); the level may then
 * go negative, and that debt delays the next taker.  Charges can be adjusted
 * afterwards (an estimate reconciled with what was really used).
 *
 * A bucket may be *held* (queue/lease.h): it then does not refill by
 * itself, its level being a lease of a bucket kept elsewhere (shared
 * limits); taking, adjusting and the wait hints work as usual.  `asked`
 * counts every unit taken or asked for, granted or not: the demand a lease
 * is sized from.
 *
 * Time is passed in by the caller in milliseconds of a monotonic clock, so
 * tests drive it by hand.
 */
#ifndef SLUICE_QUEUE_BUCKET_H
#define SLUICE_QUEUE_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

struct queue_bucket {
	double rate_ms;		/* units per millisecond; 0 = unlimited */
	double burst;
	double level;
	uint64_t last_ms;
	double asked;		/* units asked for by queue_bucket_take, ever */
	bool held;		/* no refill: the level is a lease (queue/lease.h) */
};

/* New rate and burst for a live bucket: the level carries over (a full
 * bucket stays full), capped at the new burst.  A held bucket stays held
 * and keeps its level (a lease is not a refill), capped at the new burst. */
void queue_bucket_reconfigure(struct queue_bucket *b, double rate_per_s, double burst, uint64_t now_ms);

/* A full bucket, not held; rate_per_s 0 makes an unlimited bucket that
 * always grants. */
void queue_bucket_init(struct queue_bucket *b, double rate_per_s, double burst, uint64_t now_ms);

static inline bool queue_bucket_unlimited(const struct queue_bucket *b) { return b->rate_ms <= 0; }

/*
 * Take n units.  Returns true and charges the bucket, or returns false and
 * sets *wait_ms to the time until the take would succeed (rounded up, at
 * least 1).
 */
bool queue_bucket_take(struct queue_bucket *b, double n, uint64_t now_ms, uint64_t *wait_ms);

/* Give back (delta > 0) or charge more (delta < 0); the level stays between
 * -burst and burst: a correction never leaves more debt than one burst takes
 * to refill. */
void queue_bucket_adjust(struct queue_bucket *b, double delta, uint64_t now_ms);

/* Level now (may be negative while in debt). */
double queue_bucket_level(struct queue_bucket *b, uint64_t now_ms);

/* Milliseconds until n can be taken (0: now, or unlimited); n is capped
 * at the burst, as queue_bucket_take() caps it. */
uint64_t queue_bucket_wait(struct queue_bucket *b, double n, uint64_t now_ms);

/* Milliseconds until the bucket is full again (0 when full or unlimited). */
uint64_t queue_bucket_full_in(struct queue_bucket *b, uint64_t now_ms);

#endif
