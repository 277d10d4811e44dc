/*
 * test_pool.c - pools, slots and the choice of a backend.
 *
 * Configs are parsed from YAML as operators write them; time is a plain
 * now_ms argument, so passive health is driven by hand instead of sleeping.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include "backends/backend.h"
#include "conf/conf.h"

/*
 * Under ASan, LeakSanitizer's report at exit does not fail a Criterion
 * test (the verdict is sent before the worker exits), so teardown asks for
 * a leak check itself: a connection or pool that is never freed fails the
 * test that leaked it.
 */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define assert_no_leaks() cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (see the report above)")
#else
#define assert_no_leaks() ((void)0)
#endif

/*
 * gold: A (%u slots), B (%u slots); spot: C (1 slot).  The %u are filled
 * in by each test so that a reload can change max_inflight and nothing else.
 */
static const char shape[] =
	"listen: 127.0.0.1:0\n"
	"admin_listen: 127.0.0.1:1\n"
	"pools:\n"
	"  gold:\n"
	"    slice: reserved\n"
	"    backends:\n"
	"      - { address: 127.0.0.1:9001, max_inflight: %u }\n"
	"      - { address: 127.0.0.1:9002, max_inflight: %u }\n"
	"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9003, max_inflight: 1 } ] }\n"
	"classes:\n"
	"  interactive: { pools: [gold, spot] }\n"
	"  standard: { pools: [spot] }\n";

static struct conf *conf_with(unsigned a_slots, unsigned b_slots)
{
	char text[2048];
	snprintf(text, sizeof(text), shape, a_slots, b_slots);
	struct conf *c = NULL;
	struct conf_diag diag = { 0 };
	int rc = conf_parse("test.yaml", text, strlen(text), &c, &diag);
	cr_assert_eq(rc, 0, "%s", diag.count ? diag.msg[0] : "");
	cr_assert_not_null(c);
	return c;
}

struct fixture {
	struct conf *conf;
	struct backend_set set;
	struct backend_pool *gold, *spot;
	struct backend *a, *b, *c;
};

static void setup(struct fixture *f, unsigned a_slots, unsigned b_slots)
{
	f->conf = conf_with(a_slots, b_slots);
	cr_assert_eq(backend_set_init(&f->set, f->conf), 0);
	cr_assert_eq(f->set.npools, 2);
	f->gold = f->set.pools[0];
	f->spot = f->set.pools[1];
	f->a = f->gold->backends[0];
	f->b = f->gold->backends[1];
	f->c = f->spot->backends[0];
}

static void teardown(struct fixture *f)
{
	backend_set_finish(&f->set);
	cr_assert_null(f->set.pools);
	cr_assert_eq(f->set.npools, 0);
	conf_destroy(f->conf);
	assert_no_leaks();
}

/* Pick a backend of p and take a slot on it, as the dispatcher does. */
static struct backend *dispatch(struct backend_pool *p, uint64_t now_ms)
{
	struct backend *b = backend_pool_pick(p, now_ms);
	if (b != NULL)
		backend_acquire(b);
	return b;
}

Test(pool, init_mirrors_the_config, .timeout = 5)
{
	struct fixture f;
	setup(&f, 2, 4);
	cr_assert_str_eq(f.gold->cfg->name, "gold");
	cr_assert_str_eq(f.spot->cfg->name, "spot");
	cr_assert_eq(f.gold->index, 0);
	cr_assert_eq(f.spot->index, 1);
	cr_assert_eq(f.gold->nbackends, 2);
	cr_assert_eq(f.spot->nbackends, 1);
	cr_assert_eq(f.gold->slots, 6, "a pool's slots are the sum of its backends' max_inflight");
	cr_assert_eq(f.spot->slots, 1);
	cr_assert_eq(f.gold->inflight, 0);
	cr_assert_str_eq(f.a->name, "127.0.0.1:9001");
	cr_assert_str_eq(f.b->name, "127.0.0.1:9002");
	cr_assert_str_eq(f.c->name, "127.0.0.1:9003");
	cr_assert_eq(f.a->max_inflight, 2);
	cr_assert_eq(f.b->max_inflight, 4);
	cr_assert_eq(f.a->pool, f.gold);
	cr_assert_eq(f.c->pool, f.spot);
	for (size_t i = 0; i < 2; i++) {
		struct backend *b = f.gold->backends[i];
		cr_assert_eq(b->inflight, 0);
		cr_assert_eq(b->requests, 0);
		cr_assert_null(b->idle);
		cr_assert_eq(b->nidle, 0);
		cr_assert(backend_is_up(b, 0), "a new backend is up");
	}
	teardown(&f);
}

