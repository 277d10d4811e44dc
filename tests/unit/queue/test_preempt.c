/*
 * test_preempt.c - the choice of a preemption victim on a hand-driven
 * clock: the shortest-running opportunistic exchange, never interactive
 * or standard work, never beyond max_per_s, nothing when a slot is free
 * or when the waiting request would not miss; and the refund.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "conf/conf.h"
#include "queue/admit.h"
#include "queue/preempt.h"

#define YAML(preemption) \
	"listen: 127.0.0.1:0\n" \
	"admin_listen: 127.0.0.1:1\n" \
	"limits: { default_max_tokens: 100 }\n" \
	"classes:\n" \
	"  interactive: { max_wait_ms: 200, pools: [gold, spot] }\n" \
	"  standard: { pools: [spot] }\n" \
	"  opportunistic: { pools: [spot, batch], " preemption " }\n" \
	"pools:\n" \
	"  gold: { slice: reserved, backends: [ { address: 127.0.0.1:9001, max_inflight: 2 } ] }\n" \
	"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 8 } ] }\n" \
	"  batch: { slice: elastic, backends: [ { address: 127.0.0.1:9003, max_inflight: 8 } ] }\n" \
	"tenants:\n" \
	"  a: { keys: [ { sha256: 486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7 } ], " \
	"default_class: opportunistic, max_class: interactive, tokens_per_min: 6000 }\n"

enum { GOLD = 0, SPOT = 1, BATCH = 2 };
enum { I = CONF_CLASS_INTERACTIVE, S = CONF_CLASS_STANDARD, O = CONF_CLASS_OPPORTUNISTIC };

static struct conf *load(const char *text)
{
	struct conf *c = NULL;
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("t.yaml", text, strlen(text), &c, &diag), 0, "%s", diag.count ? diag.msg[0] : "");
	return c;
}

/* An interactive request queued at t=1000 with a 200 ms budget, that may
 * use gold and spot, with no free slot: judged at t=1100. */
static struct queue_preempt_need waiting(void)
{
	return (struct queue_preempt_need){ .klass = I, .pools = (1u << GOLD) | (1u << SPOT),
					    .enqueued_ms = 1000, .deadline_ms = 1200 };
}

Test(preempt, victim_is_the_shortest_running_opportunistic, .timeout = 10)
{
	struct conf *c = load(YAML("preemption: { enabled: true, max_per_s: 100 }"));
	struct queue_preempt p;
	queue_preempt_init(&p, c, 0);
	struct queue_preempt_slot s[] = {
		{ .klass = I, .pool = GOLD, .started_ms = 1090 },	/* the newest of all: never */
		{ .klass = O, .pool = SPOT, .started_ms = 200 },
		{ .klass = O, .pool = SPOT, .started_ms = 900 },	/* the shortest-running opportunistic */
		{ .klass = S, .pool = SPOT, .started_ms = 1050 },	/* newer, but standard: never */
		{ .klass = O, .pool = SPOT, .started_ms = 500 },
		{ .klass = O, .pool = BATCH, .started_ms = 1000 },	/* newer, but not a pool it may use */
	};
	struct queue_preempt_need n = waiting();
	cr_assert_eq(queue_preempt_choose(&p, c, &n, s, 6, 1100, NULL), 2);
	/* With that one gone (the caller removes it), the next shortest. */
	s[2] = s[5];
	cr_assert_eq(queue_preempt_choose(&p, c, &n, s, 5, 1100, NULL), 4);
	conf_destroy(c);
}

Test(preempt, never_interactive_or_standard, .timeout = 10)
{
	struct conf *c = load(YAML("preemption: { enabled: true, max_per_s: 100 }"));
	struct queue_preempt p;
	queue_preempt_init(&p, c, 0);
	struct queue_preempt_slot s[] = {
		{ .klass = I, .pool = GOLD, .started_ms = 1000 },
		{ .klass = I, .pool = SPOT, .started_ms = 1000 },
		{ .klass = S, .pool = SPOT, .started_ms = 1000 },
	};
	struct queue_preempt_need n = waiting();
	for (uint64_t now = 1100; now < 1300; now += 10)
		cr_assert_eq(queue_preempt_choose(&p, c, &n, s, 3, now, NULL), -1);
	/* Nor does a standard or opportunistic request ever preempt. */
	struct queue_preempt_slot o[] = { { .klass = O, .pool = SPOT, .started_ms = 1000 } };
	n.klass = S;
	cr_assert_eq(queue_preempt_choose(&p, c, &n, o, 1, 1150, NULL), -1);
	n.klass = O;
	cr_assert_eq(queue_preempt_choose(&p, c, &n, o, 1, 1150, NULL), -1);
	conf_destroy(c);
}

