/*
 * test_admit.c - the admission policy on a hand-driven clock: class
 * capping, charges and refunds, start / wait / refuse, the deadline clamp,
 * eviction, and the bound a full class keeps when the evicted tenant's
 * next (pipelined) request arrives at once.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "queue/admit.h"

static const char yaml[] =
	"listen: 127.0.0.1:0\n"
	"admin_listen: 127.0.0.1:1\n"
	"limits: { default_max_tokens: 100 }\n"
	"classes:\n"
	"  interactive: { max_queue: 100, max_wait_ms: 1000, pools: [gold, spot], max_slot_share: 0.5 }\n"
	"  standard: { max_queue: 2, max_wait_ms: 5000, pools: [spot] }\n"
	"  opportunistic: { max_queue: 100, max_wait_ms: 60000, pools: [spot] }\n"
	"pools:\n"
	"  gold: { slice: reserved, backends: [ { address: 127.0.0.1:9001, max_inflight: 2 } ] }\n"
	"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 8 } ] }\n"
	"tenants:\n"
	"  a: { keys: [ { sha256: 486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7 } ], default_class: standard, max_class: interactive, requests_per_s: 10, burst: 10, tokens_per_min: 6000 }\n"
	"  b: { keys: [ { sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 } ], default_class: standard, max_class: interactive, requests_per_s: 1, burst: 1 }\n"
	"  c: { keys: [ { sha256: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9 } ], default_class: opportunistic, max_class: standard }\n";

enum { GOLD = 0, SPOT = 1 };

struct fixture {
	struct conf *conf;
	struct queue_tenants tenants;
	struct queue q;
	uint8_t pools[2];
	struct queue_facts facts;
};

static void setup_text(struct fixture *f, const char *text)
{
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("test.yaml", text, strlen(text), &f->conf, &diag), 0, "%s",
		     diag.count ? diag.msg[0] : "");
	cr_assert_eq(queue_tenants_init(&f->tenants, f->conf, 0), 0);
	cr_assert_eq(queue_init(&f->q, f->conf), 0);
	queue_set_pool_slots(&f->q, GOLD, 2);
	queue_set_pool_slots(&f->q, SPOT, 8);
	f->pools[GOLD] = f->pools[SPOT] = QUEUE_POOL_UP | QUEUE_POOL_FREE;
	f->facts = (struct queue_facts){ .body_bytes = 400, .prompt_tokens = 100, .output_tokens = -1,
					 .deadline_ms = UINT64_MAX, .body_class = -1, .pools = f->pools };
}

static void setup(struct fixture *f)
{
	setup_text(f, yaml);
}

static void teardown(struct fixture *f)
{
	cr_assert_eq(f->q.count, 0, "items left queued");
	queue_finish(&f->q);
	queue_tenants_finish(&f->tenants);
	conf_destroy(f->conf);
}

static struct queue_tenant *tenant(struct fixture *f, int i)
{
	return f->tenants.v[i];
}

static double level(struct queue_bucket *b, uint64_t now)
{
	return queue_bucket_level(b, now);
}

Test(admit, classifies_caps_charges_and_starts_on_the_first_pool_with_a_slot, .timeout = 5)
{
	struct fixture f;
	setup(&f);
	struct queue_item it = { 0 };
	struct queue_verdict v;
	f.facts.class_header = "interactive";
	f.facts.class_header_len = 11;
	queue_admit(&f.q, tenant(&f, 2), &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_START);
	cr_assert_eq(v.klass, CONF_CLASS_STANDARD, "c may not rise above standard");
	cr_assert_eq(v.pool, SPOT);

	queue_admit(&f.q, tenant(&f, 0), &f.facts, 0, &it, &v);
	cr_assert_eq(v.klass, CONF_CLASS_INTERACTIVE);
	cr_assert_eq(v.pool, GOLD, "the class's first pool");
	cr_assert_float_eq(it.charge.tokens, 100 + 100, 1e-9, "the prompt's estimate plus default_max_tokens");
	cr_assert_float_eq(level(&tenant(&f, 0)->tokens, 0), 6000 - 200, 1e-9);
	cr_assert_float_eq(level(&tenant(&f, 0)->requests, 0), 9, 1e-9);

	/* interactive may hold 1 of gold's 2 slots (max_slot_share 0.5). */
	queue_on_dispatch(&f.q, GOLD, CONF_CLASS_INTERACTIVE);
	f.facts.output_tokens = 50;
	queue_admit(&f.q, tenant(&f, 0), &f.facts, 0, &it, &v);
	cr_assert_eq(v.pool, SPOT, "gold is at the class's share: spill to spot");
	cr_assert_float_eq(it.charge.tokens, 150, 1e-9, "max_tokens replaces the default");
	f.pools[SPOT] = QUEUE_POOL_UP;
	queue_admit(&f.q, tenant(&f, 0), &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_WAIT, "no slot it may take: it waits");
	queue_withdraw(&f.q, &it, 0);
	teardown(&f);
}

