/*
 * test_adapt.c - the AIMD controller of a backend's slots, against a model
 * of a continuous-batching server on a fake clock.
 *
 * The model: sluice always has work (its limit binds), the server batches
 * at most `batch` sequences and queues the rest, so with `limit` requests
 * sent it reports running = min(limit, batch), waiting = the excess.  For
 * the latency signal, a request that finds the batch full waits a whole
 * generation: its time to first token jumps from 50 ms to 550 ms.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "backends/adapt.h"
#include "backends/backend.h"
#include "conf/conf.h"

#define STEP_MS 1000

static const struct backend_adapt_use BUSY = { .binding = true };
static const struct backend_adapt_use IDLE = { .binding = false };

struct server {
	unsigned batch;
	uint64_t now;
};

static struct backend_vllm_load load_of(const struct server *s, unsigned limit)
{
	struct backend_vllm_load l = {
		.running = limit < s->batch ? limit : s->batch,
		.waiting = limit > s->batch ? limit - s->batch : 0,
		.kv_usage = 0.3,
	};
	return l;
}

static enum backend_adapt_change metrics_step(struct backend_adapt *a, struct server *s)
{
	struct backend_vllm_load l = load_of(s, a->limit);
	s->now += STEP_MS;
	return backend_adapt_metrics(a, &l, BUSY, s->now);
}

static enum backend_adapt_change latency_step(struct backend_adapt *a, struct server *s)
{
	/* Ten requests' first tokens per interval; with the batch full, the
	 * ones beyond it waited. */
	for (unsigned i = 0; i < 10; i++)
		backend_adapt_ttft(a, a->limit > s->batch && i < 3 ? 550 : 50);
	s->now += STEP_MS;
	return backend_adapt_latency(a, BUSY, s->now);
}

/* Run `n` steps; the limit must settle in [batch, batch + 1] within
 * `within` of them and stay there, moving at most one slot per step. */
static void assert_settles(struct backend_adapt *a, struct server *s, bool latency, unsigned within, unsigned n)
{
	unsigned settled_at = 0;
	for (unsigned i = 1; i <= n; i++) {
		unsigned was = a->limit;
		if (latency)
			latency_step(a, s);
		else
			metrics_step(a, s);
		bool in = a->limit >= s->batch && a->limit <= s->batch + 1;
		if (settled_at == 0 && in)
			settled_at = i;
		if (settled_at != 0 && settled_at < i) {
			cr_assert(in, "step %u: limit %u left [%u, %u] after settling at step %u", i, a->limit,
				  s->batch, s->batch + 1, settled_at);
			cr_assert(was - a->limit <= 1 || a->limit - was <= 1, "step %u: %u -> %u is more than one step",
				  i, was, a->limit);
		}
	}
	cr_assert(settled_at != 0 && settled_at <= within, "settled at step %u (want <= %u), limit %u", settled_at,
		  within, a->limit);
}

/* ---- vllm_metrics ---------------------------------------------------------- */

Test(adapt, metrics_converge_down_from_a_limit_far_too_high, .timeout = 5)
{
	struct backend_adapt a = { 0 };
	struct server s = { .batch = 16 };
	backend_adapt_start(&a, 512, 2, 256);
	cr_assert_eq(a.limit, 256, "the start is clamped to max");
	assert_settles(&a, &s, false, 8, 200);
	cr_assert_gt(a.decreases, 0);
}

Test(adapt, metrics_converge_up_from_a_limit_far_too_low, .timeout = 5)
{
	struct backend_adapt a = { 0 };
	struct server s = { .batch = 64 };
	backend_adapt_start(&a, 16, 2, 256);
	assert_settles(&a, &s, false, 12, 200);
}

Test(adapt, metrics_hold_most_of_the_time_at_the_batch_size, .timeout = 5)
{
	struct backend_adapt a = { 0 };
	struct server s = { .batch = 64 };
	backend_adapt_start(&a, 64, 2, 256);
	unsigned queued = 0;
	for (unsigned i = 0; i < 100; i++) {
		metrics_step(&a, &s);
		queued += a.limit > s.batch;
	}
	/* A probe one above the batch lasts two polls (congestion is two in a
	 * row), then a hold of BACKEND_ADAPT_HOLD steps and the step back up:
	 * the server's queue is non-empty two steps in HOLD + 3. */
	cr_assert_leq(queued, 200 / (BACKEND_ADAPT_HOLD + 3) + 2, "%u of 100 steps above the batch", queued);
}

