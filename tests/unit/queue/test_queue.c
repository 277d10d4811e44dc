/*
 * test_queue.c - class queues and the dispatch order, on a hand-driven
 * clock, with configs parsed from YAML as operators write them.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "queue/queue.h"
#include "queue/tenant.h"

static const char base[] =
	"listen: 127.0.0.1:0\n"
	"admin_listen: 127.0.0.1:1\n"
	"pools:\n"
	"  gold: { slice: reserved, backends: [ { address: 127.0.0.1:9001, max_inflight: 4 } ] }\n"
	"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 8 } ] }\n"
	"tenants:\n"
	"  a: { keys: [ { sha256: \"%s\" } ], default_class: interactive, max_class: interactive, weight: 1 }\n"
	"  b: { keys: [ { sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 } ], default_class: interactive, max_class: interactive, weight: 3 }\n"
	"  c: { keys: [ { sha256: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9 } ], default_class: opportunistic, max_class: standard }\n";

struct fixture {
	struct conf *conf;
	struct queue_tenants tenants;
	struct queue q;
};

static void setup(struct fixture *f, const char *classes)
{
	char key[65], text[4096];
	uint8_t h[32];
	queue_key_hash("sk-a", 4, h);
	for (int i = 0; i < 32; i++)
		sprintf(key + 2 * i, "%02x", h[i]);
	snprintf(text, sizeof(text), base, key);
	strncat(text, classes, sizeof(text) - strlen(text) - 1);
	struct conf_diag diag = { 0 };
	int rc = conf_parse("test.yaml", text, strlen(text), &f->conf, &diag);
	cr_assert_eq(rc, 0, "%s", diag.count ? diag.msg[0] : "");
	cr_assert_eq(queue_tenants_init(&f->tenants, f->conf, 0), 0);
	cr_assert_eq(queue_init(&f->q, f->conf), 0);
	queue_set_pool_slots(&f->q, 0, 4);	/* gold */
	queue_set_pool_slots(&f->q, 1, 8);	/* spot */
}

static void teardown(struct fixture *f)
{
	cr_assert_eq(f->q.count, 0, "items left queued");
	cr_assert_eq(f->q.bytes, 0);
	queue_finish(&f->q);
	queue_tenants_finish(&f->tenants);
	conf_destroy(f->conf);
}

static struct queue_item *item(struct fixture *f, int tenant, enum conf_class k, double cost, uint64_t deadline)
{
	struct queue_item *it = calloc(1, sizeof(*it));
	it->tenant = f->tenants.v[tenant];
	it->klass = (uint8_t)k;
	it->cost = cost;
	it->deadline_ms = deadline;
	it->bytes = 100;
	it->pools = UINT64_MAX;	/* any pool of its class, as admission sets it without models */
	return it;
}

static const char all_classes[] =
	"classes:\n"
	"  interactive: { max_queue: 100000, max_wait_ms: 1000, pools: [gold, spot] }\n"
	"  standard: { max_queue: 100000, max_wait_ms: 5000, pools: [spot] }\n"
	"  opportunistic: { max_queue: 100000, max_wait_ms: 60000, pools: [spot], min_share: 0.1, max_slot_share: 0.75 }\n";

Test(queue, strict_class_order_then_fifo_within_a_tenant, .timeout = 5)
{
	struct fixture f;
	setup(&f, all_classes);
	struct queue_item *o = item(&f, 2, CONF_CLASS_OPPORTUNISTIC, 10, 60000);
	struct queue_item *s1 = item(&f, 2, CONF_CLASS_STANDARD, 10, 5000);
	struct queue_item *s2 = item(&f, 2, CONF_CLASS_STANDARD, 10, 5000);
	struct queue_item *i1 = item(&f, 0, CONF_CLASS_INTERACTIVE, 10, 1000);
	cr_assert_eq(queue_push(&f.q, o, 0), 0);
	cr_assert_eq(queue_push(&f.q, s1, 1), 0);
	cr_assert_eq(queue_push(&f.q, s2, 2), 0);
	cr_assert_eq(queue_push(&f.q, i1, 3), 0);
	size_t spot = 1, gold = 0;
	cr_assert_eq(queue_pop(&f.q, spot), i1, "interactive first");
	cr_assert_eq(queue_pop(&f.q, spot), s1);
	cr_assert_eq(queue_pop(&f.q, spot), s2, "oldest first inside a tenant");
	cr_assert_null(queue_pop(&f.q, gold), "opportunistic never takes a reserved slot");
	cr_assert_eq(queue_pop(&f.q, spot), o);
	cr_assert_null(queue_pop(&f.q, spot));
	free(o), free(s1), free(s2), free(i1);
	teardown(&f);
}