Test(preempt, not_when_disabled, .timeout = 10)
{
	struct queue_preempt_slot s[] = { { .klass = O, .pool = SPOT, .started_ms = 1000 } };
	struct queue_preempt_need n = waiting();
	const char *off[] = { YAML("preemption: { enabled: false, max_per_s: 100 }"), YAML("min_share: 0") };
	for (int i = 0; i < 2; i++) {
		struct conf *c = load(off[i]);
		struct queue_preempt p;
		queue_preempt_init(&p, c, 0);
		cr_assert_not(p.any);
		cr_assert_eq(queue_preempt_choose(&p, c, &n, s, 1, 1150, NULL), -1);
		conf_destroy(c);
	}
}

Test(preempt, nothing_when_a_slot_is_free_or_no_miss, .timeout = 10)
{
	struct conf *c = load(YAML("preemption: { enabled: true, max_per_s: 100 }"));
	struct queue_preempt p;
	queue_preempt_init(&p, c, 0);
	struct queue_preempt_slot s[] = { { .klass = O, .pool = SPOT, .started_ms = 10 } };
	struct queue_preempt_need n = waiting();
	/* Before half its budget is spent, a waiting request is not judged
	 * to miss: a slot may well free by itself. */
	cr_assert_eq(queue_preempt_judge_at(I, 1000, 1200), 1100);
	cr_assert_eq(queue_preempt_judge_at(O, 1000, 1200), UINT64_MAX);
	cr_assert_not(queue_preempt_would_miss(&n, 1099));
	cr_assert_eq(queue_preempt_choose(&p, c, &n, s, 1, 1099, NULL), -1);
	/* A free slot it may use: nothing to end, even past its judge point. */
	n.slot_free = true;
	cr_assert_eq(queue_preempt_choose(&p, c, &n, s, 1, 1150, NULL), -1);
	/* At admission, a predicted start within the deadline is no miss; one
	 * past it is, at once. */
	n = (struct queue_preempt_need){ .klass = I, .pools = 1u << SPOT, .enqueued_ms = 1000,
					 .deadline_ms = 1200, .predicted_ms = 1150 };
	cr_assert_eq(queue_preempt_choose(&p, c, &n, s, 1, 1000, NULL), -1);
	n.predicted_ms = 1201;
	cr_assert_eq(queue_preempt_choose(&p, c, &n, s, 1, 1000, NULL), 0);
	/* No slot on its pools: nothing. */
	n.pools = 1u << GOLD;
	cr_assert_eq(queue_preempt_choose(&p, c, &n, s, 1, 1000, NULL), -1);
	conf_destroy(c);
}

Test(preempt, never_beyond_max_per_s, .timeout = 10)
{
	struct conf *c = load(YAML("preemption: { enabled: true, max_per_s: 4 }"));
	struct queue_preempt p;
	queue_preempt_init(&p, c, 0);
	struct queue_preempt_slot s[] = { { .klass = O, .pool = SPOT, .started_ms = 10 } };
	/* A request past its judge point asks every millisecond for 10 s. */
	unsigned granted = 0, first_second = 0;
	uint64_t last_wait = 0;
	for (uint64_t now = 1000; now < 11000; now++) {
		struct queue_preempt_need n = { .klass = I, .pools = 1u << SPOT, .enqueued_ms = now - 150,
						.deadline_ms = now + 50 };
		uint64_t wait = 0;
		int v = queue_preempt_choose(&p, c, &n, s, 1, now, &wait);
		if (v == 0) {
			granted++;
			first_second += now < 2000;
		} else {
			cr_assert_gt(wait, 0, "a refusal by the rate says when to ask again");
			cr_assert_leq(wait, 250);
			last_wait = wait;
		}
	}
	/* The burst (one second's worth) and then 4 a second. */
	cr_assert_leq(first_second, 4 + 4);
	cr_assert_geq(granted, 40);
	cr_assert_leq(granted, 4 + 40);
	cr_assert_gt(last_wait, 0);
	conf_destroy(c);
}