Test(admit, a_started_request_put_back_keeps_its_deadline_and_charge, .timeout = 5)
{
	struct fixture f;
	setup(&f);
	struct queue_item it = { .deadline_ms = 7 };	/* left over from an earlier request */
	struct queue_verdict v;
	queue_admit(&f.q, tenant(&f, 0), &f.facts, 1000, &it, &v);
	cr_assert_eq(v.action, QUEUE_START);
	cr_assert_eq(it.deadline_ms, 1000 + 5000, "standard's max_wait_ms, from admission");
	double tokens = level(&tenant(&f, 0)->tokens, 1000);

	/* Its connect failed and every backend is busy: back at the head. */
	cr_assert_eq(queue_requeue(&f.q, &it), 0);
	cr_assert_null(queue_expired(&f.q, 1200), "not expired: the deadline is from its admission");
	cr_assert_eq(queue_next_deadline(&f.q), 6000);
	cr_assert_float_eq(level(&tenant(&f, 0)->tokens, 1200), tokens + 0.2 * 100, 1e-6,
			   "charged once: the bucket only refills");
	cr_assert_eq(queue_pop(&f.q, SPOT), &it);
	teardown(&f);
}

Test(admit, refusals_cost_nothing, .timeout = 5)
{
	struct fixture f;
	setup(&f);
	struct queue_item it = { 0 };
	struct queue_verdict v;
	struct queue_tenant *a = tenant(&f, 0), *b = tenant(&f, 1);

	f.pools[SPOT] = 0;
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_REJECT);
	cr_assert_eq(v.reason, QUEUE_R_NO_BACKEND, "standard lists only spot, which has no healthy backend");
	cr_assert_float_eq(level(&a->requests, 0), 10, 1e-9, "nothing charged for what nobody could serve");
	f.pools[SPOT] = QUEUE_POOL_UP | QUEUE_POOL_FREE;

	queue_admit(&f.q, b, &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_START);
	queue_admit(&f.q, b, &f.facts, 0, &it, &v);
	cr_assert_eq(v.reason, QUEUE_R_RATE_LIMITED);
	cr_assert_eq(v.retry_ms, 1000, "1 request/s, burst 1: the next in 1 s");

	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_START, "a spends 200 of its 6000 tokens");
	f.facts.output_tokens = 5800;	/* 5900: more than a holds now, less than its burst */
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.reason, QUEUE_R_TOKENS_EXCEEDED);
	cr_assert_float_eq(v.tokens, 5900, 1e-9);
	cr_assert_eq(v.retry_ms, 1000, "100 tokens at 100/s");
	cr_assert_float_eq(level(&a->requests, 0), 9, 1e-9, "the request taken before the tokens comes back");
	cr_assert_float_eq(level(&a->tokens, 0), 5800, 1e-9);
	teardown(&f);
}

Test(admit, a_newcomer_never_overtakes_the_queue_and_deadlines_only_shorten, .timeout = 5)
{
	struct fixture f;
	setup(&f);
	struct queue_item first = { 0 }, second = { 0 }, third = { 0 };
	struct queue_verdict v;
	f.pools[SPOT] = QUEUE_POOL_UP;
	queue_admit(&f.q, tenant(&f, 0), &f.facts, 100, &first, &v);
	cr_assert_eq(v.action, QUEUE_WAIT);
	cr_assert_eq(first.deadline_ms, 100 + 5000, "the class's max_wait_ms");

	f.pools[SPOT] = QUEUE_POOL_UP | QUEUE_POOL_FREE;
	f.facts.deadline_ms = 300;
	f.facts.class_header = "standard";
	f.facts.class_header_len = 8;
	queue_admit(&f.q, tenant(&f, 2), &f.facts, 100, &second, &v);
	cr_assert_eq(v.action, QUEUE_WAIT, "a slot is free, but standard has a request waiting");
	cr_assert_eq(second.deadline_ms, 400, "the client's deadline is shorter: it wins");
	queue_withdraw(&f.q, &first, 100);
	f.facts.deadline_ms = 60000;
	queue_admit(&f.q, tenant(&f, 0), &f.facts, 100, &third, &v);
	cr_assert_eq(third.deadline_ms, 100 + 5000, "a client deadline never lengthens the class's");
	queue_withdraw(&f.q, &second, 100);
	queue_withdraw(&f.q, &third, 100);
	teardown(&f);
}