Test(queue, weighted_fairness_between_tenants, .timeout = 10)
{
	/* Tenant a (weight 1) floods; b (weight 3) keeps work waiting too:
	 * over thousands of dispatches b gets 3/4 of them, a 1/4. */
	struct fixture f;
	setup(&f, all_classes);
	enum { N = 8000 };
	struct queue_item *items = calloc(2 * N, sizeof(*items));
	for (int i = 0; i < N; i++) {
		for (int t = 0; t < 2; t++) {
			struct queue_item *it = &items[2 * i + t];
			it->tenant = f.tenants.v[t];
			it->klass = CONF_CLASS_INTERACTIVE;
			it->cost = 50 + (i % 7) * 10;	/* varied sizes */
			it->deadline_ms = 1000000;
			cr_assert_eq(queue_push(&f.q, it, 0), 0);
		}
	}
	double got[2] = { 0, 0 };
	int served[2] = { 0, 0 };
	for (int d = 0; d < 4000; d++) {
		struct queue_item *it = queue_pop(&f.q, 1);
		cr_assert_not_null(it);
		got[it->tenant->index] += it->cost;
		served[it->tenant->index]++;
		queue_on_dispatch(&f.q, 1, CONF_CLASS_INTERACTIVE);
		queue_on_release(&f.q, 1, CONF_CLASS_INTERACTIVE, 10);
	}
	double share_b = got[1] / (got[0] + got[1]);
	cr_assert(share_b > 0.74 && share_b < 0.76, "b's token share %.4f, want 0.75", share_b);
	/* drain */
	while (queue_pop(&f.q, 1) != NULL)
		;
	free(items);
	teardown(&f);
}

Test(queue, a_flood_does_not_starve_a_newcomer, .timeout = 5)
{
	struct fixture f;
	setup(&f, all_classes);
	enum { N = 1000 };
	struct queue_item *flood = calloc(N, sizeof(*flood));
	for (int i = 0; i < N; i++) {
		flood[i] = (struct queue_item){ .tenant = f.tenants.v[0], .klass = CONF_CLASS_INTERACTIVE,
						.cost = 100, .deadline_ms = 100000 };
		cr_assert_eq(queue_push(&f.q, &flood[i], 0), 0);
	}
	for (int i = 0; i < 500; i++)
		cr_assert_not_null(queue_pop(&f.q, 1));
	/* b arrives late, after a has had 500 dispatches: it must not be
	 * owed 500 (no banking), nor wait behind a's remaining 500. */
	struct queue_item *late = item(&f, 1, CONF_CLASS_INTERACTIVE, 100, 100000);
	cr_assert_eq(queue_push(&f.q, late, 1), 0);
	int before = 0;
	struct queue_item *it;
	while ((it = queue_pop(&f.q, 1)) != late)
		before++;
	cr_assert_leq(before, 1, "the newcomer waited behind %d flood requests", before);
	while (queue_pop(&f.q, 1) != NULL)
		;
	free(late);
	free(flood);
	teardown(&f);
}

Test(queue, max_slot_share_leaves_headroom, .timeout = 5)
{
	struct fixture f;
	setup(&f, all_classes);
	/* spot has 8 slots; opportunistic may hold 6 (0.75). */
	struct queue_item *its[10];
	for (int i = 0; i < 10; i++) {
		its[i] = item(&f, 2, CONF_CLASS_OPPORTUNISTIC, 10, 60000);
		cr_assert_eq(queue_push(&f.q, its[i], 0), 0);
	}
	int started = 0;
	struct queue_item *it;
	while ((it = queue_pop(&f.q, 1)) != NULL) {
		queue_on_dispatch(&f.q, 1, CONF_CLASS_OPPORTUNISTIC);
		started++;
	}
	cr_assert_eq(started, 6);
	cr_assert_not(queue_share_allows(&f.q, 1, CONF_CLASS_OPPORTUNISTIC));
	cr_assert(queue_share_allows(&f.q, 1, CONF_CLASS_INTERACTIVE), "headroom stays for interactive");
	queue_on_release(&f.q, 1, CONF_CLASS_OPPORTUNISTIC, 100);
	cr_assert_not_null(queue_pop(&f.q, 1), "a freed share slot goes back to the class");
	for (int i = 0; i < 10; i++)
		if (its[i]->queued)
			queue_remove(&f.q, its[i]);
	for (int i = 0; i < 10; i++)
		free(its[i]);
	teardown(&f);
}

