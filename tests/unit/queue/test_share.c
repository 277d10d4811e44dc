/*
 * test_share.c - tenant slot shares inside a class (queue/share.h), on a
 * hand-driven clock: a flooding tenant is held to its share while another
 * tenant of the class is active, and takes every slot when it is alone;
 * weights; `off`; admission starting a light tenant in the room kept for
 * it; and holdings that stay exact through release, requeue, pool reloads
 * and tenant reloads.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "queue/admit.h"
#include "queue/queue.h"
#include "queue/share.h"
#include "queue/tenant.h"

#define TENANTS                                                                                                      \
	"tenants:\n"                                                                                                 \
	"  a: { keys: [ { sha256: 486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7 } ], "            \
	"default_class: interactive, max_class: interactive }\n"                                                     \
	"  b: { keys: [ { sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 } ], "            \
	"default_class: interactive, max_class: interactive }\n"                                                     \
	"  c: { keys: [ { sha256: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9 } ], "            \
	"default_class: interactive, max_class: interactive, weight: 3 }\n"

#define POOLS                                                                                                        \
	"pools:\n"                                                                                                   \
	"  gold: { slice: reserved, backends: [ { address: 127.0.0.1:9001, max_inflight: 4 } ] }\n"                  \
	"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 8 } ] }\n"

#define HEAD "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:1\n"

/* interactive on gold (4 slots), fair. */
static const char fair_yaml[] = HEAD
	"classes:\n"
	"  interactive: { max_queue: 1000, max_wait_ms: 10000, pools: [gold], tenant_slot_share: fair }\n" POOLS TENANTS;

static const char off_yaml[] = HEAD
	"classes:\n"
	"  interactive: { max_queue: 1000, max_wait_ms: 10000, pools: [gold], tenant_slot_share: off }\n" POOLS TENANTS;

/* interactive on spot (8 slots). */
static const char spot_yaml[] = HEAD
	"classes:\n"
	"  interactive: { max_queue: 1000, max_wait_ms: 10000, pools: [spot], tenant_slot_share: fair }\n" POOLS TENANTS;

enum { A = 0, B = 1, C = 2 };
enum { GOLD = 0, SPOT = 1 };
#define K CONF_CLASS_INTERACTIVE
#define NITEMS 64

struct fixture {
	struct conf *conf;
	struct queue_tenants tenants;
	struct queue q;
	struct queue_item items[NITEMS];
	size_t nitems;
};

static struct conf *parse(const char *yaml)
{
	struct conf *c;
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("test.yaml", yaml, strlen(yaml), &c, &diag), 0, "%s", diag.count ? diag.msg[0] : "");
	return c;
}

static void setup(struct fixture *f, const char *yaml)
{
	memset(f, 0, sizeof(*f));
	f->conf = parse(yaml);
	cr_assert_eq(queue_tenants_init(&f->tenants, f->conf, 0), 0);
	cr_assert_eq(queue_init(&f->q, f->conf), 0);
	queue_set_pool_slots(&f->q, GOLD, 4);
	queue_set_pool_slots(&f->q, SPOT, 8);
}

/* Every item's request is over: its tenant reference goes. */
static void teardown(struct fixture *f)
{
	for (size_t i = 0; i < f->nitems; i++) {
		queue_remove(&f->q, &f->items[i]);
		queue_tenant_put(&f->items[i].tenant);
	}
	queue_finish(&f->q);
	queue_tenants_finish(&f->tenants);
	conf_destroy(f->conf);
}

static struct queue_tenant *tenant(struct fixture *f, int i)
{
	return f->tenants.v[i];
}

/* Queue one request of tenant i. */
static struct queue_item *enqueue(struct fixture *f, int i, uint64_t now)
{
	cr_assert_lt(f->nitems, NITEMS);
	struct queue_item *it = &f->items[f->nitems++];
	it->tenant = queue_tenant_get(tenant(f, i));
	it->klass = K;
	it->cost = 100;
	it->deadline_ms = now + 10000;
	it->pools = UINT64_MAX;
	cr_assert_eq(queue_push(&f->q, it, now), 0);
	return it;
}