Test(pool, finish_twice_is_harmless, .timeout = 5)
{
	struct fixture f;
	setup(&f, 1, 1);
	backend_set_finish(&f.set);
	teardown(&f);	/* finishes again */
}

Test(pool, pick_is_least_loaded_relative_to_slots, .timeout = 5)
{
	struct fixture f;
	setup(&f, 2, 4);
	/* Fill the pool one dispatch at a time; at every step the chosen
	 * backend must carry no more load, as a share of its slots, than any
	 * other backend that still has a free one. */
	for (unsigned n = 0; n < 6; n++) {
		struct backend *got = backend_pool_pick(f.gold, 0);
		cr_assert_not_null(got, "dispatch %u: the pool has free slots", n);
		for (size_t i = 0; i < f.gold->nbackends; i++) {
			struct backend *o = f.gold->backends[i];
			if (o->inflight >= o->max_inflight)
				continue;
			cr_assert_leq((uint64_t)got->inflight * o->max_inflight,
				      (uint64_t)o->inflight * got->max_inflight,
				      "dispatch %u: picked %s at %u/%u over %s at %u/%u", n,
				      got->name, got->inflight, got->max_inflight,
				      o->name, o->inflight, o->max_inflight);
		}
		backend_acquire(got);
		/* Halfway, the backend with twice the slots holds twice the requests. */
		if (n == 2) {
			cr_assert_eq(f.a->inflight, 1);
			cr_assert_eq(f.b->inflight, 2);
		}
	}
	cr_assert_eq(f.a->inflight, 2);
	cr_assert_eq(f.b->inflight, 4);
	cr_assert_eq(f.gold->inflight, f.gold->slots);
	cr_assert_null(backend_pool_pick(f.gold, 0), "a full pool has no backend to offer");
	cr_assert_eq(f.spot->inflight, 0, "pools count their own slots");
	for (unsigned n = 0; n < 6; n++)
		backend_release(n < 2 ? f.a : f.b);
	teardown(&f);
}

Test(pool, pick_never_returns_a_full_backend, .timeout = 5)
{
	struct fixture f;
	setup(&f, 1, 4);
	backend_acquire(f.a);	/* A is full at 1/1; B is idle at 0/4 */
	backend_mark_failed(f.b, 0);
	cr_assert_null(backend_pool_pick(f.gold, 0),
		       "the pool has free slots, but only on a down backend: a full one is no fallback");
	backend_mark_ok(f.b);
	for (unsigned n = 0; n < 4; n++)
		cr_assert_eq(dispatch(f.gold, 0), f.b, "dispatch %u must avoid the full backend", n);
	cr_assert_null(backend_pool_pick(f.gold, 0));
	backend_release(f.b);
	cr_assert_eq(backend_pool_pick(f.gold, 0), f.b, "the only free slot is on B");
	backend_release(f.a);
	cr_assert_eq(backend_pool_pick(f.gold, 0), f.a, "A at 0/1 is less loaded than B at 3/4");
	for (unsigned n = 0; n < 3; n++)
		backend_release(f.b);
	teardown(&f);
}

