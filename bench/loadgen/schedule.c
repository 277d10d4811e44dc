/* schedule.c - arrival processes and their random numbers; see schedule.h. */
#include <math.h>

#include "bench/loadgen/schedule.h"

uint64_t lg_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15u;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
	return x ^ (x >> 31);
}

void lg_rng_seed(struct lg_rng *r, uint64_t seed)
{
	/* splitmix64 fills the state, as xoshiro's authors recommend; its
	 * outputs are never all zero for four consecutive steps. */
	for (int i = 0; i < 4; i++) {
		seed += 0x9e3779b97f4a7c15u;
		r->s[i] = lg_mix64(seed);
	}
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t lg_rng_next(struct lg_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double lg_rng_unit(struct lg_rng *r)
{
	return ((double)(lg_rng_next(r) >> 11) + 1.0) * 0x1.0p-53;
}

static double draw_interval(struct lg_sched *s)
{
	return -log(lg_rng_unit(&s->rng)) * 1e9 / s->rate;
}

void lg_sched_init(struct lg_sched *s, enum lg_arrival arrival, double rate, uint64_t seed)
{
	s->arrival = arrival;
	s->rate = rate;
	s->k = 0;
	lg_rng_seed(&s->rng, seed);
	s->next_ns = arrival == LG_ARRIVAL_FIXED ? 0.0 : draw_interval(s);
}

uint64_t lg_sched_peek(const struct lg_sched *s)
{
	return (uint64_t)llround(s->next_ns);
}

uint64_t lg_sched_next(struct lg_sched *s)
{
	uint64_t t = lg_sched_peek(s);
	s->k++;
	if (s->arrival == LG_ARRIVAL_FIXED)
		s->next_ns = (double)s->k * 1e9 / s->rate;
	else
		s->next_ns += draw_interval(s);
	return t;
}

const char *lg_arrival_name(enum lg_arrival a)
{
	return a == LG_ARRIVAL_FIXED ? "fixed" : "poisson";
}