Test(queue, min_share_gets_its_share_under_pressure, .timeout = 10)
{
	struct fixture f;
	setup(&f, all_classes);
	enum { N = 3000 };
	struct queue_item *hi = calloc(N, sizeof(*hi)), *lo = calloc(N, sizeof(*lo));
	for (int i = 0; i < N; i++) {
		hi[i] = (struct queue_item){ .tenant = f.tenants.v[2], .klass = CONF_CLASS_STANDARD,
					     .cost = 10, .deadline_ms = 1000000 };
		lo[i] = (struct queue_item){ .tenant = f.tenants.v[2], .klass = CONF_CLASS_OPPORTUNISTIC,
					     .cost = 10, .deadline_ms = 1000000 };
		cr_assert_eq(queue_push(&f.q, &hi[i], 0), 0);
		cr_assert_eq(queue_push(&f.q, &lo[i], 0), 0);
	}
	int low = 0;
	for (int d = 0; d < 2000; d++) {
		struct queue_item *it = queue_pop(&f.q, 1);
		queue_on_dispatch(&f.q, 1, (enum conf_class)it->klass);
		low += it->klass == CONF_CLASS_OPPORTUNISTIC;
		queue_on_release(&f.q, 1, (enum conf_class)it->klass, 10);
	}
	double share = low / 2000.0;
	cr_assert(share >= 0.095 && share <= 0.11, "opportunistic share %.3f, want 0.10 (min_share)", share);
	while (queue_pop(&f.q, 1) != NULL)
		;
	free(hi);
	free(lo);
	teardown(&f);
}

Test(queue, deadlines_expire_in_order_and_cancellation_is_clean, .timeout = 10)
{
	struct fixture f;
	setup(&f, all_classes);
	enum { N = 10000 };
	struct queue_item *its = calloc(N, sizeof(*its));
	for (int i = 0; i < N; i++) {
		/* deadlines in a scrambled order */
		its[i] = (struct queue_item){ .tenant = f.tenants.v[i % 3 == 2 ? 2 : i % 2],
					      .klass = i % 3 == 2 ? CONF_CLASS_STANDARD : CONF_CLASS_INTERACTIVE,
					      .cost = 1, .deadline_ms = (uint64_t)((i * 7919) % N) + 1, .bytes = 10 };
		cr_assert_eq(queue_push(&f.q, &its[i], 0), 0);
	}
	/* cancel every fifth (clients that left) */
	for (int i = 0; i < N; i += 5)
		queue_remove(&f.q, &its[i]);
	cr_assert_eq(f.q.count, N - N / 5);
	cr_assert_null(queue_expired(&f.q, 0));
	uint64_t last = 0;
	int expired = 0;
	for (uint64_t now = 1; now <= N + 100; now += 100) {
		struct queue_item *it;
		while ((it = queue_expired(&f.q, now)) != NULL) {
			cr_assert_geq(it->deadline_ms, last, "expiry out of order");
			cr_assert_leq(it->deadline_ms, now);
			last = it->deadline_ms;
			queue_remove(&f.q, it);
			expired++;
		}
	}
	cr_assert_eq(expired, N - N / 5);
	cr_assert_eq(queue_next_deadline(&f.q), UINT64_MAX);
	free(its);
	teardown(&f);
}