/* What the gateway's slot ledger does with a popped or started item. */
static void take(struct fixture *f, struct queue_item *it, size_t p, uint64_t now)
{
	queue_on_dispatch(&f->q, p, (enum conf_class)it->klass);
	queue_share_take(&f->q, it->tenant, p, (enum conf_class)it->klass, now);
}

static void give(struct fixture *f, struct queue_item *it, size_t p, uint64_t now)
{
	queue_on_release(&f->q, p, (enum conf_class)it->klass, 50);
	queue_share_give(&f->q, it->tenant, p, (enum conf_class)it->klass, now);
}

/* Give every free slot of pool p (of `slots`) to the queue, as the kick
 * does; returns how many started. */
static unsigned fill(struct fixture *f, size_t p, unsigned slots, uint64_t now)
{
	unsigned started = 0;
	struct queue_item *it;
	while (f->q.pools[p].by_class[K] < slots && (it = queue_pop_at(&f->q, p, now)) != NULL) {
		take(f, it, p, now);
		started++;
	}
	return started;
}

static unsigned held(struct fixture *f, int i, size_t p)
{
	return queue_share_held(tenant(f, i), K, p);
}

Test(share, a_flooding_tenant_keeps_its_share_while_another_is_active, .timeout = 5)
{
	struct fixture f;
	setup(&f, fair_yaml);
	/* A has one request in flight; B floods. */
	struct queue_item *a1 = enqueue(&f, A, 0);
	cr_assert_eq(queue_pop_at(&f.q, GOLD, 0), a1);
	take(&f, a1, GOLD, 0);
	for (int i = 0; i < 10; i++)
		enqueue(&f, B, 1);
	cr_assert_eq(fill(&f, GOLD, 4, 1), 2, "B gets its half of the 4 slots, not the 3 left");
	cr_assert_eq(held(&f, B, GOLD), 2);
	cr_assert_eq(f.q.pools[GOLD].by_class[K], 3, "one slot stays free for A");

	/* A's next request starts at once in it; B's queue does not grow into it. */
	struct queue_item *a2 = enqueue(&f, A, 2);
	cr_assert_eq(queue_pop_at(&f.q, GOLD, 2), a2, "A's request goes first although B queued first");
	take(&f, a2, GOLD, 2);

	/* A's requests end; for QUEUE_SHARE_IDLE_MS A's share is kept free. */
	give(&f, a1, GOLD, 10);
	give(&f, a2, GOLD, 20);
	cr_assert_eq(fill(&f, GOLD, 4, 21), 0, "A is still active: its share stays free");
	cr_assert_eq(queue_share_next_change(&f.q, 21), 20 + QUEUE_SHARE_IDLE_MS, "when A's share lapses");
	cr_assert_eq(fill(&f, GOLD, 4, 20 + QUEUE_SHARE_IDLE_MS - 1), 0);
	cr_assert_eq(fill(&f, GOLD, 4, 20 + QUEUE_SHARE_IDLE_MS), 2, "A idle: B takes every slot");
	cr_assert_eq(held(&f, B, GOLD), 4);
	cr_assert_eq(queue_share_next_change(&f.q, 20 + QUEUE_SHARE_IDLE_MS), UINT64_MAX);
	teardown(&f);
}

Test(share, a_tenant_alone_takes_every_slot, .timeout = 5)
{
	struct fixture f;
	setup(&f, fair_yaml);
	for (int i = 0; i < 6; i++)
		enqueue(&f, B, 0);
	cr_assert_eq(fill(&f, GOLD, 4, 0), 4, "work-conserving: nobody else is active");
	cr_assert_eq(held(&f, B, GOLD), 4);
	teardown(&f);
}

Test(share, off_lets_the_flood_fill_the_pool, .timeout = 5)
{
	struct fixture f;
	setup(&f, off_yaml);
	struct queue_item *a1 = enqueue(&f, A, 0);
	cr_assert_eq(queue_pop_at(&f.q, GOLD, 0), a1);
	take(&f, a1, GOLD, 0);
	for (int i = 0; i < 10; i++)
		enqueue(&f, B, 1);
	cr_assert_eq(fill(&f, GOLD, 4, 1), 3, "today's behaviour: B takes every free slot");
	cr_assert_eq(held(&f, B, GOLD), 3);
	cr_assert(queue_share_may_take(&f.q, tenant(&f, B), GOLD, K, 1));
	give(&f, a1, GOLD, 5);
	cr_assert_eq(fill(&f, GOLD, 4, 5), 1, "and A's slot the moment A gives it back");
	teardown(&f);
}