Test(pool, pick_skips_a_backend_marked_down, .timeout = 5)
{
	struct fixture f;
	setup(&f, 4, 4);
	backend_mark_failed(f.a, 10000);	/* down until 11000 */
	cr_assert_not(backend_is_up(f.a, 10000));
	for (unsigned n = 0; n < 4; n++)
		cr_assert_eq(dispatch(f.gold, 10000 + 100 * n), f.b,
			     "dispatch %u: A is down, idle or not", n);
	cr_assert_null(backend_pool_pick(f.gold, 10999), "B is full and A is still down");
	cr_assert_eq(backend_pool_pick(f.gold, 11000), f.a, "the hold is over at down_until");
	for (unsigned n = 0; n < 4; n++)
		backend_release(f.b);
	backend_mark_failed(f.b, 10500);
	cr_assert_null(backend_pool_pick(f.gold, 10500), "every backend down: none to offer despite free slots");
	cr_assert_eq(f.gold->inflight, 0);
	teardown(&f);
}

Test(pool, acquire_and_release_count_per_backend_and_pool, .timeout = 5)
{
	struct fixture f;
	setup(&f, 2, 4);
	backend_acquire(f.a);
	backend_acquire(f.b);
	backend_acquire(f.b);
	backend_acquire(f.c);
	cr_assert_eq(f.a->inflight, 1);
	cr_assert_eq(f.b->inflight, 2);
	cr_assert_eq(f.gold->inflight, 3);
	cr_assert_eq(f.spot->inflight, 1);
	cr_assert_null(backend_pool_pick(f.spot, 0), "spot's one slot is held");
	backend_release(f.b);
	backend_release(f.c);
	cr_assert_eq(f.b->inflight, 1);
	cr_assert_eq(f.gold->inflight, 2);
	cr_assert_eq(f.spot->inflight, 0);
	cr_assert_eq(backend_pool_pick(f.spot, 0), f.c, "a released slot can be taken again");
	cr_assert_eq(f.a->requests, 1);
	cr_assert_eq(f.b->requests, 2, "requests count every acquire and survive a release");
	cr_assert_eq(f.c->requests, 1);
	cr_assert_eq(f.gold->slots, 6, "slots do not move with load");
	backend_release(f.a);
	backend_release(f.b);
	cr_assert_eq(f.gold->inflight, 0);
	teardown(&f);
}

Test(pool, mark_failed_holds_down_1s_doubling_to_30s, .timeout = 5)
{
	struct fixture f;
	setup(&f, 1, 1);
	const uint64_t holds[] = { 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000 };
	uint64_t now = 1000000;
	for (size_t i = 0; i < sizeof(holds) / sizeof(holds[0]); i++) {
		backend_mark_failed(f.a, now);
		cr_assert_eq(f.a->down_until_ms, now + holds[i], "failure %zu: held %llu ms, want %llu",
			     i + 1, (unsigned long long)(f.a->down_until_ms - now), (unsigned long long)holds[i]);
		cr_assert_not(backend_is_up(f.a, now + holds[i] - 1));
		cr_assert(backend_is_up(f.a, now + holds[i]));
		cr_assert_eq(f.a->connect_failures, i + 1);
		now += holds[i];	/* the next connect attempt comes when the hold ends */
	}
	cr_assert(backend_is_up(f.b, 0), "one backend's failures do not touch another");

	backend_mark_failed(f.a, now);
	cr_assert_not(backend_is_up(f.a, now));
	uint64_t until = f.a->down_until_ms;
	for (int i = 0; i < 15; i++)
		backend_mark_failed(f.a, now + 1);
	cr_assert_eq(f.a->down_until_ms, until, "connects that fail together while it is down are one failure");
	cr_assert_eq(f.a->connect_failures, 24, "each is still counted");
	backend_mark_ok(f.a);
	cr_assert(backend_is_up(f.a, now), "a successful connect marks it up at once");
	cr_assert_eq(backend_pool_pick(f.gold, now), f.a);
	backend_mark_failed(f.a, now);
	cr_assert_eq(f.a->down_until_ms, now + 1000, "after a success the backoff starts again at 1 s");
	cr_assert_eq(f.a->connect_failures, 25, "the metric keeps counting across recoveries");
	teardown(&f);
}