Test(admit, a_full_class_evicts_the_fattest_and_keeps_its_bound_under_pipelining, .timeout = 5)
{
	struct fixture f;
	setup(&f);
	struct queue_item b1 = { 0 }, b2 = { 0 }, b3 = { 0 }, a1 = { 0 };
	struct queue_verdict v;
	struct queue_tenant *a = tenant(&f, 0), *c = tenant(&f, 2);
	f.pools[SPOT] = QUEUE_POOL_UP;		/* every slot busy: standard queues */
	f.facts.class_header = "standard";
	f.facts.class_header_len = 8;
	queue_admit(&f.q, c, &f.facts, 0, &b1, &v);
	queue_admit(&f.q, c, &f.facts, 0, &b2, &v);
	cr_assert_eq(f.q.classes[CONF_CLASS_STANDARD].count, 2, "max_queue reached by c alone");

	queue_admit(&f.q, a, &f.facts, 0, &a1, &v);
	cr_assert_eq(v.action, QUEUE_WAIT, "a holds nothing queued: it takes the fattest tenant's place");
	cr_assert_eq(v.victim, &b2, "c's newest request leaves");
	cr_assert_not(b2.queued);
	cr_assert_float_eq(b2.charge.requests + b2.charge.tokens, 0, 1e-9, "the victim got its charges back");
	cr_assert_eq(f.q.classes[CONF_CLASS_STANDARD].count, 2, "the evicting request is already in");

	/* The victim's connection had its next request pipelined; it is
	 * parsed as soon as the victim is answered.  The place is taken. */
	queue_admit(&f.q, c, &f.facts, 0, &b3, &v);
	cr_assert_eq(v.action, QUEUE_REJECT);
	cr_assert_eq(v.reason, QUEUE_R_QUEUE_FULL);
	cr_assert_eq(v.queued, 2);
	cr_assert_gt(v.retry_ms, 0);
	cr_assert_eq(f.q.classes[CONF_CLASS_STANDARD].count, 2, "never more than max_queue");
	queue_withdraw(&f.q, &b1, 0);
	queue_withdraw(&f.q, &a1, 0);
	teardown(&f);
}

Test(admit, charges_come_back_once_and_usage_settles_them, .timeout = 5)
{
	struct fixture f;
	setup(&f);
	struct queue_item it = { 0 }, late = { 0 };
	struct queue_verdict v;
	struct queue_tenant *a = tenant(&f, 0);
	f.pools[SPOT] = QUEUE_POOL_UP;
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_float_eq(level(&a->tokens, 0), 5800, 1e-9);
	queue_withdraw(&f.q, &it, 0);
	queue_withdraw(&f.q, &it, 0);
	queue_refund(&it, 0);
	cr_assert_float_eq(level(&a->tokens, 0), 6000, 1e-9, "given back once, however often asked");
	cr_assert_float_eq(level(&a->requests, 0), 10, 1e-9);

	queue_admit(&f.q, a, &f.facts, 0, &late, &v);
	cr_assert_null(queue_expire(&f.q, 4999));
	cr_assert_eq(queue_expire(&f.q, 5000), &late, "expired at its deadline");
	cr_assert_float_eq(level(&a->tokens, 5000), 6000, 1e-9, "an expired request costs nothing");

	f.pools[SPOT] = QUEUE_POOL_UP | QUEUE_POOL_FREE;
	queue_admit(&f.q, a, &f.facts, 6000, &it, &v);
	cr_assert_eq(v.action, QUEUE_START);
	queue_settle(&it, 30, 6000);
	cr_assert_float_eq(level(&a->tokens, 6000), 6000 - 30, 1e-9, "estimate 200, used 30");
	cr_assert_float_eq(it.charge.tokens, 30, 1e-9);
	teardown(&f);
}