/* Tenant i had one request, which ended at `at`: active, nothing held. */
static void touch(struct fixture *f, int i, size_t p, uint64_t at)
{
	struct queue_item *it = enqueue(f, i, at);
	cr_assert_eq(queue_pop_at(&f->q, p, at), it);
	take(f, it, p, at);
	give(f, it, p, at);
}

Test(share, weights_split_the_slots, .timeout = 5)
{
	struct fixture f;
	setup(&f, spot_yaml);
	/* c (weight 3) floods spot's 8 slots while a (weight 1) is active:
	 * a's quarter stays free for it. */
	touch(&f, A, SPOT, 0);
	for (int i = 0; i < 12; i++)
		enqueue(&f, C, 1);
	cr_assert_eq(fill(&f, SPOT, 8, 1), 6, "3/4 of 8");
	cr_assert_eq(held(&f, C, SPOT), 6);
	teardown(&f);

	/* The other way round: a floods while c is active, and gets 1/4. */
	setup(&f, spot_yaml);
	touch(&f, C, SPOT, 0);
	for (int i = 0; i < 12; i++)
		enqueue(&f, A, 1);
	cr_assert_eq(fill(&f, SPOT, 8, 1), 2, "1/4 of 8");
	cr_assert_eq(held(&f, A, SPOT), 2);
	teardown(&f);
}

Test(share, a_tenant_at_its_share_waits_while_another_under_its_share_waits, .timeout = 5)
{
	struct fixture f;
	setup(&f, fair_yaml);
	/* B floods; A, with small requests (first in fair order), then has
	 * two in flight (its share of 4) and a third waiting, beside B's queue. */
	for (int i = 0; i < 8; i++)
		enqueue(&f, B, 0);
	cr_assert_eq(fill(&f, GOLD, 4, 0), 4);
	struct queue_item *a1 = enqueue(&f, A, 1), *a2 = enqueue(&f, A, 1), *a3 = enqueue(&f, A, 1);
	a1->cost = a2->cost = a3->cost = 10;
	give(&f, &f.items[0], GOLD, 2);
	give(&f, &f.items[1], GOLD, 2);
	cr_assert_eq(queue_pop_at(&f.q, GOLD, 2), a1);
	take(&f, a1, GOLD, 2);
	cr_assert_eq(queue_pop_at(&f.q, GOLD, 2), a2);
	take(&f, a2, GOLD, 2);
	/* B gives one back and is under its share: the slot is B's, although
	 * fair order would pick A, which is at its share. */
	give(&f, &f.items[2], GOLD, 3);
	struct queue_item *next = queue_pop_at(&f.q, GOLD, 3);
	cr_assert_not_null(next);
	cr_assert_eq(next->tenant, tenant(&f, B));
	take(&f, next, GOLD, 3);
	cr_assert_eq(held(&f, A, GOLD), 2);
	cr_assert_eq(held(&f, B, GOLD), 2);
	/* A's own slot comes back to A. */
	give(&f, a1, GOLD, 4);
	cr_assert_eq(queue_pop_at(&f.q, GOLD, 4), a3);
	take(&f, a3, GOLD, 4);
	teardown(&f);
}