Test(adapt, metrics_follow_a_batch_that_grows_and_shrinks, .timeout = 5)
{
	struct backend_adapt a = { 0 };
	struct server s = { .batch = 16 };
	backend_adapt_start(&a, 256, 2, 256);
	assert_settles(&a, &s, false, 8, 50);
	s.batch = 32;	/* POST /admin/slots?n=32 */
	assert_settles(&a, &s, false, 16 * (BACKEND_ADAPT_HOLD + 1) + 4, 120);
	/* A shrink shows once the larger batch is forgotten. */
	s.batch = 8;
	assert_settles(&a, &s, false, 2 * BACKEND_ADAPT_RUN_WINDOW + 4, 100);
}

Test(adapt, a_limit_partly_idle_settles_at_the_batch, .timeout = 5)
{
	/* A class cap (max_slot_share 0.75) keeps a quarter of the limit for
	 * another class that uses none of it: sluice sends 3/4 of it while its
	 * queue is full.  Slow start takes the queue as demand until the
	 * server queues; from then on the limit is the batch, as an operator
	 * would have set it, and the cap's headroom stays free. */
	struct backend_adapt a = { 0 };
	unsigned batch = 64;
	backend_adapt_start(&a, 16, 2, 1024);
	for (unsigned i = 0; i < 300; i++) {
		unsigned sent = a.limit * 3 / 4;
		struct backend_vllm_load l = {
			.running = sent < batch ? sent : batch,
			.waiting = sent > batch ? sent - batch : 0,
			.kv_usage = 0.3,
		};
		struct backend_adapt_use use = { .binding = false, .queued = true };
		backend_adapt_metrics(&a, &l, use, (i + 1) * STEP_MS);
		if (i >= 30)
			cr_assert_eq(a.limit, batch, "step %u: limit %u", i, a.limit);
	}
	cr_assert_not(a.slow_start);
}

Test(adapt, waits_for_the_next_step_are_no_queue, .timeout = 5)
{
	/* Sequences that end together are replaced together, and their
	 * successors wait for the running step or prefill: polls often catch
	 * a dozen waiting while the batch has room.  Under a class cap of 3/4
	 * the limit must stay at the batch, not spiral down on those waves. */
	struct backend_adapt a = { 0 };
	unsigned batch = 64;
	backend_adapt_start(&a, 16, 2, 1024);
	for (unsigned i = 0; i < 400; i++) {
		unsigned sent = a.limit * 3 / 4, wave = i % 3 ? 12 : 0;
		unsigned run = sent < batch ? sent : batch, wait = sent - run;
		if (wait == 0 && wave < run) {	/* a wave: some of those sent wait for the next step */
			run -= wave;
			wait = wave;
		}
		struct backend_vllm_load l = { .running = run, .waiting = wait, .kv_usage = 0.3 };
		struct backend_adapt_use use = { .binding = false, .queued = true };
		backend_adapt_metrics(&a, &l, use, (i + 1) * STEP_MS);
		if (i >= 40)
			cr_assert_eq(a.limit, batch, "step %u: limit %u", i, a.limit);
	}
}

Test(adapt, a_cut_still_draining_is_not_cut_again, .timeout = 5)
{
	/* Requests in flight finish over several steps (48 a step here), so
	 * after a cut the server still queues what the old limit sent. */
	struct backend_adapt a = { 0 };
	unsigned batch = 64, inflight = 512, lowest = 1000;
	backend_adapt_start(&a, 512, 2, 1024);
	for (unsigned i = 0; i < 200; i++) {
		struct backend_vllm_load l = {
			.running = inflight < batch ? inflight : batch,
			.waiting = inflight > batch ? inflight - batch : 0,
			.kv_usage = 0.3,
		};
		struct backend_adapt_use use = { .binding = true, .draining = inflight > a.limit };
		backend_adapt_metrics(&a, &l, use, (i + 1) * STEP_MS);
		if (a.limit < lowest)
			lowest = a.limit;
		/* Completions drain the excess; the queue in sluice refills up to the limit. */
		inflight = inflight > a.limit ? (inflight - a.limit > 48 ? inflight - 48 : a.limit) : a.limit;
	}
	cr_assert_geq(lowest, batch / 2, "cut to %u on a queue that was already draining", lowest);
	cr_assert(a.limit >= batch && a.limit <= batch + 1, "limit %u", a.limit);
}