Test(queue, full_and_unmeetable_verdicts_with_retry_hints, .timeout = 5)
{
	struct fixture f;
	setup(&f, "classes:\n"
		  "  interactive: { max_queue: 3, max_wait_ms: 100, pools: [gold] }\n"
		  "  standard: { max_queue: 3, max_wait_ms: 100, pools: [spot] }\n"
		  "  opportunistic: { max_queue: 3, max_wait_ms: 100, pools: [spot] }\n");
	uint64_t retry = 0;
	struct queue_item *victim;
	/* No completion seen yet: the wait cannot be predicted, so it is allowed. */
	cr_assert_eq(queue_check(&f.q, CONF_CLASS_INTERACTIVE, f.tenants.v[0], 10, 0, 100, &retry, &victim), QUEUE_CHECK_OK);
	/* gold: 4 slots, each held 200 ms -> 20 requests/s. */
	for (int i = 0; i < 50; i++) {
		queue_on_dispatch(&f.q, 0, CONF_CLASS_INTERACTIVE);
		queue_on_release(&f.q, 0, CONF_CLASS_INTERACTIVE, 200);
	}
	cr_assert_eq(queue_predicted_wait(&f.q, CONF_CLASS_INTERACTIVE, f.tenants.v[0]), 50, "1 item at 20/s: 50 ms");
	cr_assert_eq(queue_check(&f.q, CONF_CLASS_INTERACTIVE, f.tenants.v[0], 10, 0, 100, &retry, &victim), QUEUE_CHECK_OK);
	struct queue_item *its[3];
	for (int i = 0; i < 3; i++) {
		its[i] = item(&f, 0, CONF_CLASS_INTERACTIVE, 1, 100);
		cr_assert_eq(queue_push(&f.q, its[i], 0), 0);
	}
	/* 3 ahead + itself at 20/s = 200 ms > 100 ms deadline... but the
	 * queue is also full (max_queue 3): full is reported first. */
	cr_assert_eq(queue_check(&f.q, CONF_CLASS_INTERACTIVE, f.tenants.v[0], 10, 0, 100, &retry, &victim), QUEUE_CHECK_FULL);
	cr_assert_eq(retry, 50, "a slot turns over every 50 ms");
	queue_remove(&f.q, its[2]);
	cr_assert_eq(queue_check(&f.q, CONF_CLASS_INTERACTIVE, f.tenants.v[0], 10, 0, 100, &retry, &victim), QUEUE_CHECK_UNMEETABLE);
	cr_assert_eq(retry, 50, "3 x 50 ms = 150 ms predicted, 100 ms budget: retry in 50 ms");
	cr_assert_eq(queue_check(&f.q, CONF_CLASS_INTERACTIVE, f.tenants.v[0], 10, 0, 1000, &retry, &victim), QUEUE_CHECK_OK,
		     "a longer deadline can wait");
	queue_remove(&f.q, its[0]);
	queue_remove(&f.q, its[1]);
	for (int i = 0; i < 3; i++)
		free(its[i]);
	teardown(&f);
}

Test(queue, predicted_wait_follows_fair_order_and_full_queue_evicts_the_fattest, .timeout = 5)
{
	struct fixture f;
	setup(&f, "classes:\n"
		  "  interactive: { max_queue: 10, max_wait_ms: 100, pools: [gold] }\n"
		  "  standard: { max_queue: 3, max_wait_ms: 100, pools: [spot] }\n"
		  "  opportunistic: { max_queue: 3, max_wait_ms: 100, pools: [spot] }\n");
	for (int i = 0; i < 50; i++) {	/* gold: 4 slots x 200 ms: 20 req/s */
		queue_on_dispatch(&f.q, 0, CONF_CLASS_INTERACTIVE);
		queue_on_release(&f.q, 0, CONF_CLASS_INTERACTIVE, 200);
	}
	/* b (weight 3) floods the class with 10 requests. */
	struct queue_item *its[10];
	for (int i = 0; i < 10; i++) {
		its[i] = item(&f, 1, CONF_CLASS_INTERACTIVE, 1, 100000);
		cr_assert_eq(queue_push(&f.q, its[i], 0), 0);
	}
	const struct queue_tenant *a = f.tenants.v[0], *b = f.tenants.v[1];
	/* b's next waits behind b's 10: 11 x 50 ms; a's first behind 3 of b's
	 * (b's weight per round of a's): 4 x 50 ms. */
	cr_assert_eq(queue_predicted_wait(&f.q, CONF_CLASS_INTERACTIVE, b), 550);
	cr_assert_eq(queue_predicted_wait(&f.q, CONF_CLASS_INTERACTIVE, a), 200);
	uint64_t retry;
	struct queue_item *victim;
	cr_assert_eq(queue_check(&f.q, CONF_CLASS_INTERACTIVE, a, 10, 0, 100000, &retry, &victim), QUEUE_CHECK_OK);
	cr_assert_eq(victim, its[9], "the full class pushes out b's newest request for a");
	queue_remove(&f.q, victim);
	cr_assert_eq(queue_check(&f.q, CONF_CLASS_INTERACTIVE, b, 10, 0, 100000, &retry, &victim), QUEUE_CHECK_OK);
	cr_assert_null(victim, "room left by the eviction");
	struct queue_item *mine = item(&f, 0, CONF_CLASS_INTERACTIVE, 1, 100000);
	cr_assert_eq(queue_push(&f.q, mine, 0), 0);
	cr_assert_eq(queue_check(&f.q, CONF_CLASS_INTERACTIVE, b, 10, 0, 100000, &retry, &victim), QUEUE_CHECK_FULL,
		     "b, the fattest, is refused when full");
	while (queue_pop(&f.q, 0) != NULL)
		;
	for (int i = 0; i < 10; i++)
		free(its[i]);
	free(mine);
	teardown(&f);
}

/* --- reload: tenants added, removed and reordered under queued requests --- */

/* The snapshot of `base` with its tenants in another order, some gone, some
 * new: `tenants` is the tenants section. */