Test(preempt, reload_keeps_the_rate_spent, .timeout = 10)
{
	struct conf *c = load(YAML("preemption: { enabled: true, max_per_s: 1 }"));
	struct conf *d = load(YAML("preemption: { enabled: true, max_per_s: 2 }"));
	struct conf *off = load(YAML("preemption: { enabled: false }"));
	struct queue_preempt p;
	queue_preempt_init(&p, c, 0);
	struct queue_preempt_slot s[] = { { .klass = O, .pool = SPOT, .started_ms = 10 } };
	struct queue_preempt_need n = { .klass = I, .pools = 1u << SPOT, .enqueued_ms = 0, .deadline_ms = 10 };
	cr_assert_eq(queue_preempt_choose(&p, c, &n, s, 1, 100, NULL), 0);
	cr_assert_eq(queue_preempt_choose(&p, c, &n, s, 1, 100, NULL), -1, "1/s, burst 1: spent");
	queue_preempt_reconfigure(&p, d, 100);
	cr_assert_eq(queue_preempt_choose(&p, d, &n, s, 1, 100, NULL), -1, "a reload refills nothing");
	cr_assert_eq(queue_preempt_choose(&p, d, &n, s, 1, 600, NULL), 0, "2/s from the reload on");
	queue_preempt_reconfigure(&p, off, 5000);
	cr_assert_not(p.any);
	cr_assert_eq(queue_preempt_choose(&p, off, &n, s, 1, 5000, NULL), -1);
	conf_destroy(c);
	conf_destroy(d);
	conf_destroy(off);
}

Test(preempt, refund, .timeout = 10)
{
	struct conf *c = load(YAML("preemption: { enabled: true }"));
	struct queue_tenants ts;
	struct queue q;
	cr_assert_eq(queue_tenants_init(&ts, c, 0), 0);
	cr_assert_eq(queue_init(&q, c), 0);
	queue_set_pool_slots(&q, GOLD, 2);
	queue_set_pool_slots(&q, SPOT, 8);
	queue_set_pool_slots(&q, BATCH, 8);
	uint8_t pools[3] = { QUEUE_POOL_UP | QUEUE_POOL_FREE, QUEUE_POOL_UP | QUEUE_POOL_FREE,
			     QUEUE_POOL_UP | QUEUE_POOL_FREE };
	struct queue_facts f = { .body_bytes = 400, .prompt_tokens = 100, .output_tokens = 1000,
				 .deadline_ms = UINT64_MAX, .body_class = -1, .pools = pools };
	struct queue_tenant *a = ts.v[0];
	double full = queue_bucket_level(&a->tokens, 0);

	/* Preempted before any byte reached the client: everything back. */
	struct queue_item it = { 0 };
	struct queue_verdict v;
	queue_admit(&q, a, &f, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_START);
	cr_assert_float_eq(queue_bucket_level(&a->tokens, 0), full - 1100, 1e-6);
	queue_preempt_refund(&it, -1, 0);
	cr_assert_float_eq(queue_bucket_level(&a->tokens, 0), full, 1e-6);
	cr_assert_float_eq(it.charge.tokens, 0, 1e-9);

	/* Preempted after 40 streamed tokens: charged the prompt and those. */
	queue_admit(&q, a, &f, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_START);
	queue_preempt_refund(&it, 40, 0);
	cr_assert_float_eq(queue_bucket_level(&a->tokens, 0), full - 140, 1e-6);
	cr_assert_float_eq(it.charge.tokens, 140, 1e-9);
	/* The end of the exchange gives nothing more back. */
	queue_settle_unreported(&it, 0);
	cr_assert_float_eq(queue_bucket_level(&a->tokens, 0), full - 140, 1e-6);

	queue_tenant_put(&it.tenant);
	queue_finish(&q);
	queue_tenants_finish(&ts);
	conf_destroy(c);
}
