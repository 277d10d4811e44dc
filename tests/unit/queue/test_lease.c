/* test_lease.c - shared limits: lease sizing and the fallback state machine,
 * on a hand-driven clock, against a global bucket kept here the way the
 * Redis script keeps it. */
#include <criterion/criterion.h>

#include "queue/lease.h"

/* The global bucket, as gateway/shared.c's script keeps it. */
struct global {
	double rate_ms, burst, level;
	uint64_t last_ms;
};

static double script(struct global *g, double give, uint64_t now_ms)
{
	if (now_ms > g->last_ms) {
		g->level += (double)(now_ms - g->last_ms) * g->rate_ms;
		g->last_ms = now_ms;
	}
	if (g->level > g->burst)
		g->level = g->burst;
	if (give >= 0) {
		g->level = g->level + give < g->burst ? g->level + give : g->burst;
		return 0;
	}
	double grant = -give < g->level ? -give : (g->level > 0 ? g->level : 0);
	g->level -= grant;
	return grant;
}

struct replica {
	struct queue_bucket b;
	struct queue_lease l;
	unsigned admitted;
};

static void renew(struct replica *r, struct global *g, uint64_t now)
{
	double sent = queue_lease_plan(&r->l, &r->b, 3, now);
	queue_lease_grant(&r->l, &r->b, sent, script(g, sent, now));
}

Test(lease, three_replicas_uneven_demand_share_one_limit, .timeout = 10)
{
	/* 100/s, 100 deep, offered 300/s as 70/20/10 for 30 s. */
	struct global g = { .rate_ms = 0.1, .burst = 100, .level = 0, .last_ms = 0 };
	struct replica r[3] = { 0 };
	const unsigned every_ms[3] = { 5, 17, 33 };	/* 210, 60, 30 per second (rounded) */
	unsigned renewals = 0;
	for (int i = 0; i < 3; i++) {
		queue_bucket_init(&r[i].b, 100, 100, 0);
		queue_lease_local(&r[i].l, &r[i].b, 100, 100, 3, 0);	/* start-up: 1/3 of the burst */
		queue_lease_hold(&r[i].l, &r[i].b, 100, 100, 3, 0);
	}
	uint64_t wait;
	for (uint64_t now = 1; now <= 30000; now++) {
		for (int i = 0; i < 3; i++) {
			if (now % every_ms[i] == 0 && queue_bucket_take(&r[i].b, 1, now, &wait))
				r[i].admitted++;
			/* the gateway pokes after each admission, and ticks once a second */
			if ((now % every_ms[i] == 0 || now % 1000 == 0) && queue_lease_due(&r[i].l, &r[i].b, now)) {
				renew(&r[i], &g, now);
				renewals++;
			}
		}
	}
	unsigned total = r[0].admitted + r[1].admitted + r[2].admitted;
	cr_assert_leq(total, 100 * 30 + 100, "one limit plus one burst, got %u", total);
	cr_assert_geq(total, 0.95 * 100 * 30, "the limit is used, got %u", total);
	for (int i = 0; i < 3; i++)
		cr_assert_gt(r[i].admitted, 0, "replica %d starved", i);
	cr_assert_leq(renewals, total / 20, "%u renewals for %u admitted", renewals, total);
}

Test(lease, an_idle_replica_gives_its_lease_back, .timeout = 5)
{
	struct global g = { .rate_ms = 0.1, .burst = 100, .level = 0, .last_ms = 0 };
	struct replica r = { 0 };
	queue_bucket_init(&r.b, 100, 100, 0);
	queue_lease_hold(&r.l, &r.b, 100, 100, 3, 0);
	cr_assert_float_eq(r.b.level, 100.0 / 3, 1e-9, "first seen: a third of the burst");
	renew(&r, &g, 1000);
	/* no demand: only the floor, a tenth of the per-replica share, is kept */
	cr_assert_float_eq(r.b.level, 100.0 / 30, 1e-9);
	cr_assert_float_eq(g.level, 100, 1e-9, "a second of refill plus what came back, capped at the burst");
	/* no refill while held */
	cr_assert_float_eq(queue_bucket_level(&r.b, 60000), 100.0 / 30, 1e-9);
}

Test(lease, demand_sizes_the_lease_and_refunds_flow_back, .timeout = 5)
{
	struct global g = { .rate_ms = 0.01, .burst = 5000, .level = 1000, .last_ms = 0 };
	struct replica r = { 0 };
	uint64_t wait;
	queue_bucket_init(&r.b, 1000, 1000, 0);
	queue_lease_hold(&r.l, &r.b, 1000, 1000, 1, 0);
	renew(&r, &g, 1);
	for (uint64_t now = 2; now <= 1000; now++)
		queue_bucket_take(&r.b, 0.1, now, &wait);	/* 100 per second asked */
	renew(&r, &g, 1000);
	cr_assert(r.l.target > 100 && r.l.target < 250, "about two seconds of demand, got %g", r.l.target);
	cr_assert_float_eq(r.b.level, r.l.target, 1e-6, "topped up to the target");
	/* a refund raises the local level; the next renewal returns the surplus */
	queue_bucket_adjust(&r.b, 500, 1001);
	double before = g.level;
	renew(&r, &g, 2001);
	cr_assert_gt(g.level, before + 400, "the refund reached the global bucket");
}