Test(share, rounding_up_leaves_no_slot_idle_between_waiting_tenants, .timeout = 5)
{
	struct fixture f;
	setup(&f, fair_yaml);
	/* Two tenants on 4 slots: 2 each.  Then three: a and b 4x1/5, c
	 * (weight 3) 4x3/5; shares rounded up, so tenants that all wait at
	 * their share still fill the pool. */
	for (int i = 0; i < 5; i++) {
		enqueue(&f, A, 0);
		enqueue(&f, B, 0);
	}
	cr_assert_eq(fill(&f, GOLD, 4, 0), 4, "a and b: 2 each");
	cr_assert_eq(held(&f, A, GOLD), 2);
	cr_assert_eq(held(&f, B, GOLD), 2);
	teardown(&f);

	setup(&f, fair_yaml);
	for (int i = 0; i < 5; i++) {
		enqueue(&f, A, 0);
		enqueue(&f, B, 0);
		enqueue(&f, C, 0);
	}
	cr_assert_eq(fill(&f, GOLD, 4, 0), 4, "no slot idle while all three wait");
	cr_assert_geq(held(&f, C, GOLD), 2, "c's share is 4x3/5 = 2.4");
	cr_assert_leq(held(&f, C, GOLD), 3);
	teardown(&f);
}

Test(share, a_tenant_at_its_share_is_passed_over_for_the_next_in_fair_order, .timeout = 5)
{
	struct fixture f;
	setup(&f, fair_yaml);
	for (int i = 0; i < 4; i++)
		enqueue(&f, B, 0);
	cr_assert_eq(fill(&f, GOLD, 4, 0), 4, "B alone: all 4");
	/* A arrives while B holds everything: B is over its share now, so
	 * the next free slot is A's even though B's flow comes first. */
	for (int i = 0; i < 4; i++)
		enqueue(&f, B, 1);
	struct queue_item *a1 = enqueue(&f, A, 2);
	give(&f, &f.items[0], GOLD, 3);
	cr_assert_eq(queue_pop_at(&f.q, GOLD, 3), a1);
	take(&f, a1, GOLD, 3);
	/* B gives back until it is at its share; none of its slots return to
	 * it until it is under 2. */
	give(&f, &f.items[1], GOLD, 4);
	cr_assert_eq(fill(&f, GOLD, 4, 4), 0, "B holds 2 = its share; the free slot is A's room");
	give(&f, &f.items[2], GOLD, 5);
	cr_assert_eq(fill(&f, GOLD, 4, 5), 1, "B under its share takes one back");
	cr_assert_eq(held(&f, B, GOLD), 2);
	cr_assert_eq(held(&f, A, GOLD), 1);
	teardown(&f);
}

Test(share, admission_starts_a_light_tenant_in_the_room_kept_for_it, .timeout = 5)
{
	struct fixture f;
	setup(&f, fair_yaml);
	uint8_t pools[2] = { QUEUE_POOL_UP | QUEUE_POOL_FREE, QUEUE_POOL_UP | QUEUE_POOL_FREE };
	struct queue_facts facts = { .body_bytes = 10, .prompt_tokens = 10, .output_tokens = 10,
				     .deadline_ms = UINT64_MAX, .body_class = -1, .pools = pools };
	/* A had a request a moment ago; B floods and is held to 2. */
	struct queue_item *a1 = enqueue(&f, A, 0);
	cr_assert_eq(queue_pop_at(&f.q, GOLD, 0), a1);
	take(&f, a1, GOLD, 0);
	give(&f, a1, GOLD, 40);
	for (int i = 0; i < 6; i++)
		enqueue(&f, B, 50);
	cr_assert_eq(fill(&f, GOLD, 4, 50), 2);

	/* B is queued, but at its share: A's new request starts at once. */
	struct queue_item *it = &f.items[f.nitems++];
	struct queue_verdict v;
	queue_admit(&f.q, tenant(&f, A), &facts, 60, it, &v);
	cr_assert_eq(v.action, QUEUE_START, "A does not queue behind B's flood");
	cr_assert_eq(v.pool, GOLD);
	take(&f, it, GOLD, 60);

	/* B's own new request waits: B is at its share. */
	struct queue_item *itb = &f.items[f.nitems++];
	queue_admit(&f.q, tenant(&f, B), &facts, 61, itb, &v);
	cr_assert_eq(v.action, QUEUE_WAIT);

	/* With `off`, the same A request would have queued: B took every slot. */
	teardown(&f);
	setup(&f, off_yaml);
	for (int i = 0; i < 6; i++)
		enqueue(&f, B, 50);
	cr_assert_eq(fill(&f, GOLD, 4, 50), 4);
	it = &f.items[f.nitems++];
	queue_admit(&f.q, tenant(&f, A), &facts, 60, it, &v);
	cr_assert_eq(v.action, QUEUE_WAIT);
	teardown(&f);
}