Test(pool, has_up_counts_busy_backends_but_not_down_ones, .timeout = 5)
{
	struct fixture f;
	setup(&f, 1, 1);
	cr_assert(backend_pool_has_up(f.gold, 0));
	backend_acquire(f.a);
	backend_acquire(f.b);
	cr_assert_null(backend_pool_pick(f.gold, 0));
	cr_assert(backend_pool_has_up(f.gold, 0), "a full pool is still up");
	backend_release(f.a);
	backend_release(f.b);

	backend_mark_failed(f.a, 5000);		/* down until 6000 */
	cr_assert(backend_pool_has_up(f.gold, 5000), "B is still up");
	backend_mark_failed(f.b, 5500);		/* down until 6500 */
	cr_assert_not(backend_pool_has_up(f.gold, 5500));
	cr_assert_not(backend_pool_has_up(f.gold, 5999));
	cr_assert(backend_pool_has_up(f.gold, 6000), "A's hold ended");
	cr_assert(backend_pool_has_up(f.spot, 5500), "pools are independent");
	backend_mark_ok(f.b);
	cr_assert(backend_pool_has_up(f.gold, 5500));
	teardown(&f);
}

Test(pool, reconfigure_shrink_below_inflight_takes_none_until_released, .timeout = 5)
{
	struct fixture f;
	setup(&f, 4, 1);
	for (unsigned n = 0; n < 4; n++)
		backend_acquire(f.a);
	backend_acquire(f.b);		/* gold full: A 4/4, B 1/1 */

	struct conf *next = conf_with(2, 1);
	backend_set_reconfigure(&f.set, next);
	backend_set_slots(f.a, 2);
	/* The old snapshot may go as soon as the set points at the new one. */
	conf_destroy(f.conf);
	f.conf = next;

	cr_assert_eq(f.a->max_inflight, 2);
	cr_assert_eq(f.a->inflight, 4, "requests in flight keep their slots");
	cr_assert_eq(f.gold->slots, 3);
	cr_assert_eq(f.gold->inflight, 5);
	cr_assert_str_eq(f.a->name, "127.0.0.1:9001");
	cr_assert_str_eq(f.gold->cfg->name, "gold");
	cr_assert_eq(f.spot->slots, 1);

	cr_assert_null(backend_pool_pick(f.gold, 0));
	cr_assert_not(backend_frees_on_release(f.a, 0), "a slot A gives back at 4/2 is no slot to take");
	cr_assert(backend_frees_on_release(f.b, 0));
	backend_release(f.a);		/* A at 3/2 */
	cr_assert_null(backend_pool_pick(f.gold, 0), "A over its new limit takes no more");
	cr_assert_not(backend_frees_on_release(f.a, 0));
	backend_release(f.a);		/* A at 2/2: full, not over */
	cr_assert_null(backend_pool_pick(f.gold, 0), "A takes no more until below its new limit");
	cr_assert(backend_frees_on_release(f.a, 0), "at 2/2, the next slot A gives back can be taken");
	backend_mark_failed(f.a, 0);
	cr_assert_not(backend_frees_on_release(f.a, 0), "not while A is down");
	backend_mark_ok(f.a);
	backend_release(f.a);		/* A at 1/2 */
	cr_assert_eq(backend_pool_pick(f.gold, 0), f.a, "enough released: A takes work again");

	/* Growing works too. */
	struct conf *grown = conf_with(3, 2);
	backend_set_reconfigure(&f.set, grown);
	backend_set_slots(f.a, 3);
	backend_set_slots(f.b, 2);
	conf_destroy(f.conf);
	f.conf = grown;
	cr_assert_eq(f.gold->slots, 5);
	cr_assert_eq(backend_pool_pick(f.gold, 0), f.a, "A at 1/3 is less loaded than B at 1/2");
	backend_release(f.a);
	backend_release(f.b);
	cr_assert_eq(f.gold->inflight, 0);
	teardown(&f);
}