Test(adapt, bounds_hold_whatever_the_server_says, .timeout = 5)
{
	struct backend_adapt a = { 0 };
	struct server s = { .batch = 64 };
	backend_adapt_start(&a, 4, 2, 10);
	for (unsigned i = 0; i < 100; i++) {
		metrics_step(&a, &s);
		cr_assert_leq(a.limit, 10);
	}
	cr_assert_eq(a.limit, 10, "a batch above max: the limit sits at max");

	s.batch = 1;
	backend_adapt_start(&a, 4, 6, 10);	/* a reload: new bounds, the limit kept */
	for (unsigned i = 0; i < 100; i++) {
		metrics_step(&a, &s);
		cr_assert_geq(a.limit, 6);
	}
	cr_assert_eq(a.limit, 6, "a batch below min: the limit sits at min");
}

Test(adapt, an_idle_backend_does_not_grow, .timeout = 5)
{
	struct backend_adapt a = { 0 };
	backend_adapt_start(&a, 16, 2, 256);
	struct backend_vllm_load idle = { .running = 3, .waiting = 0, .kv_usage = 0.01 };
	for (unsigned i = 0; i < 50; i++)
		backend_adapt_metrics(&a, &idle, IDLE, (i + 1) * STEP_MS);
	cr_assert_eq(a.limit, 16, "not binding: no evidence that more would batch");
}

Test(adapt, lost_metrics_keep_the_last_limit, .timeout = 5)
{
	struct backend_adapt a = { 0 };
	struct server s = { .batch = 24 };
	backend_adapt_start(&a, 200, 2, 256);
	assert_settles(&a, &s, false, 8, 30);
	unsigned kept = a.limit;
	for (unsigned i = 0; i < 30; i++) {
		s.now += STEP_MS;
		cr_assert_eq(backend_adapt_metrics(&a, NULL, BUSY, s.now), BACKEND_ADAPT_SAME);
		cr_assert(a.lost);
		cr_assert_eq(a.limit, kept);
	}
	metrics_step(&a, &s);
	cr_assert_not(a.lost, "metrics answer again: adapting again");
	assert_settles(&a, &s, false, 1, 30);
}

Test(adapt, one_queued_poll_only_stops_the_increase, .timeout = 5)
{
	struct backend_adapt a = { 0 };
	backend_adapt_start(&a, 40, 2, 256);
	struct backend_vllm_load blip = { .running = 39, .waiting = 1, .kv_usage = 0.3 };
	struct backend_vllm_load calm = { .running = 40, .waiting = 0, .kv_usage = 0.3 };
	for (unsigned i = 0; i < 20; i++) {
		backend_adapt_metrics(&a, &blip, BUSY, (2 * i + 1) * STEP_MS);
		backend_adapt_metrics(&a, &calm, BUSY, (2 * i + 2) * STEP_MS);
		cr_assert_geq(a.limit, 40, "a request waiting for the next step is no queue");
	}
	cr_assert_eq(a.decreases, 0);
}

Test(adapt, a_full_kv_cache_decreases, .timeout = 5)
{
	struct backend_adapt a = { 0 };
	backend_adapt_start(&a, 40, 2, 256);
	struct backend_vllm_load full = { .running = 40, .waiting = 0, .kv_usage = 0.97 };
	cr_assert_eq(backend_adapt_metrics(&a, &full, BUSY, STEP_MS), BACKEND_ADAPT_SAME, "one poll: hold");
	cr_assert_eq(backend_adapt_metrics(&a, &full, BUSY, 2 * STEP_MS), BACKEND_ADAPT_DOWN);
	cr_assert_lt(a.limit, 40);
	cr_assert_gt(a.limit, 2);
}

Test(adapt, stop_forgets_everything, .timeout = 5)
{
	struct backend_adapt a = { 0 };
	backend_adapt_start(&a, 40, 2, 256);
	backend_adapt_stop(&a);
	cr_assert_not(a.on);
	cr_assert_eq(a.limit, 0);
	struct backend_vllm_load q = { .running = 4, .waiting = 9, .kv_usage = 0.1 };
	cr_assert_eq(backend_adapt_metrics(&a, &q, BUSY, 1), BACKEND_ADAPT_SAME, "off: no step moves anything");
}

/* ---- latency ---------------------------------------------------------------- */