Test(admit, one_request_never_drives_its_tenant_into_debt, .timeout = 5)
{
	struct fixture f;
	setup(&f);
	struct queue_item it = { 0 };
	struct queue_verdict v;
	struct queue_tenant *a = tenant(&f, 0);	/* 6000 tokens/min */
	f.facts.output_tokens = 9223372036854775807.0;	/* max_tokens: 2^63 - 1 */
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_REJECT);
	cr_assert_eq(v.reason, QUEUE_R_TOKENS_NEVER, "more than the bucket can ever hold");
	cr_assert_eq(v.retry_ms, 0, "no retry can succeed: no hint");
	cr_assert_float_eq(level(&a->tokens, 0), 6000, 1e-9, "nothing charged");
	cr_assert_float_eq(level(&a->requests, 0), 10, 1e-9);

	f.facts.output_tokens = 50;
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_START, "the tenant is not locked out");
	queue_settle(&it, 1e12, 0);
	cr_assert_float_eq(level(&a->tokens, 0), -6000, 1e-9, "a usage report leaves at most one burst of debt");
	cr_assert_float_eq(level(&a->tokens, 60000), 0, 1e-9, "...which one minute refills");
	teardown(&f);
}

Test(admit, without_usage_the_output_part_comes_back, .timeout = 5)
{
	struct fixture f;
	setup(&f);
	struct queue_item it = { 0 };
	struct queue_verdict v;
	struct queue_tenant *a = tenant(&f, 0);
	f.facts.output_tokens = 50;
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_float_eq(level(&a->tokens, 0), 6000 - 150, 1e-9, "prompt 100 + output 50");
	queue_settle_unreported(&it, 0);
	queue_settle_unreported(&it, 0);
	cr_assert_float_eq(level(&a->tokens, 0), 6000 - 100, 1e-9, "the prompt stays charged, once");
	cr_assert_float_eq(it.charge.tokens, 100, 1e-9);
	teardown(&f);
}

Test(admit, a_class_over_a_shrunk_max_queue_evicts_nobody, .timeout = 5)
{
	struct fixture f;
	setup(&f);
	struct queue_item its[3] = { { 0 } }, light = { 0 };
	struct queue_verdict v;
	f.pools[SPOT] = QUEUE_POOL_UP;
	f.facts.class_header = "standard";
	f.facts.class_header_len = 8;
	/* c holds 2 (max_queue); a reload then shrinks max_queue to 1. */
	queue_admit(&f.q, tenant(&f, 2), &f.facts, 0, &its[0], &v);
	queue_admit(&f.q, tenant(&f, 2), &f.facts, 0, &its[1], &v);
	struct conf_class_cfg shrunk = *f.q.classes[CONF_CLASS_STANDARD].cfg;
	shrunk.max_queue = 1;
	f.q.classes[CONF_CLASS_STANDARD].cfg = &shrunk;
	queue_admit(&f.q, tenant(&f, 0), &f.facts, 0, &light, &v);
	cr_assert_eq(v.action, QUEUE_REJECT, "over the bound: full, and no eviction would bring it back under");
	cr_assert_eq(v.reason, QUEUE_R_QUEUE_FULL);
	cr_assert_eq(f.q.classes[CONF_CLASS_STANDARD].count, 2);
	queue_withdraw(&f.q, &its[0], 0);
	queue_withdraw(&f.q, &its[1], 0);
	teardown(&f);
}

/* The admission yaml with tenant b's line replaced by `b_line` ("" removes b). */
static struct conf *with_b(const char *b_line)
{
	char text[4096];
	const char *b = strstr(yaml, "  b: {"), *c = strstr(yaml, "  c: {");
	snprintf(text, sizeof(text), "%.*s%s%s", (int)(b - yaml), yaml, b_line, c);
	struct conf *conf = NULL;
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("test.yaml", text, strlen(text), &conf, &diag), 0, "%s", diag.count ? diag.msg[0] : "");
	return conf;
}

static void reload(struct fixture *f, struct conf *fresh)
{
	cr_assert_eq(queue_tenants_reconfigure(&f->tenants, fresh, 0), 0);
	cr_assert_null(queue_reconfigure(&f->q, fresh), "no model changed: nothing is taken off");
	conf_destroy(f->conf);
	f->conf = fresh;
}

