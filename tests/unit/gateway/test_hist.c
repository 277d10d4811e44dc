/*
 * test_hist.c - the log-linear histogram.
 *
 * Percentiles are checked against the exact nearest-rank percentile of the
 * sorted samples, for several distributions, within the bound hist.h states
 * (1/64 of the exact value).  Merge, record_n and count_le are checked
 * against what they promise to equal; the edges of the 64-bit range and the
 * empty histogram have tests of their own.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/hist.h"

#define N_SAMPLES 100000

/* splitmix64: small, seedable, good enough to draw test data. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1]. */
static double rng_unit(uint64_t *s)
{
	return ((double)(rng_next(s) >> 11) + 1.0) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The exact nearest-rank percentile, with the same rank rule as hist.c. */
static uint64_t exact_percentile(const uint64_t *sorted, size_t n, double p)
{
	if (p <= 0)
		return sorted[0];
	if (p >= 100)
		return sorted[n - 1];
	double r = p * (double)n / 100.0;
	uint64_t rank = (uint64_t)r;
	if (r - (double)rank > 1e-9 * r)
		rank++;
	if (rank < 1)
		rank = 1;
	return sorted[rank - 1];
}

static size_t exact_count_le(const uint64_t *sorted, size_t n, uint64_t bound)
{
	size_t lo = 0, hi = n; /* first index whose value > bound */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sorted[mid] <= bound)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

enum dist { D_UNIFORM, D_EXPONENTIAL, D_LOGNORMAL, D_LOGUNIFORM, D_SMALL };

static uint64_t draw(enum dist d, uint64_t *s)
{
	switch (d) {
	case D_UNIFORM:		/* 1 us .. 10 ms */
		return 1000 + rng_next(s) % 10000000;
	case D_EXPONENTIAL:	/* mean 20 ms */
		return (uint64_t)(-log(rng_unit(s)) * 20e6);
	case D_LOGNORMAL: {	/* median 1 ms, sigma 2: spans about 1 us .. 10 s */
		double u1 = rng_unit(s), u2 = rng_unit(s);
		double z = sqrt(-2.0 * log(u1)) * cos(2 * M_PI * u2);
		double v = exp(log(1e6) + 2.0 * z);
		return v < 1000 ? 1000 : v > 1e10 ? 10000000000u : (uint64_t)v;
	}
	case D_LOGUNIFORM:	/* 1 us .. 10 s, evenly over the decades */
		return (uint64_t)exp(log(1e3) + rng_unit(s) * (log(1e10) - log(1e3)));
	case D_SMALL:		/* 0 .. 99: the exact region and the first blocks */
		return rng_next(s) % 100;
	}
	return 0;
}

static void check_distribution(enum dist d, uint64_t seed)
{
	uint64_t *v = malloc(N_SAMPLES * sizeof(*v));
	cr_assert_not_null(v);
	struct gw_hist *h = malloc(sizeof(*h));
	cr_assert_not_null(h);
	gw_hist_init(h);
	long double sum = 0;
	for (size_t i = 0; i < N_SAMPLES; i++) {
		v[i] = draw(d, &seed);
		sum += v[i];
		gw_hist_record(h, v[i]);
	}
	qsort(v, N_SAMPLES, sizeof(*v), cmp_u64);

	cr_assert_eq(gw_hist_count(h), N_SAMPLES);
	cr_assert_eq(gw_hist_min(h), v[0]);
	cr_assert_eq(gw_hist_max(h), v[N_SAMPLES - 1]);
	cr_assert_float_eq(gw_hist_sum(h), (double)sum, 1e-9 * (double)sum);
	cr_assert_float_eq(gw_hist_mean(h), (double)(sum / N_SAMPLES), 1e-9 * (double)(sum / N_SAMPLES));

	static const double ps[] = {0, 0.1, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100};
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		uint64_t want = exact_percentile(v, N_SAMPLES, ps[i]);
		uint64_t got = gw_hist_percentile(h, ps[i]);
		uint64_t diff = got > want ? got - want : want - got;
		cr_assert(diff * 64 <= want, "dist %d p%g: got %llu, exact %llu (error %.3f%%)", d,
			  ps[i], (unsigned long long)got, (unsigned long long)want,
			  100.0 * (double)diff / (double)want);
	}
	/* The error bound is not loose by accident: the answer is a midpoint. */
	cr_assert_eq(gw_hist_percentile(h, 0), v[0]);
	cr_assert_eq(gw_hist_percentile(h, 100), v[N_SAMPLES - 1]);
	free(h);
	free(v);
}