static struct conf *reparse(const char *tenants, const char *classes)
{
	char text[4096];
	const char *cut = strstr(base, "tenants:\n");
	snprintf(text, sizeof(text), "%.*s%s%s", (int)(cut - base), base, tenants, classes);
	struct conf *c = NULL;
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("test.yaml", text, strlen(text), &c, &diag), 0, "%s", diag.count ? diag.msg[0] : "");
	return c;
}

static const char reordered[] =
	"tenants:\n"
	"  n: { keys: [ { sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 } ], default_class: interactive, max_class: interactive }\n"
	"  c: { keys: [ { sha256: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9 } ], default_class: opportunistic, max_class: standard }\n"
	"  b: { keys: [ { sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 } ], default_class: interactive, max_class: interactive, weight: 3 }\n"
	"  a: { keys: [ { sha256: 486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7 } ], default_class: interactive, max_class: interactive, weight: 1 }\n";

enum { R_N = 60 };

/* Push the same mixed load on a fixture: tenants a, b, c in two classes. */
static void load(struct fixture *f, struct queue_item *its)
{
	for (int i = 0; i < R_N; i++) {
		int t = i % 3;
		its[i] = (struct queue_item){ .tenant = f->tenants.v[t],
					      .klass = t == 2 ? CONF_CLASS_STANDARD : CONF_CLASS_INTERACTIVE,
					      .cost = 10 + (i * 37) % 90, .deadline_ms = 100000 + (uint64_t)i,
					      .bytes = 10 };
		cr_assert_eq(queue_push(&f->q, &its[i], (uint64_t)i), 0);
	}
}

Test(queue, reload_with_tenants_added_removed_and_reordered_keeps_the_dispatch_order, .timeout = 5)
{
	/* Two identical queues; one is reloaded halfway through with its
	 * tenants in reverse order and a new one first.  Both must dispatch
	 * the same requests in the same order: no queued request moves. */
	struct fixture x, y;
	setup(&x, all_classes);
	setup(&y, all_classes);
	struct queue_item *xi = calloc(R_N, sizeof(*xi)), *yi = calloc(R_N, sizeof(*yi));
	load(&x, xi);
	load(&y, yi);
	for (int d = 0; d < R_N / 3; d++)
		cr_assert_eq(queue_pop(&x.q, 1) - xi, queue_pop(&y.q, 1) - yi);

	struct queue_tenant *ya = y.tenants.v[0];
	struct conf *fresh = reparse(reordered, all_classes);
	cr_assert_eq(queue_tenants_reconfigure(&y.tenants, fresh, 0), 0);
	queue_reconfigure(&y.q, fresh);
	conf_destroy(y.conf);
	y.conf = fresh;
	cr_assert_eq(y.tenants.v[3], ya);
	cr_assert_eq(ya->index, 3, "a's index changed; its queued requests did not move");

	/* The new tenant queues a request too: it takes its turn, and the
	 * others keep theirs. */
	struct queue_item yn = { .tenant = y.tenants.v[0], .klass = CONF_CLASS_STANDARD, .cost = 10,
				 .deadline_ms = 200000 };
	cr_assert_eq(queue_push(&y.q, &yn, 100), 0);
	int seen = 0;
	struct queue_item *a, *b;
	while ((a = queue_pop(&x.q, 1)) != NULL) {
		b = queue_pop(&y.q, 1);
		if (b == &yn)
			b = queue_pop(&y.q, 1);	/* the newcomer: not in x */
		cr_assert_not_null(b);
		cr_assert_eq(a - xi, b - yi, "dispatch %d: x took request %td, y %td", seen, a - xi, b - yi);
		cr_assert_str_eq(a->tenant->cfg->name, b->tenant->cfg->name);
		seen++;
	}
	cr_assert_eq(seen, R_N - R_N / 3);
	if (yn.queued)
		cr_assert_eq(queue_pop(&y.q, 1), &yn);
	cr_assert_null(queue_pop(&y.q, 1));
	free(xi);
	free(yi);
	teardown(&x);
	teardown(&y);
}