Test(adapt, latency_converges_from_above_and_below, .timeout = 5)
{
	struct backend_adapt a = { 0 };
	struct server s = { .batch = 16 };
	backend_adapt_start(&a, 256, 2, 256);
	assert_settles(&a, &s, true, 8, 200);

	struct backend_adapt b = { 0 };
	struct server t = { .batch = 64 };
	backend_adapt_start(&b, 16, 2, 256);
	assert_settles(&b, &t, true, 30, 200);
}

Test(adapt, latency_without_first_tokens_holds, .timeout = 5)
{
	struct backend_adapt a = { 0 };
	backend_adapt_start(&a, 30, 2, 256);
	for (unsigned i = 0; i < 20; i++)
		cr_assert_eq(backend_adapt_latency(&a, BUSY, (i + 1) * STEP_MS), BACKEND_ADAPT_SAME);
	cr_assert_eq(a.limit, 30);
}

/* ---- the slots it drives (backends/pool.c) ------------------------------------ */

static struct conf *conf_of(const char *text)
{
	struct conf_diag diag = { 0 };
	struct conf *c = NULL;
	cr_assert_eq(conf_parse("t.yaml", text, strlen(text), &c, &diag), 0, "%s", diag.count ? diag.msg[0] : "");
	return c;
}

#define POOL_YAML \
	"listen: 127.0.0.1:0\n" \
	"admin_listen: 127.0.0.1:1\n" \
	"classes:\n" \
	"  standard: { pools: [gpu] }\n" \
	"pools:\n" \
	"  gpu:\n" \
	"    slice: elastic\n" \
	"    slots: { adapt: vllm_metrics, min: 2, max: 256 }\n" \
	"    backends: [ { address: 127.0.0.1:9001, max_inflight: 12 } ]\n"

Test(adapt, a_shrinking_limit_stops_new_requests_only, .timeout = 5)
{
	struct conf *c = conf_of(POOL_YAML);
	struct backend_set set;
	cr_assert_eq(backend_set_init(&set, c), 0);
	struct backend_pool *p = set.pools[0];
	struct backend *b = p->backends[0];
	backend_adapt_start(&b->adapt, b->total, c->pools[0].slots.min, c->pools[0].slots.max);
	backend_slots_apply(b);
	cr_assert_eq(b->max_inflight, 12, "max_inflight is where adapting starts");
	for (unsigned i = 0; i < 12; i++) {
		cr_assert_not_null(backend_pool_pick(p, 0));
		backend_acquire(b);
	}
	cr_assert_eq(b->adapt.peak, 12, "the peak says the limit bound");
	struct backend_vllm_load q = { .running = 4, .waiting = 8, .kv_usage = 0.2 };
	/* A wait on one poll only stops the increase; on the next, with the
	 * server at its batch, it is a queue. */
	cr_assert_eq(backend_adapt_metrics(&b->adapt, &q, BUSY, 1000), BACKEND_ADAPT_SAME);
	cr_assert_eq(backend_adapt_metrics(&b->adapt, &q, BUSY, 2000), BACKEND_ADAPT_DOWN);
	backend_slots_apply(b);
	cr_assert_eq(b->max_inflight, 4, "what the server runs");
	cr_assert_eq(p->slots, 4);
	cr_assert_eq(b->inflight, 12, "nothing in flight is touched");
	while (b->inflight >= 4) {
		cr_assert_null(backend_pool_pick(p, 0), "no new request while %u are in flight", b->inflight);
		backend_release(b);
	}
	cr_assert_not_null(backend_pool_pick(p, 0), "under the limit again: a new one may start");
	while (b->inflight > 0)
		backend_release(b);
	backend_set_finish(&set);
	conf_destroy(c);
}

Test(adapt, each_replica_uses_its_share_of_the_limit, .timeout = 5)
{
	struct conf *c = conf_of(POOL_YAML);
	struct backend_set set;
	cr_assert_eq(backend_set_init(&set, c), 0);
	struct backend *b = set.pools[0]->backends[0];
	backend_adapt_start(&b->adapt, 65, 2, 256);
	backend_set_replicas(&set, 4);
	cr_assert_eq(b->max_inflight, 16, "floor(65 / 4)");
	cr_assert_eq(set.pools[0]->slots, 16);
	backend_adapt_stop(&b->adapt);
	backend_slots_apply(b);
	cr_assert_eq(b->max_inflight, 3, "not adapting: floor(max_inflight 12 / 4)");
	backend_set_finish(&set);
	conf_destroy(c);
}