Test(admit, a_removed_tenants_queued_request_is_served_and_settles_against_it, .timeout = 5)
{
	struct fixture f;
	setup(&f);
	struct queue_item it = { 0 };
	struct queue_verdict v;
	struct queue_tenant *b = tenant(&f, 1);	/* 1 request/s, burst 1 */
	f.pools[SPOT] = QUEUE_POOL_UP;	/* no free slot: it waits */
	queue_admit(&f.q, b, &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_WAIT);
	cr_assert_eq(b->refs, 1, "the item holds its tenant");

	reload(&f, with_b(""));
	cr_assert_eq(f.tenants.retired, b, "removed while queued: retired");
	/* b comes back under its name, deeper: a new tenant, full. */
	reload(&f, with_b("  b: { keys: [ { sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 } ], "
			  "default_class: standard, max_class: interactive, requests_per_s: 1, burst: 2 }\n"));
	struct queue_tenant *b2 = tenant(&f, 1);
	cr_assert_neq(b2, b);
	uint64_t wait;
	cr_assert(queue_bucket_take(&b2->requests, 1, 0, &wait));

	/* The old b's request is still served, in its turn... */
	cr_assert_eq(queue_pop(&f.q, SPOT), &it);
	cr_assert_eq(it.tenant, b);
	cr_assert_str_eq(it.tenant->cfg->name, "b");
	/* ...and what it gives back goes to the old b, not to the new one. */
	queue_refund(&it, 0);
	cr_assert_float_eq(level(&b2->requests, 0), 1, 1e-9);
	queue_tenant_put(&it.tenant);
	cr_assert_null(f.tenants.retired, "its last request ended: freed");
	teardown(&f);
}

/* ---- routing by model --------------------------------------------------- */

/* Pools a and b list models; pool any lists none.  Standard may use a and
 * b, interactive all three. */
static const char models_yaml[] =
	"listen: 127.0.0.1:0\n"
	"admin_listen: 127.0.0.1:1\n"
	"limits: { default_max_tokens: 100 }\n"
	"classes:\n"
	"  interactive: { max_queue: 100, max_wait_ms: 1000, pools: [a, b, any] }\n"
	"  standard: { max_queue: 100, max_wait_ms: 5000, pools: [a, b] }\n"
	"pools:\n"
	"  a: { slice: elastic, models: [ma, shared], backends: [ { address: 127.0.0.1:9001, max_inflight: 2 } ] }\n"
	"  b: { slice: elastic, models: [mb, shared], backends: [ { address: 127.0.0.1:9002, max_inflight: 2 } ] }\n"
	"  any: { slice: elastic, backends: [ { address: 127.0.0.1:9003, max_inflight: 2 } ] }\n"
	"tenants:\n"
	"  a: { keys: [ { sha256: 486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7 } ], default_class: standard, max_class: interactive, requests_per_s: 10, burst: 10, tokens_per_min: 6000 }\n"
	"  b: { keys: [ { sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 } ], default_class: standard, max_class: interactive }\n";

enum { PA = 0, PB = 1, PANY = 2 };

struct mfix {
	struct conf *conf;
	struct queue_tenants tenants;
	struct queue q;
	uint8_t pools[3];
	struct queue_facts facts;
};

static void msetup(struct mfix *f)
{
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("test.yaml", models_yaml, strlen(models_yaml), &f->conf, &diag), 0, "%s",
		     diag.count ? diag.msg[0] : "");
	cr_assert_eq(queue_tenants_init(&f->tenants, f->conf, 0), 0);
	cr_assert_eq(queue_init(&f->q, f->conf), 0);
	for (size_t p = 0; p < 3; p++) {
		queue_set_pool_slots(&f->q, p, 2);
		f->pools[p] = QUEUE_POOL_UP | QUEUE_POOL_FREE;
	}
	f->facts = (struct queue_facts){ .body_bytes = 400, .prompt_tokens = 100, .output_tokens = -1,
					 .deadline_ms = UINT64_MAX, .body_class = -1, .pools = f->pools };
}

static void mteardown(struct mfix *f)
{
	cr_assert_eq(f->q.count, 0, "items left queued");
	for (size_t p = 0; p < 3; p++)
		for (int k = 0; k < CONF_CLASS_COUNT; k++)
			cr_assert_eq(f->q.pools[p].waiting[k], 0, "pool %zu still counts class %d items", p, k);
	queue_finish(&f->q);
	queue_tenants_finish(&f->tenants);
	conf_destroy(f->conf);
}

static void model(struct mfix *f, const char *name)
{
	f->facts.model = name;
	f->facts.model_len = name ? strlen(name) : 0;
}

Test(admit, a_request_starts_only_on_a_pool_serving_its_model, .timeout = 5)
{
	struct mfix f;
	msetup(&f);
	struct queue_item it = { 0 };
	struct queue_verdict v;
	struct queue_tenant *a = f.tenants.v[0];

	model(&f, "ma");
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_START);
	cr_assert_eq(v.pool, PA);
	model(&f, "mb");
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq((int)v.action, QUEUE_START);
	cr_assert_eq(v.pool, PB, "a comes first in the class, but does not serve mb");
	model(&f, "shared");
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.pool, PA);
	model(&f, NULL);
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.pool, PA, "no model: any pool of the class");

	/* interactive may use `any`, which lists no models: it serves all. */
	f.facts.class_header = "interactive";
	f.facts.class_header_len = 11;
	model(&f, "gpt-4o");
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_START);
	cr_assert_eq(v.pool, PANY);
	f.facts.model = "";
	f.facts.model_len = CONF_MODEL_MAX + 1;	/* a name too long to keep */
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.pool, PANY);
	mteardown(&f);
}

