/*
 * hist.h - a fixed-memory log-linear histogram (HdrHistogram's layout).
 *
 * Records unsigned 64-bit values (nanoseconds, milliseconds, tokens: any
 * unit) in O(1), with no allocation, over the whole range 0 .. UINT64_MAX.
 * Values below 2^GW_HIST_SUB_BITS (32) have a bucket each.  Above that,
 * every power of two [2^e, 2^(e+1)) is cut into 32 linear sub-buckets of
 * width 2^(e-5), so a bucket is never wider than 1/32 of its lowest value,
 * and values below 64 are still exact.  That makes 60 x 32 = 1920 buckets
 * of uint64 counts: sizeof(struct gw_hist) is 15,400 bytes, whatever is
 * recorded.  Recording is a count-leading-zeros, a shift and an add.
 *
 * Error bound.  gw_hist_percentile() returns the midpoint of the bucket that
 * holds the exact (nearest-rank) percentile, clamped to the exact min and
 * max, so it is within 1/64 (1.5625%) of the exact value, and exact below 64,
 * at p = 0 (min) and at p = 100 (max).  Count, sum, min and max are exact.
 *
 * Not thread-safe: one histogram belongs to one event loop (merge per-loop
 * histograms to aggregate).  Counts are uint64: they do not overflow in
 * practice and are not checked.
 */
#ifndef SLUICE_GATEWAY_HIST_H
#define SLUICE_GATEWAY_HIST_H

#include <stdint.h>

#define GW_HIST_SUB_BITS 5
#define GW_HIST_SUB_COUNT (1u << GW_HIST_SUB_BITS)
#define GW_HIST_BUCKETS ((64 - GW_HIST_SUB_BITS + 1) * GW_HIST_SUB_COUNT)

struct gw_hist {
	uint64_t count;
	uint64_t min;			/* UINT64_MAX while empty */
	uint64_t max;
	uint64_t sum_lo, sum_hi;	/* exact 128-bit sum of every value */
	uint64_t counts[GW_HIST_BUCKETS];
};

/* Make `h` empty.  There is nothing to finish: the struct owns no memory. */
void gw_hist_init(struct gw_hist *h);

/* Same as gw_hist_init(): forget every sample. */
void gw_hist_reset(struct gw_hist *h);

/* Record one sample of value `v`. */
void gw_hist_record(struct gw_hist *h, uint64_t v);

/* Record `n` samples of value `v` (n = 0 records nothing). */
void gw_hist_record_n(struct gw_hist *h, uint64_t v, uint64_t n);

/* Add every sample of `src` to `dst`; the result equals recording both. */
void gw_hist_merge(struct gw_hist *dst, const struct gw_hist *src);

/* Number of samples. */
uint64_t gw_hist_count(const struct gw_hist *h);

/* Smallest and largest sample, exact; 0 when empty. */
uint64_t gw_hist_min(const struct gw_hist *h);
uint64_t gw_hist_max(const struct gw_hist *h);

/*
 * Sum of every sample (Prometheus `_sum`).  Kept exactly in 128 bits; the
 * double is exact up to 2^53 and within a rounding step beyond.
 */
double gw_hist_sum(const struct gw_hist *h);

/* Mean of the samples; 0 when empty. */
double gw_hist_mean(const struct gw_hist *h);

/*
 * The p-th percentile, p in 0..100 (clamped).  The exact percentile is the
 * nearest-rank one: the smallest sample such that at least p% of the samples
 * are <= it, i.e. the sample of rank ceil(p/100 x count) (at least 1).  The
 * answer is the midpoint of that sample's bucket clamped to [min, max]:
 * within 1/64 of the exact value (see the top of this file).  0 when empty.
 */
uint64_t gw_hist_percentile(const struct gw_hist *h, double p);

/*
 * Number of samples <= bound (Prometheus `le` buckets), monotone in `bound`.
 * Exact when `bound` is the highest value of a bucket (see
 * gw_hist_bucket_range(); every bound below 64, and every 2^k - 1, is one).
 * Inside a bucket it interpolates linearly, as if that bucket's samples were
 * spread evenly over it: the error is at most that one bucket's count.
 */
uint64_t gw_hist_count_le(const struct gw_hist *h, uint64_t bound);

/*
 * The bucket that holds `v`: its lowest and highest value, inclusive.  Two
 * values in one bucket are indistinguishable to the histogram.  Lets callers
 * pick Prometheus bounds that gw_hist_count_le() answers exactly.
 */
void gw_hist_bucket_range(uint64_t v, uint64_t *lo, uint64_t *hi);

#endif
