/*
 * hist.c - log-linear histogram; see hist.h for the layout and error bound.
 *
 * Bucket index of v:
 *   v < 32:  v itself (block 0, width 1).
 *   else:    e = index of the highest set bit (5..63), block = e - 4,
 *            sub = the 5 bits below the highest one, index = block x 32 + sub.
 * Block b >= 1 covers [2^(b+4), 2^(b+5)) in 32 buckets of width 2^(b-1).
 * The last bucket (1919) ends exactly at UINT64_MAX, so nothing is clamped.
 */
#include <string.h>

#include "gateway/hist.h"

#define SUB_BITS GW_HIST_SUB_BITS
#define SUB_COUNT GW_HIST_SUB_COUNT

_Static_assert(GW_HIST_BUCKETS == 1920, "bucket layout changed: update hist.h");

static unsigned bucket_of(uint64_t v)
{
	if (v < SUB_COUNT)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = e - SUB_BITS;
	return ((shift + 1) << SUB_BITS) + (unsigned)((v >> shift) - SUB_COUNT);
}

static void bucket_bounds(unsigned i, uint64_t *lo, uint64_t *hi)
{
	if (i < SUB_COUNT) {
		*lo = *hi = i;
		return;
	}
	unsigned shift = (i >> SUB_BITS) - 1;
	*lo = (uint64_t)(SUB_COUNT + (i & (SUB_COUNT - 1))) << shift;
	*hi = *lo + (((uint64_t)1 << shift) - 1);
}

/* a x b as a 128-bit (hi, lo) pair, by 32-bit halves (no __int128 in C11). */
static void mul_64x64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
	uint64_t a_lo = a & 0xffffffffu, a_hi = a >> 32;
	uint64_t b_lo = b & 0xffffffffu, b_hi = b >> 32;
	uint64_t ll = a_lo * b_lo, lh = a_lo * b_hi, hl = a_hi * b_lo, hh = a_hi * b_hi;
	uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
	*lo = (mid << 32) | (ll & 0xffffffffu);
	*hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}

static void sum_add(struct gw_hist *h, uint64_t hi, uint64_t lo)
{
	uint64_t s = h->sum_lo + lo;
	h->sum_hi += hi + (s < lo);
	h->sum_lo = s;
}

void gw_hist_init(struct gw_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void gw_hist_reset(struct gw_hist *h)
{
	gw_hist_init(h);
}

void gw_hist_record(struct gw_hist *h, uint64_t v)
{
	h->counts[bucket_of(v)]++;
	h->count++;
	sum_add(h, 0, v);
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void gw_hist_record_n(struct gw_hist *h, uint64_t v, uint64_t n)
{
	if (n == 0)
		return;
	h->counts[bucket_of(v)] += n;
	h->count += n;
	uint64_t hi, lo;
	mul_64x64(v, n, &hi, &lo);
	sum_add(h, hi, lo);
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void gw_hist_merge(struct gw_hist *dst, const struct gw_hist *src)
{
	if (src->count == 0)
		return;
	for (unsigned i = 0; i < GW_HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->count += src->count;
	sum_add(dst, src->sum_hi, src->sum_lo);
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t gw_hist_count(const struct gw_hist *h)
{
	return h->count;
}

uint64_t gw_hist_min(const struct gw_hist *h)
{
	return h->count ? h->min : 0;
}

uint64_t gw_hist_max(const struct gw_hist *h)
{
	return h->max;
}

double gw_hist_sum(const struct gw_hist *h)
{
	return (double)h->sum_hi * 18446744073709551616.0 + (double)h->sum_lo;
}

double gw_hist_mean(const struct gw_hist *h)
{
	return h->count ? gw_hist_sum(h) / (double)h->count : 0.0;
}

/*
 * ceil(p/100 x count), in 1..count.  p x count / 100 carries rounding noise
 * (99.9 x 1000 / 100 is 999.0000000000001), which a bare ceil() would turn
 * into the next rank; a fraction under one part in 10^9 counts as none.
 */
static uint64_t rank_of(double p, uint64_t count)
{
	double r = p * (double)count / 100.0;
	uint64_t rank = (uint64_t)r;
	if (r - (double)rank > 1e-9 * r)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > count)
		rank = count;
	return rank;
}

uint64_t gw_hist_percentile(const struct gw_hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (!(p > 0.0))		/* also NaN */
		return h->min;
	if (p >= 100.0)
		return h->max;
	uint64_t rank = rank_of(p, h->count);
	uint64_t seen = 0;
	unsigned i = 0;
	for (; i < GW_HIST_BUCKETS - 1; i++) {
		seen += h->counts[i];
		if (seen >= rank)
			break;
	}
	uint64_t lo, hi;
	bucket_bounds(i, &lo, &hi);
	uint64_t mid = lo + (hi - lo) / 2;
	if (mid < h->min)
		return h->min;
	if (mid > h->max)
		return h->max;
	return mid;
}

uint64_t gw_hist_count_le(const struct gw_hist *h, uint64_t bound)
{
	if (h->count == 0 || bound < h->min)
		return 0;
	if (bound >= h->max)
		return h->count;
	unsigned b = bucket_of(bound);
	uint64_t below = 0;
	for (unsigned i = 0; i < b; i++)
		below += h->counts[i];
	uint64_t lo, hi;
	bucket_bounds(b, &lo, &hi);
	if (bound == hi)
		return below + h->counts[b];
	/* Monotone in bound: both factors grow with it and rounding is monotone. */
	double part = (double)h->counts[b] * (double)(bound - lo + 1) / ((double)(hi - lo) + 1.0);
	uint64_t add = (uint64_t)part;
	if (add > h->counts[b])
		add = h->counts[b];
	return below + add;
}

void gw_hist_bucket_range(uint64_t v, uint64_t *lo, uint64_t *hi)
{
	bucket_bounds(bucket_of(v), lo, hi);
}