Test(lease, renewal_pace, .timeout = 5)
{
	struct queue_bucket b;
	struct queue_lease l = { 0 };
	queue_bucket_init(&b, 10, 10, 1000);
	queue_lease_hold(&l, &b, 10, 10, 1, 1000);
	cr_assert(queue_lease_due(&l, &b, 1000), "due at once after joining");
	double sent = queue_lease_plan(&l, &b, 1, 1000);
	queue_lease_grant(&l, &b, sent, 0);
	cr_assert_not(queue_lease_due(&l, &b, 1100));
	b.level = 0;	/* spent */
	cr_assert_not(queue_lease_due(&l, &b, 1200), "never more often than every 250 ms");
	cr_assert(queue_lease_due(&l, &b, 1250), "below half the target: early");
	sent = queue_lease_plan(&l, &b, 1, 1250);
	cr_assert_lt(sent, 0, "it asks");
	queue_lease_grant(&l, &b, sent, 0);	/* the global bucket is dry */
	cr_assert_not(queue_lease_due(&l, &b, 1600), "dry: wait for the next second");
	cr_assert(queue_lease_due(&l, &b, 2250), "at least once a second");
}

Test(lease, fallback_caps_at_a_share_and_rejoining_adds_nothing, .timeout = 5)
{
	struct queue_bucket b;
	struct queue_lease l = { 0 };
	uint64_t wait;
	queue_bucket_init(&b, 90, 90, 0);
	queue_lease_hold(&l, &b, 90, 90, 3, 0);
	b.level = 80;	/* a large lease */
	queue_lease_local(&l, &b, 90, 90, 3, 1000);
	cr_assert_not(b.held);
	cr_assert_float_eq(b.burst, 30, 1e-9);
	cr_assert_float_eq(queue_bucket_level(&b, 1000), 30, 1e-9, "capped at a third of the burst");
	for (int i = 0; i < 30; i++)
		cr_assert(queue_bucket_take(&b, 1, 1000, &wait));
	cr_assert_not(queue_bucket_take(&b, 1, 1000, &wait));
	cr_assert_float_eq(queue_bucket_level(&b, 1500), 15, 1e-9, "refills at a third of the rate");
	/* Redis is back (restarted empty): the local level is the lease, no burst on top */
	queue_lease_hold(&l, &b, 90, 90, 3, 1500);
	cr_assert(b.held);
	cr_assert_float_eq(queue_bucket_level(&b, 1500), 15, 1e-9);
	struct global g = { .rate_ms = 0.09, .burst = 90, .level = 0, .last_ms = 1500 };
	double sent = queue_lease_plan(&l, &b, 3, 1500);
	queue_lease_grant(&l, &b, sent, script(&g, sent, 1500));
	cr_assert_leq(queue_bucket_level(&b, 1500), 15 + 1e-9, "an empty global bucket grants nothing");
	/* a reload keeps a held bucket's level */
	queue_bucket_reconfigure(&b, 30, 300, 5000);
	cr_assert(b.held);
	cr_assert_leq(queue_bucket_level(&b, 5000), 15 + 1e-9);
}

Test(lease, link_state_logs_once_and_counts_fallback_time, .timeout = 5)
{
	struct queue_shared s;
	queue_shared_init(&s, 0);
	cr_assert_eq(s.state, QUEUE_SHARED_DOWN, "local limits until Redis answers");
	cr_assert_not(queue_shared_set_up(&s, 50), "a first connect is not a recovery");
	cr_assert_eq(queue_shared_fallback_ms(&s, 50), 50);
	cr_assert(queue_shared_set_down(&s, 1000), "the outage is told");
	cr_assert_eq(queue_shared_backoff(&s), 100);
	cr_assert_not(queue_shared_set_down(&s, 1100), "the retries are not");
	cr_assert_eq(queue_shared_backoff(&s), 200);
	cr_assert_eq(queue_shared_backoff(&s), 400);
	cr_assert_eq(queue_shared_backoff(&s), 800);
	cr_assert_eq(queue_shared_backoff(&s), 1600);
	cr_assert_eq(queue_shared_backoff(&s), 2000);
	cr_assert_eq(queue_shared_backoff(&s), 2000, "capped");
	cr_assert_eq(queue_shared_fallback_ms(&s, 3000), 50 + 2000);
	cr_assert(queue_shared_set_up(&s, 4000), "back after a told outage");
	cr_assert_eq(s.state, QUEUE_SHARED_UP);
	cr_assert_eq(queue_shared_fallback_ms(&s, 9000), 50 + 3000, "not counting while up");
	cr_assert_eq(queue_shared_backoff(&s), 100, "the backoff starts over");
	cr_assert(queue_shared_set_down(&s, 9000), "a new outage is told again");
}