Test(admit, a_model_no_pool_of_the_class_serves_is_404_and_costs_nothing, .timeout = 5)
{
	struct mfix f;
	msetup(&f);
	struct queue_item it = { 0 };
	struct queue_verdict v;
	struct queue_tenant *a = f.tenants.v[0];

	model(&f, "gpt-4o");
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_REJECT);
	cr_assert_eq(v.reason, QUEUE_R_MODEL_NOT_FOUND, "standard may not use `any`");
	cr_assert_eq(v.model_len, 6);
	cr_assert_eq(memcmp(v.model, "gpt-4o", 6), 0);
	cr_assert_eq(v.retry_ms, 0);
	cr_assert_float_eq(level(&a->requests, 0), 10, 1e-9, "no request charged");
	cr_assert_float_eq(level(&a->tokens, 0), 6000, 1e-9, "no token charged");
	cr_assert_float_eq(it.charge.requests + it.charge.tokens, 0, 1e-9);
	/* Even with every backend down: the model is unknown, not the backends. */
	f.pools[PA] = f.pools[PB] = 0;
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.reason, QUEUE_R_MODEL_NOT_FOUND);
	f.facts.model = "";
	f.facts.model_len = CONF_MODEL_MAX + 1;
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.reason, QUEUE_R_MODEL_NOT_FOUND, "too long for any list");

	/* no_backend only when no pool serving the model is up. */
	f.pools[PA] = QUEUE_POOL_UP | QUEUE_POOL_FREE;
	model(&f, "mb");
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.reason, QUEUE_R_NO_BACKEND, "a is up, but only b serves mb");
	cr_assert_float_eq(level(&a->requests, 0), 10, 1e-9);
	model(&f, "ma");
	queue_admit(&f.q, a, &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_START);
	cr_assert_float_eq(level(&a->requests, 0), 9, 1e-9, "served: charged");
	mteardown(&f);
}

Test(admit, queued_items_pop_only_for_pools_serving_their_model, .timeout = 5)
{
	struct mfix f;
	msetup(&f);
	struct queue_item a1 = { 0 }, b1 = { 0 }, a2 = { 0 }, any1 = { 0 }, b2 = { 0 };
	struct queue_verdict v;
	struct queue_tenant *ta = f.tenants.v[0], *tb = f.tenants.v[1];

	f.pools[PA] = f.pools[PB] = QUEUE_POOL_UP;	/* every slot busy */
	model(&f, "ma");
	queue_admit(&f.q, ta, &f.facts, 0, &a1, &v);
	cr_assert_eq(v.action, QUEUE_WAIT);
	model(&f, "mb");
	queue_admit(&f.q, ta, &f.facts, 1, &b1, &v);
	cr_assert_eq(v.action, QUEUE_WAIT);
	model(&f, "ma");
	queue_admit(&f.q, tb, &f.facts, 2, &a2, &v);
	model(&f, NULL);
	queue_admit(&f.q, tb, &f.facts, 3, &any1, &v);
	cr_assert_eq(f.q.count, 4);
	cr_assert_eq(queue_waiting_for(&f.q, PA, CONF_CLASS_STANDARD), 3);
	cr_assert_eq(queue_waiting_for(&f.q, PB, CONF_CLASS_STANDARD), 2);

	/* b frees: a newcomer for mb does not overtake b1, queued for b. */
	f.pools[PB] = QUEUE_POOL_UP | QUEUE_POOL_FREE;
	model(&f, "mb");
	queue_admit(&f.q, tb, &f.facts, 4, &b2, &v);
	cr_assert_eq(v.action, QUEUE_WAIT, "b1 waits for b already");

	/* A slot of b goes, in fair order between the flows (tied: the most
	 * recently active first), to the flow's first item that b serves:
	 * tb's head a2 is passed over for any1, then ta's a1 for b1. */
	cr_assert_eq(queue_pop(&f.q, PB), &any1);
	cr_assert_eq(queue_pop(&f.q, PB), &b1, "ta's turn: its first item for b");
	cr_assert_eq(queue_pop(&f.q, PB), &b2);
	cr_assert_null(queue_pop(&f.q, PB), "only ma left: b serves none of it");
	cr_assert_eq(f.q.count, 2);
	cr_assert_eq(queue_waiting_for(&f.q, PB, CONF_CLASS_STANDARD), 0);
	cr_assert_eq(queue_waiting_for(&f.q, PA, CONF_CLASS_STANDARD), 2);
	cr_assert_eq(queue_next_deadline(&f.q), 5000, "a1's deadline leads the heap");

	/* b is free and nobody waiting could take it: a newcomer for mb starts. */
	model(&f, "mb");
	queue_admit(&f.q, tb, &f.facts, 5, &b2, &v);
	cr_assert_eq(v.action, QUEUE_START);
	cr_assert_eq(v.pool, PB);

	cr_assert_eq(queue_pop(&f.q, PA), &a1);
	cr_assert_eq(queue_pop(&f.q, PA), &a2);
	cr_assert_null(queue_pop(&f.q, PA));
	cr_assert_eq(queue_next_deadline(&f.q), UINT64_MAX);
	mteardown(&f);
}