Test(queue, a_removed_tenants_queued_requests_still_pop_in_order, .timeout = 5)
{
	struct fixture f;
	setup(&f, all_classes);
	struct queue_tenant *b = f.tenants.v[1];
	struct queue_item its[6];
	/* a a b b b a, all interactive: b (weight 3) is removed by a reload. */
	const int who[6] = { 0, 0, 1, 1, 1, 0 };
	for (int i = 0; i < 6; i++) {
		its[i] = (struct queue_item){ .tenant = queue_tenant_get(f.tenants.v[who[i]]),
					      .klass = CONF_CLASS_INTERACTIVE, .cost = 10,
					      .deadline_ms = 1000 + (uint64_t)i, .bytes = 10 };
		cr_assert_eq(queue_push(&f.q, &its[i], (uint64_t)i), 0);
	}
	const char *without_b = strstr(reordered, "  c:");
	char tenants[2048];
	snprintf(tenants, sizeof(tenants), "tenants:\n%.*s%s", (int)(strstr(reordered, "  b:") - without_b),
		 without_b, strstr(reordered, "  a:"));
	struct conf *fresh = reparse(tenants, all_classes);
	cr_assert_eq(queue_tenants_reconfigure(&f.tenants, fresh, 0), 0);
	queue_reconfigure(&f.q, fresh);
	conf_destroy(f.conf);
	f.conf = fresh;
	cr_assert_eq(f.tenants.n, 2);
	cr_assert_eq(f.tenants.retired, b, "b holds three queued requests");
	cr_assert_float_eq(b->cfg->weight, 3, 1e-9, "its fair share stays its own");
	cr_assert_eq(f.q.count, 6, "nothing was dropped");

	/* Its requests keep their order and their weight: b's three come
	 * before a's second (b is served three tokens per one of a's). */
	struct queue_item *order[6];
	for (int i = 0; i < 6; i++) {
		order[i] = queue_pop(&f.q, 1);
		cr_assert_not_null(order[i]);
	}
	cr_assert_null(queue_pop(&f.q, 1));
	int last_b = -1, last_a = -1, bs = 0;
	for (int i = 0; i < 6; i++) {
		int idx = (int)(order[i] - its);
		int *last = who[idx] == 1 ? &last_b : &last_a;
		cr_assert_gt(idx, *last, "tenant %d's requests out of order", who[idx]);
		*last = idx;
		bs += who[idx] == 1 && i < 4;
	}
	cr_assert_eq(bs, 3, "b's requests kept their weight in the fair order");
	/* Each request ends: the last of b's frees it. */
	for (int i = 0; i < 6; i++) {
		queue_tenant_put(&its[i].tenant);
		if (i == 3)
			cr_assert_eq(f.tenants.retired, b);
	}
	cr_assert_null(f.tenants.retired);
	teardown(&f);
}

/* ---- reloads that add, remove and reorder pools ---------------------------- */

static struct conf *parse_text(const char *pools, const char *classes)
{
	char text[4096];
	const char *cut = strstr(base, "pools:\n"), *tenants = strstr(base, "tenants:\n");
	char key[65];
	uint8_t h[32];
	queue_key_hash("sk-a", 4, h);
	for (int i = 0; i < 32; i++)
		sprintf(key + 2 * i, "%02x", h[i]);
	char tenants_text[2048];
	snprintf(tenants_text, sizeof(tenants_text), tenants, key);
	snprintf(text, sizeof(text), "%.*s%s%s%s", (int)(cut - base), base, pools, tenants_text, classes);
	struct conf *c = NULL;
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("test.yaml", text, strlen(text), &c, &diag), 0, "%s", diag.count ? diag.msg[0] : "");
	return c;
}

/* Reload f to `fresh` as the gateway does: map by name, prepare, commit. */
static void reload_pools(struct fixture *f, struct conf *fresh, struct queue_gone *gone)
{
	size_t from[CONF_POOLS_MAX];
	conf_pool_map(f->conf, fresh, from);
	struct queue_pools_next next;
	cr_assert_eq(queue_pools_prepare(fresh->npools, &next), 0);
	cr_assert_eq(queue_tenants_reconfigure(&f->tenants, fresh, 0), 0);
	queue_reconfigure_pools(&f->q, fresh, from, &next, gone);
	cr_assert_null(next.v, "the prepared pools were taken");
	conf_destroy(f->conf);
	f->conf = fresh;
}

static size_t count_list(struct queue_item *it)
{
	size_t n = 0;
	for (; it != NULL; it = it->next)
		n++;
	return n;
}

/* spot first, then a new pool; gold is gone. */
static const char spot_then_new[] =
	"pools:\n"
	"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 8 } ] }\n"
	"  more: { slice: elastic, backends: [ { address: 127.0.0.1:9003, max_inflight: 2 } ] }\n";