/*
 * One backend held over its (shrunk) limit must not hide the free slots of
 * the others: A holds 4 under a new limit of 1 while B has 1 free slot, so
 * the pool's totals (inflight 4, slots 2) say "full" but B can take work.
 */
Test(pool, reconfigure_shrink_of_one_backend_leaves_others_usable, .timeout = 5)
{
	struct fixture f;
	setup(&f, 4, 1);
	for (unsigned n = 0; n < 4; n++)
		backend_acquire(f.a);
	struct conf *next = conf_with(1, 1);
	backend_set_reconfigure(&f.set, next);
	conf_destroy(f.conf);
	f.conf = next;
	cr_expect_eq(backend_pool_pick(f.gold, 0), f.b, "B has a free slot and is up");
	for (unsigned n = 0; n < 4; n++)
		backend_release(f.a);
	teardown(&f);
}

static struct sockaddr_storage addr4(const char *ip, unsigned port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	cr_assert_eq(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	return ss;
}

Test(pool, a_member_joins_and_one_retires_while_its_requests_finish, .timeout = 5)
{
	struct fixture f;
	setup(&f, 1, 1);
	struct sockaddr_storage d = addr4("127.0.0.2", 9001);
	struct backend *nb = NULL;

	cr_assert_eq(backend_pool_find(f.gold, (struct sockaddr *)&d), NULL);
	cr_assert_eq(backend_pool_add(f.gold, (struct sockaddr *)&d, 2, 0, 0, &nb), 0);
	cr_assert_str_eq(nb->name, "127.0.0.2:9001");
	cr_assert_eq(backend_pool_find(f.gold, (struct sockaddr *)&d), nb);
	cr_assert_eq(f.gold->nbackends, 3);
	cr_assert_eq(f.gold->slots, 4);
	cr_assert_eq(dispatch(f.gold, 0), f.a);
	cr_assert_eq(dispatch(f.gold, 0), f.b);
	cr_assert_eq(dispatch(f.gold, 0), nb, "the newcomer takes work at once");

	/* A retires with a request in flight: never picked again, its slot no
	 * longer counted; the request finishes on it (ASan: not freed yet). */
	backend_pool_retire(f.a);
	cr_assert(f.a->retired);
	cr_assert_eq(f.gold->nbackends, 2);
	cr_assert_eq(f.gold->slots, 3);
	cr_assert_eq(f.gold->inflight, 3, "its request still holds a slot of the pool");
	cr_assert_eq(dispatch(f.gold, 0), nb);
	cr_assert_null(dispatch(f.gold, 0), "a retired backend is never picked");
	backend_release(f.a);		/* the last reference: freed here */
	cr_assert_eq(f.gold->inflight, 3);
	teardown(&f);
}

Test(pool, slow_start_ramps_a_newcomers_slots, .timeout = 5)
{
	struct fixture f;
	setup(&f, 1, 1);
	struct sockaddr_storage d = addr4("127.0.0.2", 9001);
	struct backend *nb = NULL;
	backend_acquire(f.a);
	backend_acquire(f.b);
	cr_assert_eq(backend_pool_add(f.gold, (struct sockaddr *)&d, 10, 1000, 10000, &nb), 0);
	cr_assert_eq(dispatch(f.gold, 1000), nb, "one slot at once");
	cr_assert_null(dispatch(f.gold, 1000), "and only one, just after joining");
	cr_assert_eq(dispatch(f.gold, 6000), nb, "half way: five slots");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(dispatch(f.gold, 6000), nb);
	cr_assert_null(dispatch(f.gold, 6000));
	for (int i = 0; i < 5; i++)
		cr_assert_eq(dispatch(f.gold, 11000), nb, "all ten after slow_start_ms");
	cr_assert_null(dispatch(f.gold, 11000));
	teardown(&f);
}

Test(pool, share_is_the_total_split_evenly_rounded_down, .timeout = 5)
{
	cr_assert_eq(backend_slots_share(4, 1), 4);
	cr_assert_eq(backend_slots_share(4, 0), 4, "no count is one replica");
	cr_assert_eq(backend_slots_share(4, 2), 2);
	cr_assert_eq(backend_slots_share(4, 3), 1, "rounded down: 3 replicas never send 4 slots more than 4");
	cr_assert_eq(backend_slots_share(10, 3), 3);
	cr_assert_eq(backend_slots_share(10, 4), 2);
	cr_assert_eq(backend_slots_share(1, 1), 1);
	cr_assert_eq(backend_slots_share(3, 5), 1, "more replicas than slots: one each, never none");
	cr_assert_eq(backend_slots_share(1, 1024), 1);
	/* Whatever N <= total, the replicas together stay within the total. */
	for (unsigned total = 1; total <= 64; total++)
		for (unsigned n = 1; n <= total; n++)
			cr_assert_leq(backend_slots_share(total, n) * n, total, "%u over %u", total, n);
}

/* A config whose backends are split over `replicas`. */
static struct conf *conf_replicas(unsigned a_slots, unsigned b_slots, unsigned replicas)
{
	char text[2048];
	int n = snprintf(text, sizeof(text), shape, a_slots, b_slots);
	snprintf(text + n, sizeof(text) - (size_t)n, "replicas: { count: %u }\n", replicas);
	struct conf *c = NULL;
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("test.yaml", text, strlen(text), &c, &diag), 0, "%s", diag.count ? diag.msg[0] : "");
	return c;
}