Test(admit, a_reload_moves_queued_items_to_the_pools_now_serving_their_model, .timeout = 5)
{
	struct mfix f;
	msetup(&f);
	struct queue_item a1 = { 0 }, b1 = { 0 }, n1 = { 0 };
	struct queue_verdict v;
	struct queue_tenant *ta = f.tenants.v[0];

	f.pools[PA] = f.pools[PB] = QUEUE_POOL_UP;
	char ma[] = "ma", mb[] = "mb";
	model(&f, ma);
	queue_admit(&f.q, ta, &f.facts, 0, &a1, &v);
	model(&f, mb);
	queue_admit(&f.q, ta, &f.facts, 0, &b1, &v);
	model(&f, NULL);
	queue_admit(&f.q, ta, &f.facts, 0, &n1, &v);
	cr_assert_eq(f.q.count, 3);
	cr_assert_float_eq(level(&ta->requests, 0), 7, 1e-9);

	/* ma is gone; b now serves shared and mb, and a serves mb too. */
	char text[sizeof models_yaml + 64];
	snprintf(text, sizeof text, "%s", models_yaml);
	char *at = strstr(text, "models: [ma, shared]");
	memcpy(at, "models: [mb, mc    ]", 20);
	struct conf *fresh = NULL;
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("test.yaml", text, strlen(text), &fresh, &diag), 0, "%s",
		     diag.count ? diag.msg[0] : "");
	struct queue_item *gone = queue_reconfigure(&f.q, fresh);
	cr_assert_eq(gone, &a1, "no pool of standard serves ma any more");
	cr_assert_null(gone->next);
	cr_assert_not(a1.queued);
	queue_refund(gone, 0);
	cr_assert_float_eq(level(&ta->requests, 0), 8, 1e-9, "its charge comes back");
	cr_assert_eq(f.q.count, 2);
	cr_assert_eq(queue_waiting_for(&f.q, PA, CONF_CLASS_STANDARD), 2, "mb and the model-less one");
	cr_assert_eq(queue_waiting_for(&f.q, PB, CONF_CLASS_STANDARD), 2);
	cr_assert_eq(queue_pop(&f.q, PA), &b1, "a serves mb now");
	cr_assert_eq(queue_pop(&f.q, PB), &n1);
	conf_destroy(f.conf);
	f.conf = fresh;
	mteardown(&f);
}

Test(admit, without_models_anywhere_masks_are_full_and_nothing_is_counted, .timeout = 5)
{
	struct fixture f;
	setup(&f);
	struct queue_item it = { 0 };
	struct queue_verdict v;
	f.facts.model = "anything";
	f.facts.model_len = 8;
	f.pools[SPOT] = QUEUE_POOL_UP;
	queue_admit(&f.q, tenant(&f, 0), &f.facts, 0, &it, &v);
	cr_assert_eq(v.action, QUEUE_WAIT, "a model no pool lists: no routing, no 404");
	cr_assert_eq(it.pools, UINT64_MAX);
	cr_assert_eq(f.q.pools[SPOT].waiting[CONF_CLASS_STANDARD], 0, "not routing: no counts kept");
	cr_assert_eq(queue_waiting_for(&f.q, SPOT, CONF_CLASS_STANDARD), 1);
	cr_assert_eq(queue_pop(&f.q, SPOT), &it);
	teardown(&f);
}

/* ---- ttft_objective_ms -------------------------------------------------- */