Test(queue, a_reload_carries_each_kept_pools_counts_by_name, .timeout = 5)
{
	struct fixture f;
	setup(&f, all_classes);
	/* Two opportunistic slots held on spot (pool 1), one interactive on gold. */
	queue_on_dispatch(&f.q, 1, CONF_CLASS_OPPORTUNISTIC);
	queue_on_dispatch(&f.q, 1, CONF_CLASS_OPPORTUNISTIC);
	queue_on_release(&f.q, 1, CONF_CLASS_OPPORTUNISTIC, 400);
	queue_on_dispatch(&f.q, 1, CONF_CLASS_OPPORTUNISTIC);
	queue_on_dispatch(&f.q, 0, CONF_CLASS_INTERACTIVE);
	double held = f.q.pools[1].held_ms;
	cr_assert_gt(held, 0);

	struct queue_gone gone;
	reload_pools(&f, parse_text(spot_then_new,
				    "classes:\n"
				    "  interactive: { max_queue: 100, pools: [spot, more] }\n"
				    "  standard: { max_queue: 100, pools: [more] }\n"
				    "  opportunistic: { max_queue: 100, pools: [spot], max_slot_share: 0.25 }\n"),
		     &gone);
	cr_assert_null(gone.no_backend);
	cr_assert_null(gone.model_not_found);
	cr_assert_eq(f.q.npools, 2);
	cr_assert_eq(f.q.pools[0].by_class[CONF_CLASS_OPPORTUNISTIC], 2, "spot keeps its slots held, now pool 0");
	cr_assert_eq(f.q.pools[0].slots, 8, "and its slot count until told again");
	cr_assert_float_eq(f.q.pools[0].held_ms, held, 1e-9);
	cr_assert_float_eq(f.q.pools[0].dispatched[CONF_CLASS_OPPORTUNISTIC], 3, 1e-9);
	cr_assert_eq(f.q.pools[1].by_class[CONF_CLASS_INTERACTIVE], 0, "the new pool starts empty");
	cr_assert_eq(f.q.pools[1].slots, 0);
	cr_assert(f.q.pools[1].serves[CONF_CLASS_STANDARD]);
	cr_assert_not(f.q.pools[0].serves[CONF_CLASS_STANDARD]);
	/* max_slot_share 0.25 of spot's 8 slots is 2: opportunistic holds 2. */
	cr_assert_not(queue_share_allows(&f.q, 0, CONF_CLASS_OPPORTUNISTIC));
	cr_assert_eq(queue_class_pools(&f.q, CONF_CLASS_INTERACTIVE), 3);
	teardown(&f);
}

Test(queue, queued_requests_whose_pools_were_all_removed_come_off_the_others_keep_their_place, .timeout = 5)
{
	struct fixture f;
	setup(&f, all_classes);
	/* interactive lists gold and spot, standard only spot. */
	struct queue_item *i1 = item(&f, 0, CONF_CLASS_INTERACTIVE, 10, 1000);
	struct queue_item *s1 = item(&f, 2, CONF_CLASS_STANDARD, 10, 5000);
	struct queue_item *i2 = item(&f, 1, CONF_CLASS_INTERACTIVE, 10, 900);
	struct queue_item *s2 = item(&f, 2, CONF_CLASS_STANDARD, 10, 4000);
	cr_assert_eq(queue_push(&f.q, i1, 0), 0);
	cr_assert_eq(queue_push(&f.q, s1, 0), 0);
	cr_assert_eq(queue_push(&f.q, i2, 0), 0);
	cr_assert_eq(queue_push(&f.q, s2, 0), 0);

	/* spot is removed: standard now lists gold, but its queued requests
	 * were admitted for spot alone, which is gone. */
	struct queue_gone gone;
	reload_pools(&f, parse_text("pools:\n"
				    "  gold: { slice: elastic, backends: [ { address: 127.0.0.1:9001, max_inflight: 4 } ] }\n",
				    "classes:\n"
				    "  interactive: { max_queue: 100, max_wait_ms: 1000, pools: [gold] }\n"
				    "  standard: { max_queue: 100, max_wait_ms: 5000, pools: [gold] }\n"
				    "  opportunistic: { max_queue: 100, pools: [gold] }\n"),
		     &gone);
	cr_assert_null(gone.model_not_found);
	cr_assert_eq(count_list(gone.no_backend), 2);
	for (struct queue_item *it = gone.no_backend; it != NULL; it = it->next) {
		cr_assert(it == s1 || it == s2);
		cr_assert_not(it->queued);
	}
	cr_assert_eq(f.q.count, 2);
	cr_assert_eq(f.q.classes[CONF_CLASS_STANDARD].count, 0);
	cr_assert_eq(queue_next_deadline(&f.q), 900, "deadlines kept");
	/* The interactive ones keep their fair order (b's flow went active
	 * last, so it is first among equals) on gold, now pool 0. */
	cr_assert_eq(queue_pop(&f.q, 0), i2);
	cr_assert_eq(queue_pop(&f.q, 0), i1);
	cr_assert_null(queue_pop(&f.q, 0));
	free(i1);
	free(i2);
	free(s1);
	free(s2);
	teardown(&f);
}