Test(pool, init_splits_each_backend_over_the_replicas, .timeout = 5)
{
	struct fixture f = { .conf = conf_replicas(4, 9, 2) };
	cr_assert_eq(backend_set_init(&f.set, f.conf), 0);
	f.gold = f.set.pools[0];
	f.spot = f.set.pools[1];
	struct backend *a = f.gold->backends[0], *b = f.gold->backends[1], *c = f.spot->backends[0];
	cr_assert_eq(f.set.replicas, 2);
	cr_assert_eq(a->total, 4);
	cr_assert_eq(a->max_inflight, 2);
	cr_assert_eq(b->total, 9);
	cr_assert_eq(b->max_inflight, 4);
	cr_assert_eq(c->max_inflight, 1, "one slot over two replicas: still one");
	cr_assert_eq(f.gold->slots, 6, "the pool's slots are the shares'");
	for (int i = 0; i < 6; i++)
		cr_assert_not_null(dispatch(f.gold, 0));
	cr_assert_null(dispatch(f.gold, 0), "a replica never takes more than its share");
	cr_assert_eq(a->inflight, 2);
	cr_assert_eq(b->inflight, 4);
	for (int i = 0; i < 2; i++)
		backend_release(a);
	for (int i = 0; i < 4; i++)
		backend_release(b);
	teardown(&f);
}