/* The fixture with standard's line replaced. */
static void setup_standard(struct fixture *f, const char *line)
{
	static const char old[] = "  standard: { max_queue: 2, max_wait_ms: 5000, pools: [spot] }\n";
	const char *at = strstr(yaml, old);
	char text[4096];
	snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - yaml), yaml, line, at + strlen(old));
	setup_text(f, text);
}

/* Spot's 8 slots each held 800 ms (a start every 100 ms), and a first
 * token 500 ms after the slot. */
static void spot_history(struct fixture *f)
{
	queue_on_dispatch(&f->q, SPOT, CONF_CLASS_STANDARD);
	queue_on_release(&f->q, SPOT, CONF_CLASS_STANDARD, 800);
	queue_on_first_token(&f->q, SPOT, 500);
}

Test(admit, a_waiter_predicted_to_miss_the_ttft_objective_is_refused_at_once, .timeout = 5)
{
	struct fixture f;
	setup_standard(&f, "  standard: { max_queue: 100, max_wait_ms: 5000, pools: [spot], ttft_objective_ms: 1s }\n");
	spot_history(&f);
	cr_assert_float_eq(queue_recent_ttft(&f.q, CONF_CLASS_STANDARD, UINT64_MAX), 500, 1e-9);
	f.pools[SPOT] = QUEUE_POOL_UP;	/* every slot taken: requests wait */
	struct queue_item it[6] = { 0 };
	struct queue_verdict v;
	/* The n-th waiter starts in about n x 100 ms, then 500 ms to its
	 * first token: the first five make the 1 s objective. */
	for (int i = 0; i < 5; i++) {
		queue_admit(&f.q, tenant(&f, 0), &f.facts, 100, &it[i], &v);
		cr_assert_eq(v.action, QUEUE_WAIT, "waiter %d: predicted %d ms", i + 1, (i + 1) * 100 + 500);
	}
	double requests = level(&tenant(&f, 0)->requests, 100), tokens = level(&tenant(&f, 0)->tokens, 100);
	queue_admit(&f.q, tenant(&f, 0), &f.facts, 100, &it[5], &v);
	cr_assert_eq(v.action, QUEUE_REJECT);
	cr_assert_eq(v.reason, QUEUE_R_TTFT_UNMEETABLE);
	cr_assert_eq(v.budget_ms, 1000);
	cr_assert_eq(v.predicted_ms, 1100, "600 ms of wait, then 500 to the first token");
	cr_assert_eq(v.ttft_ms, 500);
	cr_assert_eq(v.retry_ms, 100, "by then the work ahead has moved on by one start");
	cr_assert_float_eq(level(&tenant(&f, 0)->requests, 100), requests, 1e-9, "a refusal costs nothing");
	cr_assert_float_eq(level(&tenant(&f, 0)->tokens, 100), tokens, 1e-9);
	for (int i = 0; i < 5; i++)
		queue_withdraw(&f.q, &it[i], 100);
	queue_tenant_put(&it[5].tenant);
	for (int i = 0; i < 5; i++)
		queue_tenant_put(&it[i].tenant);
	teardown(&f);
}

Test(admit, a_request_that_can_start_is_never_refused_for_its_ttft_objective, .timeout = 5)
{
	struct fixture f;
	setup_standard(&f, "  standard: { max_queue: 100, max_wait_ms: 5000, pools: [spot], ttft_objective_ms: 100 }\n");
	spot_history(&f);
	struct queue_item it = { 0 };
	struct queue_verdict v;
	queue_admit(&f.q, tenant(&f, 0), &f.facts, 100, &it, &v);
	cr_assert_eq(v.action, QUEUE_START, "500 ms to first token is over the objective, but nothing is sooner");
	queue_tenant_put(&it.tenant);
	teardown(&f);
}

Test(admit, without_a_ttft_objective_nothing_is_refused_for_it, .timeout = 5)
{
	struct fixture f;
	setup_standard(&f, "  standard: { max_queue: 100, max_wait_ms: 5000, pools: [spot] }\n");
	cr_assert_eq(f.conf->classes[CONF_CLASS_STANDARD].ttft_objective_ms, 0, "no objective by default");
	spot_history(&f);
	f.pools[SPOT] = QUEUE_POOL_UP;
	struct queue_item it[8] = { 0 };
	struct queue_verdict v;
	for (int i = 0; i < 8; i++) {
		queue_admit(&f.q, tenant(&f, 0), &f.facts, 100, &it[i], &v);
		cr_assert_eq(v.action, QUEUE_WAIT);
	}
	for (int i = 0; i < 8; i++) {
		queue_withdraw(&f.q, &it[i], 100);
		queue_tenant_put(&it[i].tenant);
	}
	teardown(&f);
}