/* Routing by model: gold serves m1, spot m2; queued items carry masks. */
static const char routed[] =
	"pools:\n"
	"  gold: { slice: reserved, models: [m1], backends: [ { address: 127.0.0.1:9001, max_inflight: 4 } ] }\n"
	"  spot: { slice: elastic, models: [m2], backends: [ { address: 127.0.0.1:9002, max_inflight: 8 } ] }\n";
static const char routed_classes[] =
	"classes:\n"
	"  interactive: { max_queue: 100, pools: [gold, spot] }\n"
	"  standard: { max_queue: 100, pools: [spot] }\n"
	"  opportunistic: { max_queue: 100, pools: [spot] }\n";

Test(queue, a_reorder_remaps_the_masks_and_losing_the_pool_of_a_model_is_no_backend, .timeout = 5)
{
	struct fixture f;
	setup(&f, all_classes);
	struct queue_gone gone;
	reload_pools(&f, parse_text(routed, routed_classes), &gone);
	queue_set_pool_slots(&f.q, 0, 4);
	queue_set_pool_slots(&f.q, 1, 8);
	struct queue_item *m1 = item(&f, 0, CONF_CLASS_INTERACTIVE, 10, 1000);
	struct queue_item *m2 = item(&f, 0, CONF_CLASS_INTERACTIVE, 10, 1000);
	m1->model = "m1";
	m1->model_len = 2;
	m1->pools = conf_model_pools(f.conf, "m1", 2);
	m2->model = "m2";
	m2->model_len = 2;
	m2->pools = conf_model_pools(f.conf, "m2", 2);
	cr_assert_eq(m1->pools, 1);
	cr_assert_eq(m2->pools, 2);
	cr_assert_eq(queue_push(&f.q, m1, 0), 0);
	cr_assert_eq(queue_push(&f.q, m2, 0), 0);

	/* Reordered: spot is pool 0 now.  Nothing comes off, and each pool
	 * still takes only its own model, under its new index. */
	reload_pools(&f, parse_text("pools:\n"
				    "  spot: { slice: elastic, models: [m2], backends: [ { address: 127.0.0.1:9002, max_inflight: 8 } ] }\n"
				    "  gold: { slice: reserved, models: [m1], backends: [ { address: 127.0.0.1:9001, max_inflight: 4 } ] }\n",
				    routed_classes),
		     &gone);
	cr_assert_null(gone.no_backend);
	cr_assert_null(gone.model_not_found);
	cr_assert_eq(m1->pools, 2, "m1's pool, gold, is pool 1 now");
	cr_assert_eq(m2->pools, 1);
	cr_assert_eq(queue_waiting_for(&f.q, 0, CONF_CLASS_INTERACTIVE), 1);
	cr_assert_eq(queue_waiting_for(&f.q, 1, CONF_CLASS_INTERACTIVE), 1);

	/* gold removed: m1 lost the only pool serving it (503 no_backend);
	 * m2 stays. */
	reload_pools(&f, parse_text("pools:\n"
				    "  spot: { slice: elastic, models: [m2], backends: [ { address: 127.0.0.1:9002, max_inflight: 8 } ] }\n",
				    "classes:\n"
				    "  interactive: { max_queue: 100, pools: [spot] }\n"
				    "  standard: { max_queue: 100, pools: [spot] }\n"
				    "  opportunistic: { max_queue: 100, pools: [spot] }\n"),
		     &gone);
	cr_assert_eq(gone.no_backend, m1);
	cr_assert_null(m1->next);
	cr_assert_null(gone.model_not_found);
	cr_assert_eq(queue_pop(&f.q, 0), m2);
	free(m1);
	free(m2);
	teardown(&f);
}

Test(queue, a_mask_in_flight_follows_its_pools_to_their_new_indexes, .timeout = 5)
{
	/* Before: 0 gold, 1 spot, 2 old.  After: 0 new, 1 spot, 2 gold. */
	const size_t from[3] = { CONF_POOL_NEW, 1, 0 };
	cr_assert_eq(queue_pools_remap(0x1, from, 3), 0x4, "gold moved to 2");
	cr_assert_eq(queue_pools_remap(0x3, from, 3), 0x6);
	cr_assert_eq(queue_pools_remap(0x4, from, 3), 0, "old is gone");
	cr_assert_eq(queue_pools_remap(UINT64_MAX, from, 3), UINT64_MAX, "any pool stays any pool");
}