Test(pool, a_new_count_changes_every_share_at_once, .timeout = 5)
{
	struct fixture f;
	setup(&f, 4, 12);
	cr_assert_eq(f.set.replicas, 1);
	cr_assert_eq(f.gold->slots, 16);
	for (int i = 0; i < 4; i++)
		backend_acquire(f.a);
	backend_set_replicas(&f.set, 3);
	cr_assert_eq(f.a->max_inflight, 1);
	cr_assert_eq(f.b->max_inflight, 4);
	cr_assert_eq(f.c->max_inflight, 1);
	cr_assert_eq(f.gold->slots, 5);
	cr_assert_eq(f.spot->slots, 1);
	cr_assert_eq(f.a->total, 4, "the total stays as configured");
	for (int i = 0; i < 4; i++)
		cr_assert_eq(dispatch(f.gold, 0), f.b, "A holds more than its new share: none for it");
	cr_assert_null(dispatch(f.gold, 0));
	for (int i = 0; i < 3; i++)
		backend_release(f.a);
	cr_assert_null(dispatch(f.gold, 0), "A is at its share of one");
	backend_release(f.a);
	cr_assert_eq(dispatch(f.gold, 0), f.a, "under its share again");

	/* A reload's new total is split too; a member that joins takes its share. */
	backend_set_slots(f.b, 6);
	cr_assert_eq(f.b->max_inflight, 2);
	cr_assert_eq(f.gold->slots, 3);
	struct sockaddr_storage d = addr4("127.0.0.2", 9001);
	struct backend *nb = NULL;
	cr_assert_eq(backend_pool_add(f.gold, (struct sockaddr *)&d, 7, 0, 0, &nb), 0);
	cr_assert_eq(nb->max_inflight, 2);
	cr_assert_eq(f.gold->slots, 5);

	backend_set_replicas(&f.set, 0);
	cr_assert_eq(f.set.replicas, 1, "never fewer than one replica");
	cr_assert_eq(f.b->max_inflight, 6);
	cr_assert_eq(nb->max_inflight, 7);
	cr_assert_eq(f.gold->slots, 17);
	backend_release(f.a);
	for (int i = 0; i < 4; i++)
		backend_release(f.b);
	teardown(&f);
}

Test(pool, slow_start_ramps_the_share_not_the_total, .timeout = 5)
{
	struct fixture f;
	setup(&f, 1, 1);
	backend_set_replicas(&f.set, 2);
	struct sockaddr_storage d = addr4("127.0.0.2", 9001);
	struct backend *nb = NULL;
	backend_acquire(f.a);
	backend_acquire(f.b);
	cr_assert_eq(backend_pool_add(f.gold, (struct sockaddr *)&d, 20, 1000, 10000, &nb), 0);
	cr_assert_eq(nb->max_inflight, 10);
	cr_assert_eq(dispatch(f.gold, 1000), nb, "one slot at once");
	cr_assert_null(dispatch(f.gold, 1000));
	cr_assert_eq(dispatch(f.gold, 6000), nb, "half way: half of the share of ten");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(dispatch(f.gold, 6000), nb);
	cr_assert_null(dispatch(f.gold, 6000), "five, not ten (half of the total)");
	for (int i = 0; i < 5; i++)
		cr_assert_eq(dispatch(f.gold, 11000), nb);
	cr_assert_null(dispatch(f.gold, 11000), "the share of ten, not the total of twenty");
	backend_set_replicas(&f.set, 40);
	cr_assert_eq(nb->max_inflight, 1, "more replicas than slots: one each");
	teardown(&f);
}

static struct conf *parse(const char *text)
{
	struct conf *c = NULL;
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("test.yaml", text, strlen(text), &c, &diag), 0, "%s", diag.count ? diag.msg[0] : "");
	return c;
}

/* spot goes first, gold is removed, fresh joins (empty: gateway/fleet.c
 * gives it its members). */
static const char without_gold[] =
	"listen: 127.0.0.1:0\n"
	"admin_listen: 127.0.0.1:1\n"
	"pools:\n"
	"  spot: { slice: reserved, backends: [ { address: 127.0.0.1:9003, max_inflight: 1 } ] }\n"
	"  fresh: { slice: elastic, backends: [ { address: 127.0.0.1:9004, max_inflight: 2 } ] }\n"
	"classes:\n"
	"  interactive: { pools: [fresh, spot] }\n"
	"  standard: { pools: [fresh] }\n";