Test(share, holdings_stay_exact_through_release_and_requeue, .timeout = 5)
{
	struct fixture f;
	setup(&f, fair_yaml);
	for (int i = 0; i < 4; i++)
		enqueue(&f, B, 0);
	enqueue(&f, A, 0);
	cr_assert_eq(fill(&f, GOLD, 4, 0), 3, "A's one request, B's share; A's room stays");
	cr_assert_eq(held(&f, A, GOLD), 1);
	cr_assert_eq(held(&f, B, GOLD), 2);
	cr_assert_eq(held(&f, A, GOLD) + held(&f, B, GOLD), f.q.pools[GOLD].by_class[K]);
	/* A connect fails: the slot goes back, the item to the head of its flow. */
	struct queue_item *first_b = &f.items[0];
	cr_assert_not(first_b->queued);
	give(&f, first_b, GOLD, 5);
	cr_assert_eq(queue_requeue(&f.q, first_b), 0);
	cr_assert_eq(held(&f, B, GOLD), 1);
	cr_assert_eq(held(&f, A, GOLD) + held(&f, B, GOLD), f.q.pools[GOLD].by_class[K]);
	cr_assert_eq(queue_pop_at(&f.q, GOLD, 6), first_b, "the failed start goes first again");
	take(&f, first_b, GOLD, 6);
	cr_assert_eq(held(&f, B, GOLD), 2);
	cr_assert_eq(queue_share_held_total(tenant(&f, B), K), 2);
	cr_assert_eq(held(&f, A, GOLD) + held(&f, B, GOLD), f.q.pools[GOLD].by_class[K]);
	/* Everyone ends. */
	for (size_t i = 0; i < f.nitems; i++)
		if (!f.items[i].queued)
			give(&f, &f.items[i], GOLD, 7);
	cr_assert_eq(held(&f, A, GOLD), 0);
	cr_assert_eq(held(&f, B, GOLD), 0);
	cr_assert_eq(f.q.pools[GOLD].by_class[K], 0);
	teardown(&f);
}

Test(share, pool_reloads_move_and_forget_holdings_with_by_class, .timeout = 5)
{
	struct fixture f;
	static const char two_pools[] = HEAD
		"classes:\n"
		"  interactive: { max_queue: 1000, max_wait_ms: 10000, pools: [gold, spot] }\n" POOLS TENANTS;
	setup(&f, two_pools);
	enqueue(&f, A, 0);
	enqueue(&f, B, 0);
	struct queue_item *a = queue_pop_at(&f.q, SPOT, 0);	/* one of them on spot */
	cr_assert_not_null(a);
	take(&f, a, SPOT, 0);
	struct queue_item *b = queue_pop_at(&f.q, GOLD, 0);	/* the other on gold */
	cr_assert_not_null(b);
	take(&f, b, GOLD, 0);
	cr_assert_neq(a->tenant, b->tenant);
	/* spot moves to index 0, gold goes. */
	static const char spot_first[] = HEAD
		"classes:\n"
		"  interactive: { max_queue: 1000, max_wait_ms: 10000, pools: [spot] }\n"
		"pools:\n"
		"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 8 } ] }\n" TENANTS;
	struct conf *next = parse(spot_first);
	size_t from[1] = { SPOT };
	struct queue_pools_next pn;
	cr_assert_eq(queue_pools_prepare(1, &pn), 0);
	struct queue_gone gone = { 0 };
	cr_assert_eq(queue_tenants_reconfigure(&f.tenants, next, 1), 0);
	queue_reconfigure_pools(&f.q, next, from, &pn, &gone);
	conf_destroy(f.conf);
	f.conf = next;
	cr_assert_eq(queue_share_held(a->tenant, K, 0), 1, "the slot of spot, under spot's new index");
	cr_assert_eq(queue_share_held(a->tenant, K, 1), 0);
	cr_assert_eq(queue_share_held(b->tenant, K, 0), 0, "the slot of gold is forgotten with gold");
	cr_assert_eq(queue_share_held_total(b->tenant, K), 0);
	cr_assert_eq(f.q.pools[0].by_class[K], 1);
	give(&f, a, 0, 2);
	cr_assert_eq(queue_share_held_total(a->tenant, K), 0);
	teardown(&f);
}