Test(hist, uniform_percentiles, .timeout = 20) { check_distribution(D_UNIFORM, 1); }
Test(hist, exponential_percentiles, .timeout = 20) { check_distribution(D_EXPONENTIAL, 2); }
Test(hist, lognormal_percentiles, .timeout = 20) { check_distribution(D_LOGNORMAL, 3); }
Test(hist, loguniform_percentiles, .timeout = 20) { check_distribution(D_LOGUNIFORM, 4); }

Test(hist, small_values_are_exact, .timeout = 20)
{
	uint64_t seed = 5;
	uint64_t *v = malloc(N_SAMPLES * sizeof(*v));
	struct gw_hist h;
	gw_hist_init(&h);
	for (size_t i = 0; i < N_SAMPLES; i++) {
		v[i] = draw(D_SMALL, &seed);
		gw_hist_record(&h, v[i]);
	}
	qsort(v, N_SAMPLES, sizeof(*v), cmp_u64);
	for (double p = 0; p <= 100; p += 0.5) {
		uint64_t want = exact_percentile(v, N_SAMPLES, p), got = gw_hist_percentile(&h, p);
		if (want < 64)
			cr_assert_eq(got, want, "p%g: %llu, exact %llu", p, (unsigned long long)got,
				     (unsigned long long)want);
		else
			cr_assert_leq((got > want ? got - want : want - got) * 64, want);
	}
	for (uint64_t b = 0; b < 64; b++)
		cr_assert_eq(gw_hist_count_le(&h, b), exact_count_le(v, N_SAMPLES, b), "le %llu",
			     (unsigned long long)b);
	free(v);
}

/* The buckets tile 0 .. UINT64_MAX without gaps, each within 1/32 of its low edge. */
Test(hist, bucket_layout, .timeout = 20)
{
	uint64_t v = 0, n = 0;
	for (;;) {
		uint64_t lo, hi;
		gw_hist_bucket_range(v, &lo, &hi);
		cr_assert_eq(lo, v, "bucket of %llu starts at %llu", (unsigned long long)v,
			     (unsigned long long)lo);
		cr_assert_geq(hi, lo);
		if (lo >= 64)
			cr_assert_leq((hi - lo + 1) * 32, lo, "bucket [%llu, %llu] too wide",
				      (unsigned long long)lo, (unsigned long long)hi);
		else
			cr_assert_eq(hi, lo);
		/* every value of the bucket maps to it */
		uint64_t l2, h2;
		gw_hist_bucket_range(hi, &l2, &h2);
		cr_assert(l2 == lo && h2 == hi);
		gw_hist_bucket_range(lo + (hi - lo) / 2, &l2, &h2);
		cr_assert(l2 == lo && h2 == hi);
		n++;
		if (hi == UINT64_MAX)
			break;
		v = hi + 1;
	}
	cr_assert_eq(n, GW_HIST_BUCKETS);
	cr_assert_eq(sizeof(struct gw_hist), 15400);
}

Test(hist, merge_equals_recording_both, .timeout = 20)
{
	static struct gw_hist a, b, both;
	gw_hist_init(&a);
	gw_hist_init(&b);
	gw_hist_init(&both);
	uint64_t seed = 7;
	for (int i = 0; i < 50000; i++) {
		uint64_t x = draw(D_LOGNORMAL, &seed), y = draw(D_EXPONENTIAL, &seed);
		gw_hist_record(&a, x);
		gw_hist_record(&b, y);
		gw_hist_record(&both, x);
		gw_hist_record(&both, y);
	}
	gw_hist_record(&b, UINT64_MAX);
	gw_hist_record(&both, UINT64_MAX);
	gw_hist_merge(&a, &b);
	cr_assert(memcmp(&a, &both, sizeof(a)) == 0, "merged histogram differs");

	/* Merging an empty histogram, or into one, changes nothing / copies. */
	static struct gw_hist empty, copy;
	gw_hist_init(&empty);
	gw_hist_merge(&a, &empty);
	cr_assert(memcmp(&a, &both, sizeof(a)) == 0);
	gw_hist_init(&copy);
	gw_hist_merge(&copy, &both);
	cr_assert(memcmp(&copy, &both, sizeof(a)) == 0);
}