Test(pool, a_reload_moves_kept_pools_and_retires_removed_ones_while_slots_are_held, .timeout = 5)
{
	struct fixture f;
	setup(&f, 2, 2);
	struct conf *next = parse(without_gold);
	size_t from[CONF_POOLS_MAX];
	conf_pool_map(f.conf, next, from);
	cr_assert_eq(from[0], 1, "spot was pool 1");
	cr_assert_eq(from[1], CONF_POOL_NEW);

	/* Requests in flight: two on gold (A), one on spot; a record of a
	 * finished gold request still names its pool. */
	cr_assert_eq(dispatch(f.gold, 0), f.a);
	cr_assert_eq(dispatch(f.gold, 0), f.b);
	backend_acquire(f.a);
	cr_assert_eq(dispatch(f.spot, 0), f.c);
	struct backend_pool *record = backend_pool_hold(f.gold);

	struct backend_set_next prep;
	cr_assert_eq(backend_set_prepare(&f.set, next, from, &prep), 0);
	cr_assert_eq(f.set.pools[0], f.gold, "prepare changes nothing");
	backend_set_commit(&f.set, next, &prep);
	cr_assert_eq(f.set.npools, 2);
	cr_assert_eq(f.set.pools[0], f.spot, "a kept pool is the same object, under its new index");
	cr_assert_eq(f.spot->index, 0);
	cr_assert_eq(f.spot->cfg, &next->pools[0]);
	cr_assert_eq(f.spot->inflight, 1, "and keeps its counts");
	cr_assert_eq(f.spot->nbackends, 1);
	struct backend_pool *fresh = f.set.pools[1];
	cr_assert_str_eq(fresh->cfg->name, "fresh");
	cr_assert_eq(fresh->nbackends, 0);
	cr_assert_eq(fresh->index, 1);

	/* gold is retired: out of the set, its members too, its config its own. */
	cr_assert(f.gold->retired);
	cr_assert_eq(f.gold->index, BACKEND_POOL_RETIRED);
	cr_assert_eq(f.gold->nbackends, 0);
	cr_assert(f.a->retired && f.b->retired);
	cr_assert_eq(f.set.retired, f.gold);
	conf_destroy(f.conf);	/* the snapshot that held gold's config */
	f.conf = next;
	cr_assert_str_eq(f.gold->cfg->name, "gold", "its requests still read its name");
	cr_assert_eq(f.gold->cfg->slice, CONF_SLICE_RESERVED);
	cr_assert_eq(f.gold->inflight, 3);

	/* Slots given back one by one: the pool lives until the last one and
	 * the record let go of it. */
	backend_release(f.a);
	backend_release(f.b);	/* B is freed */
	cr_assert_eq(f.set.retired, f.gold);
	cr_assert_eq(f.gold->inflight, 1);
	backend_release(f.a);	/* A is freed */
	cr_assert_eq(f.set.retired, f.gold, "the record still holds it");
	cr_assert_str_eq(record->cfg->name, "gold");
	backend_pool_put(&record);
	cr_assert_null(record);
	cr_assert_null(f.set.retired, "freed with its last reference");

	backend_release(f.c);
	teardown(&f);
}

Test(pool, a_removed_pool_with_nothing_in_flight_goes_at_once, .timeout = 5)
{
	struct fixture f;
	setup(&f, 1, 1);
	struct conf *next = parse(without_gold);
	size_t from[CONF_POOLS_MAX];
	conf_pool_map(f.conf, next, from);
	struct backend_set_next prep;
	cr_assert_eq(backend_set_prepare(&f.set, next, from, &prep), 0);
	backend_set_commit(&f.set, next, &prep);
	cr_assert_null(f.set.retired);
	conf_destroy(f.conf);
	f.conf = next;
	teardown(&f);
}

Test(pool, a_prepared_reload_that_is_discarded_changes_nothing, .timeout = 5)
{
	struct fixture f;
	setup(&f, 1, 1);
	struct conf *next = parse(without_gold);
	size_t from[CONF_POOLS_MAX];
	conf_pool_map(f.conf, next, from);
	struct backend_set_next prep;
	cr_assert_eq(backend_set_prepare(&f.set, next, from, &prep), 0);
	backend_set_discard(&prep);
	cr_assert_eq(f.set.pools[0], f.gold);
	cr_assert_not(f.gold->retired);
	cr_assert_eq(f.gold->nbackends, 2);
	conf_destroy(next);
	teardown(&f);
}
