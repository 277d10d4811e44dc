/*
 * schedule.h - arrival processes for the open-loop load generator.
 *
 * A schedule hands out the send times of one stream's requests, as offsets
 * in nanoseconds from the stream's origin, in increasing order.  It never
 * looks at a clock: loadgen adds the offsets to the uv_hrtime() at which the
 * run started and sends each request when its time has come, whatever
 * happened to the earlier ones (open loop).  That keeps the arrival process
 * testable without sleeping.
 *
 *   fixed    the k-th arrival (k = 0, 1, ...) is at round(k x 1e9 / rate):
 *            computed from k, not by adding intervals, so it never drifts.
 *   poisson  inter-arrival times are independent and exponential with mean
 *            1/rate; the first arrival is one such interval after the origin.
 *            Times are summed in double precision (sub-picosecond error over
 *            hours) and rounded when handed out.
 *
 * Randomness comes from a seeded xoshiro256** generator, so a run is
 * reproducible from --seed and streams with different seeds are independent.
 */
#ifndef SLUICE_BENCH_LOADGEN_SCHEDULE_H
#define SLUICE_BENCH_LOADGEN_SCHEDULE_H

#include <stdint.h>

struct lg_rng {
	uint64_t s[4];
};

/* Seed the generator; any seed (0 included) gives a valid state. */
void lg_rng_seed(struct lg_rng *r, uint64_t seed);

/* Next 64 random bits. */
uint64_t lg_rng_next(struct lg_rng *r);

/* Uniform double in (0, 1]: never 0, so -log() of it is finite. */
double lg_rng_unit(struct lg_rng *r);

/* A 64-bit mix of `x` (splitmix64's finaliser): derives per-stream seeds. */
uint64_t lg_mix64(uint64_t x);

enum lg_arrival { LG_ARRIVAL_POISSON = 0, LG_ARRIVAL_FIXED };

struct lg_sched {
	enum lg_arrival arrival;
	double rate;		/* arrivals per second, > 0 */
	uint64_t k;		/* arrivals handed out so far */
	double next_ns;		/* offset of the next arrival, unrounded */
	struct lg_rng rng;
};

/* Start a schedule at offset 0.  `rate` must be > 0 (the caller validates). */
void lg_sched_init(struct lg_sched *s, enum lg_arrival arrival, double rate, uint64_t seed);

/* Offset of the next arrival, without consuming it. */
uint64_t lg_sched_peek(const struct lg_sched *s);

/* Offset of the next arrival; the one after it becomes the next. */
uint64_t lg_sched_next(struct lg_sched *s);

/* "fixed" / "poisson". */
const char *lg_arrival_name(enum lg_arrival a);

#endif