Test(hist, record_n_equals_n_records, .timeout = 20)
{
	static struct gw_hist a, b;
	gw_hist_init(&a);
	gw_hist_init(&b);
	for (uint64_t v = 1; v < 1000000000; v = v * 3 + 1) {
		gw_hist_record_n(&a, v, v % 7);
		for (uint64_t k = 0; k < v % 7; k++)
			gw_hist_record(&b, v);
	}
	cr_assert(memcmp(&a, &b, sizeof(a)) == 0);
	gw_hist_reset(&a);
	gw_hist_record_n(&a, 12345, 0);
	cr_assert_eq(gw_hist_count(&a), 0);
	cr_assert_eq(gw_hist_min(&a), 0);
	cr_assert_eq(gw_hist_max(&a), 0);
}

Test(hist, count_le_is_cumulative_and_exact_at_edges, .timeout = 20)
{
	uint64_t seed = 11;
	uint64_t *v = malloc(N_SAMPLES * sizeof(*v));
	struct gw_hist *h = malloc(sizeof(*h));
	gw_hist_init(h);
	for (size_t i = 0; i < N_SAMPLES; i++) {
		v[i] = draw(D_LOGUNIFORM, &seed);
		gw_hist_record(h, v[i]);
	}
	qsort(v, N_SAMPLES, sizeof(*v), cmp_u64);

	/* Exact at every bucket's high edge, from below the minimum to past the max. */
	uint64_t edge = 0, prev = 0, edges = 0;
	for (;;) {
		uint64_t lo, hi;
		gw_hist_bucket_range(edge, &lo, &hi);
		uint64_t got = gw_hist_count_le(h, hi);
		cr_assert_eq(got, exact_count_le(v, N_SAMPLES, hi), "le %llu",
			     (unsigned long long)hi);
		cr_assert_geq(got, prev);
		prev = got;
		edges++;
		if (hi == UINT64_MAX)
			break;
		edge = hi + 1;
	}
	cr_assert_eq(edges, GW_HIST_BUCKETS);
	cr_assert_eq(prev, N_SAMPLES);

	/* Monotone between edges too, and never off by more than one bucket's count. */
	prev = 0;
	for (double x = 500; x < 2e10; x *= 1.0013) {
		uint64_t b = (uint64_t)x;
		uint64_t got = gw_hist_count_le(h, b);
		cr_assert_geq(got, prev, "count_le(%llu) = %llu after %llu", (unsigned long long)b,
			      (unsigned long long)got, (unsigned long long)prev);
		prev = got;
		uint64_t lo, hi;
		gw_hist_bucket_range(b, &lo, &hi);
		size_t below = lo ? exact_count_le(v, N_SAMPLES, lo - 1) : 0;
		size_t upto = exact_count_le(v, N_SAMPLES, hi);
		cr_assert(got >= below && got <= upto);
	}
	/* Prometheus-style bounds in ns (5 ms, 10 ms, ...) stay within their bucket. */
	static const uint64_t le[] = {5000000, 10000000, 25000000, 50000000, 100000000, 250000000};
	for (size_t i = 0; i < sizeof(le) / sizeof(le[0]); i++) {
		size_t want = exact_count_le(v, N_SAMPLES, le[i]);
		uint64_t got = gw_hist_count_le(h, le[i]);
		uint64_t diff = got > want ? got - want : want - got;
		cr_assert_leq(diff, N_SAMPLES / 1000, "le %llu: %llu vs %zu",
			      (unsigned long long)le[i], (unsigned long long)got, want);
	}
	free(h);
	free(v);
}