Test(share, a_tenant_removed_by_a_reload_gives_back_to_its_own_object, .timeout = 5)
{
	struct fixture f;
	setup(&f, fair_yaml);
	struct queue_item *b = enqueue(&f, B, 0);
	cr_assert_eq(queue_pop_at(&f.q, GOLD, 0), b);
	take(&f, b, GOLD, 0);
	/* b is removed; then added again under the same name. */
	static const char without_b[] = HEAD
		"classes:\n"
		"  interactive: { max_queue: 1000, max_wait_ms: 10000, pools: [gold] }\n" POOLS
		"tenants:\n"
		"  a: { keys: [ { sha256: 486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7 } ], "
		"default_class: interactive, max_class: interactive }\n";
	struct conf *c1 = parse(without_b);
	cr_assert_eq(queue_tenants_reconfigure(&f.tenants, c1, 1), 0);
	queue_reconfigure_pools(&f.q, c1, NULL, NULL, &(struct queue_gone){ 0 });
	struct conf *c2 = parse(fair_yaml);
	cr_assert_eq(queue_tenants_reconfigure(&f.tenants, c2, 2), 0);
	queue_reconfigure_pools(&f.q, c2, NULL, NULL, &(struct queue_gone){ 0 });
	conf_destroy(f.conf);
	conf_destroy(c1);
	f.conf = c2;
	cr_assert_neq(tenant(&f, B), b->tenant, "a new object under the old name");
	cr_assert_eq(held(&f, B, GOLD), 0, "the new b holds nothing");
	cr_assert_eq(queue_share_held(b->tenant, K, GOLD), 1, "the retired b still holds its slot");
	/* The retired b is active (in flight): the new tenants share with it. */
	for (int i = 0; i < 6; i++)
		enqueue(&f, A, 3);
	cr_assert_eq(fill(&f, GOLD, 4, 3), 2, "a: its half; the retired b's room stays");
	give(&f, b, GOLD, 4);
	cr_assert_eq(queue_share_held(b->tenant, K, GOLD), 0);
	queue_tenant_put(&b->tenant);	/* its request is over: the retired object goes */
	cr_assert_eq(fill(&f, GOLD, 4, 4), 2, "b's object is gone: a alone takes all");
	teardown(&f);
}

Test(share, a_newcomer_gets_a_share_and_off_never_wakes_the_queue, .timeout = 5)
{
	struct fixture f;
	setup(&f, fair_yaml);
	touch(&f, A, GOLD, 0);
	for (int i = 0; i < 6; i++)
		enqueue(&f, B, 1);
	cr_assert_eq(fill(&f, GOLD, 4, 1), 2, "A's half kept");
	/* c, never seen, may take a slot: the shares are now thirds-ish
	 * (a 4x1/5, b 4x1/5, c 4x3/5), and a still finds room. */
	cr_assert(queue_share_may_take(&f.q, tenant(&f, C), GOLD, K, 2));
	struct queue_item *c1 = enqueue(&f, C, 2);
	cr_assert_eq(queue_pop_at(&f.q, GOLD, 2), c1);
	take(&f, c1, GOLD, 2);
	cr_assert(queue_share_may_take(&f.q, tenant(&f, A), GOLD, K, 3));
	cr_assert_not(queue_share_may_take(&f.q, tenant(&f, B), GOLD, K, 3), "b is over its 4x1/5");
	teardown(&f);

	setup(&f, off_yaml);
	touch(&f, A, GOLD, 0);
	enqueue(&f, B, 1);
	cr_assert_eq(queue_share_next_change(&f.q, 1), UINT64_MAX, "off: nothing is kept, nothing lapses");
	cr_assert_eq(fill(&f, GOLD, 4, 1), 1);
	teardown(&f);
}