Test(hist, empty, .timeout = 20)
{
	struct gw_hist h;
	gw_hist_init(&h);
	cr_assert_eq(gw_hist_count(&h), 0);
	cr_assert_eq(gw_hist_min(&h), 0);
	cr_assert_eq(gw_hist_max(&h), 0);
	cr_assert_eq(gw_hist_percentile(&h, 50), 0);
	cr_assert_eq(gw_hist_percentile(&h, 100), 0);
	cr_assert_eq(gw_hist_count_le(&h, UINT64_MAX), 0);
	cr_assert_float_eq(gw_hist_mean(&h), 0.0, 0.0);
	cr_assert_float_eq(gw_hist_sum(&h), 0.0, 0.0);
}

Test(hist, extreme_values, .timeout = 20)
{
	struct gw_hist h;
	gw_hist_init(&h);
	gw_hist_record(&h, 0);
	cr_assert_eq(gw_hist_min(&h), 0);
	cr_assert_eq(gw_hist_max(&h), 0);
	cr_assert_eq(gw_hist_percentile(&h, 50), 0);
	cr_assert_eq(gw_hist_count_le(&h, 0), 1);

	gw_hist_record(&h, 1);
	gw_hist_record(&h, UINT64_MAX);
	cr_assert_eq(gw_hist_count(&h), 3);
	cr_assert_eq(gw_hist_min(&h), 0);
	cr_assert_eq(gw_hist_max(&h), UINT64_MAX);
	cr_assert_eq(gw_hist_percentile(&h, 0), 0);
	cr_assert_eq(gw_hist_percentile(&h, 50), 1);
	cr_assert_eq(gw_hist_percentile(&h, 100), UINT64_MAX);
	uint64_t p99 = gw_hist_percentile(&h, 99); /* top bucket's midpoint */
	cr_assert_leq(UINT64_MAX - p99, UINT64_MAX / 64);
	cr_assert_eq(gw_hist_count_le(&h, 0), 1);
	cr_assert_eq(gw_hist_count_le(&h, 1), 2);
	/* Inside the top bucket the answer is interpolated: off by at most its count. */
	uint64_t le = gw_hist_count_le(&h, UINT64_MAX - 1);
	cr_assert(le == 2 || le == 3);
	cr_assert_eq(gw_hist_count_le(&h, UINT64_MAX), 3);
	/* 0 + 1 + (2^64 - 1) = 2^64: the sum does not wrap. */
	cr_assert_float_eq(gw_hist_sum(&h), 18446744073709551616.0, 1.0);

	/* (2^64 - 1)^2 needs all 128 bits of the sum. */
	gw_hist_reset(&h);
	gw_hist_record_n(&h, UINT64_MAX, UINT64_MAX);
	cr_assert_eq(h.sum_hi, UINT64_MAX - 1);
	cr_assert_eq(h.sum_lo, 1);
	cr_assert_eq(gw_hist_count(&h), UINT64_MAX);
	cr_assert_float_eq(gw_hist_mean(&h), 18446744073709551615.0, 1e4);

	/* A near-max value is answered within the bound. */
	gw_hist_reset(&h);
	uint64_t big = UINT64_MAX / 3;
	gw_hist_record(&h, big);
	gw_hist_record(&h, big + 1);
	uint64_t lo, hi;
	gw_hist_bucket_range(big, &lo, &hi);
	cr_assert(lo + (hi - lo) / 2 < big, "the test needs big above its bucket's midpoint");
	cr_assert_eq(gw_hist_percentile(&h, 50), big); /* clamped to the exact min */
	cr_assert_eq(gw_hist_percentile(&h, 100), big + 1);
}

/* p outside 0..100 is clamped, not undefined. */
Test(hist, percentile_argument_is_clamped, .timeout = 20)
{
	struct gw_hist h;
	gw_hist_init(&h);
	for (uint64_t v = 100; v <= 1000; v += 100)
		gw_hist_record(&h, v);
	cr_assert_eq(gw_hist_percentile(&h, -5), 100);
	cr_assert_eq(gw_hist_percentile(&h, 250), 1000);
	cr_assert_eq(gw_hist_percentile(&h, NAN), 100);
}
