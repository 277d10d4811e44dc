/*
 * test_health.c - the verdict of active health checks and outlier ejection.
 *
 * Pools come from YAML as operators write them; time is a plain now_ms
 * argument driven by hand, so ejections of seconds or minutes take no time.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/health.h"
#include "backends/outlier.h"
#include "conf/conf.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define assert_no_leaks() cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (see the report above)")
#else
#define assert_no_leaks() ((void)0)
#endif

/* Pool `gpu` of NB backends (9001...) with the health and outlier lines
 * given; pool `bare` of one backend with neither. */
struct fixture {
	struct conf *conf;
	struct backend_set set;
	struct backend_pool *gpu, *bare;
	struct backend *b[4];
};

static void setup(struct fixture *f, unsigned nb, const char *sections)
{
	char text[4096], list[512] = "";
	size_t n = 0;
	for (unsigned i = 0; i < nb; i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "      - { address: 127.0.0.1:%u, max_inflight: 4 }\n",
				      9001 + i);
	snprintf(text, sizeof(text),
		 "listen: 127.0.0.1:0\n"
		 "admin_listen: 127.0.0.1:1\n"
		 "classes:\n"
		 "  standard: { pools: [gpu, bare] }\n"
		 "pools:\n"
		 "  gpu:\n"
		 "    slice: elastic\n"
		 "%s"
		 "    backends:\n"
		 "%s"
		 "  bare: { slice: elastic, backends: [ { address: 127.0.0.1:9100, max_inflight: 1 } ] }\n",
		 sections, list);
	struct conf_diag diag = { 0 };
	f->conf = NULL;
	int rc = conf_parse("t.yaml", text, strlen(text), &f->conf, &diag);
	cr_assert_eq(rc, 0, "%s", diag.count ? diag.msg[0] : "");
	cr_assert_eq(backend_set_init(&f->set, f->conf), 0);
	f->gpu = f->set.pools[0];
	f->bare = f->set.pools[1];
	for (unsigned i = 0; i < nb; i++)
		f->b[i] = f->gpu->backends[i];
}

static void teardown(struct fixture *f)
{
	backend_set_finish(&f->set);
	conf_destroy(f->conf);
	assert_no_leaks();
}

#define HEALTH "    health: { path: /healthz, interval_ms: 2s, timeout_ms: 1s, unhealthy_after: 3, healthy_after: 2 }\n"

/* ---- active health checks ------------------------------------------------ */

Test(health, a_backend_starts_up_and_unchecked, .timeout = 5)
{
	struct fixture f;
	setup(&f, 2, HEALTH);
	cr_assert(f.gpu->cfg->health.enabled);
	cr_assert_str_eq(f.gpu->cfg->health.path, "/healthz");
	cr_assert_not(f.bare->cfg->health.enabled);
	cr_assert_not(f.b[0]->health.down);
	cr_assert_eq(f.b[0]->health.last_result, -1, "no check has run yet");
	cr_assert(backend_is_up(f.b[0], 0));
	cr_assert_eq(backend_pool_pick(f.gpu, 0), f.b[0]);
	teardown(&f);
}

Test(health, unhealthy_after_consecutive_failures_takes_it_out, .timeout = 5)
{
	struct fixture f;
	setup(&f, 2, HEALTH);
	const struct conf_health *h = &f.gpu->cfg->health;
	struct backend *a = f.b[0];
	uint64_t t = 1000;
	cr_assert_eq(backend_health_record(a, h, BACKEND_CHECK_FAILED, 503, t), BACKEND_HEALTH_SAME);
	cr_assert_eq(backend_health_record(a, h, BACKEND_CHECK_TIMEOUT, 0, t += 2000), BACKEND_HEALTH_SAME);
	cr_assert(backend_is_up(a, t), "two failures of three: still in");
	/* A pass in between starts the count over. */
	cr_assert_eq(backend_health_record(a, h, BACKEND_CHECK_OK, 200, t += 2000), BACKEND_HEALTH_SAME);
	cr_assert_eq(backend_health_record(a, h, BACKEND_CHECK_REFUSED, 0, t += 2000), BACKEND_HEALTH_SAME);
	cr_assert_eq(backend_health_record(a, h, BACKEND_CHECK_FAILED, 500, t += 2000), BACKEND_HEALTH_SAME);
	cr_assert(backend_is_up(a, t));
	cr_assert_eq(backend_health_record(a, h, BACKEND_CHECK_FAILED, 503, t += 2000), BACKEND_HEALTH_WENT_DOWN);
	cr_assert(a->health.down);
	cr_assert_not(backend_is_up(a, t));
	cr_assert_not(backend_is_up(a, t + 3600 * 1000), "a health verdict does not expire by the clock");
	cr_assert_eq(backend_pool_pick(f.gpu, t), f.b[1], "its sibling takes the traffic");
	cr_assert(backend_pool_has_up(f.gpu, t));
	/* More failures change nothing and do not log again. */
	cr_assert_eq(backend_health_record(a, h, BACKEND_CHECK_FAILED, 503, t += 2000), BACKEND_HEALTH_SAME);
	cr_assert_eq(a->health.last_result, BACKEND_CHECK_FAILED);
	cr_assert_eq(a->health.last_status, 503);
	cr_assert_eq(a->health.last_ms, t);
	cr_assert_eq(a->health.checks[BACKEND_CHECK_OK], 1);
	cr_assert_eq(a->health.checks[BACKEND_CHECK_FAILED], 4);
	cr_assert_eq(a->health.checks[BACKEND_CHECK_TIMEOUT], 1);
	cr_assert_eq(a->health.checks[BACKEND_CHECK_REFUSED], 1);
	teardown(&f);
}

Test(health, healthy_after_consecutive_passes_puts_it_back, .timeout = 5)
{
	struct fixture f;
	setup(&f, 1, HEALTH);
	const struct conf_health *h = &f.gpu->cfg->health;
	struct backend *a = f.b[0];
	uint64_t t = 0;
	for (int i = 0; i < 3; i++)
		backend_health_record(a, h, BACKEND_CHECK_TIMEOUT, 0, t += 2000);
	cr_assert(a->health.down);
	cr_assert_not(backend_pool_has_up(f.gpu, t), "its only backend is out: the pool has none up");
	cr_assert_null(backend_pool_pick(f.gpu, t));
	cr_assert_eq(backend_health_record(a, h, BACKEND_CHECK_OK, 200, t += 2000), BACKEND_HEALTH_SAME);
	/* A failure between passes starts the count over. */
	cr_assert_eq(backend_health_record(a, h, BACKEND_CHECK_FAILED, 500, t += 2000), BACKEND_HEALTH_SAME);
	cr_assert_eq(backend_health_record(a, h, BACKEND_CHECK_OK, 204, t += 2000), BACKEND_HEALTH_SAME);
	cr_assert(a->health.down);
	cr_assert_eq(backend_health_record(a, h, BACKEND_CHECK_OK, 200, t += 2000), BACKEND_HEALTH_WENT_UP);
	cr_assert(backend_is_up(a, t));
	cr_assert_eq(backend_pool_pick(f.gpu, t), a);
	cr_assert_eq(backend_health_record(a, h, BACKEND_CHECK_OK, 200, t += 2000), BACKEND_HEALTH_SAME);
	teardown(&f);
}

Test(health, reset_forgets_the_verdict_but_not_the_counters, .timeout = 5)
{
	struct fixture f;
	setup(&f, 1, HEALTH);
	struct backend *a = f.b[0];
	for (int i = 0; i < 3; i++)
		backend_health_record(a, &f.gpu->cfg->health, BACKEND_CHECK_FAILED, 503, 10);
	cr_assert(a->health.down);
	backend_health_reset(a);
	cr_assert_not(a->health.down);
	cr_assert(backend_is_up(a, 10));
	cr_assert_eq(a->health.last_result, -1);
	cr_assert_eq(a->health.checks[BACKEND_CHECK_FAILED], 3, "metric counters stay monotonic");
	teardown(&f);
}

Test(health, result_names_are_a_bounded_set, .timeout = 5)
{
	cr_assert_str_eq(backend_check_result_name(BACKEND_CHECK_OK), "ok");
	cr_assert_str_eq(backend_check_result_name(BACKEND_CHECK_FAILED), "failed");
	cr_assert_str_eq(backend_check_result_name(BACKEND_CHECK_TIMEOUT), "timeout");
	cr_assert_str_eq(backend_check_result_name(BACKEND_CHECK_REFUSED), "refused");
	cr_assert_str_eq(backend_check_result_name((enum backend_check_result)42), "failed");
}

/* A watcher told of the retirement lets go; it is told once. */
static int retired_calls;
static struct backend *retired_seen;
static void on_retired(struct backend *b, void *arg)
{
	cr_assert_eq(arg, &retired_calls);
	retired_calls++;
	retired_seen = b;
}

Test(health, retiring_a_backend_tells_its_watcher_once, .timeout = 5)
{
	struct fixture f;
	setup(&f, 2, HEALTH);
	struct backend *a = f.b[0];
	retired_calls = 0;
	a->retire_cb = on_retired;
	a->retire_arg = &retired_calls;
	backend_acquire(a);	/* a request in flight keeps it allocated */
	backend_pool_retire(a);
	cr_assert_eq(retired_calls, 1);
	cr_assert_eq(retired_seen, a);
	cr_assert_null(a->retire_cb, "the watcher is forgotten");
	backend_pool_retire(a);
	cr_assert_eq(retired_calls, 1);
	backend_release(a);	/* frees it */
	teardown(&f);
}

/* ---- outlier ejection ---------------------------------------------------- */

#define OUTLIER(share) \
	"    outlier: { consecutive_failures: 3, eject_ms: 10s, max_eject_ms: 35s, max_ejected_share: " share " }\n"

static void fail_n(struct backend *b, int n, uint64_t now)
{
	for (int i = 0; i < n; i++)
		backend_outlier_report(b, false, now);
}

Test(outlier, consecutive_failures_eject_and_a_success_resets, .timeout = 5)
{
	struct fixture f;
	setup(&f, 2, OUTLIER("0.5"));
	struct backend *a = f.b[0];
	uint64_t t = 1000;
	fail_n(a, 2, t);
	cr_assert_eq(backend_outlier_report(a, true, t), BACKEND_OUTLIER_SAME);
	fail_n(a, 2, t);
	cr_assert(backend_is_up(a, t), "a success in between: not three in a row");
	cr_assert_eq(backend_outlier_report(a, false, t), BACKEND_OUTLIER_EJECTED);
	cr_assert_not(backend_is_up(a, t));
	cr_assert_eq(a->outlier.until_ms, t + 10000);
	cr_assert_eq(a->outlier.ejections, 1);
	cr_assert_eq(backend_pool_ejected(f.gpu, t), 1);
	cr_assert_eq(backend_pool_pick(f.gpu, t), f.b[1], "its sibling takes the traffic");
	/* Requests in flight when it went out fail too: the same news. */
	fail_n(a, 10, t + 5000);
	cr_assert_eq(a->outlier.ejections, 1);
	cr_assert_eq(a->outlier.until_ms, t + 10000);
	cr_assert_not(backend_outlier_returned(a, t + 9999));
	cr_assert(backend_is_up(a, t + 10000), "back when eject_ms is over");
	cr_assert(backend_outlier_returned(a, t + 10000));
	cr_assert_not(backend_outlier_returned(a, t + 10001), "the return is told once");
	teardown(&f);
}

Test(outlier, ejections_double_up_to_max_and_start_over_after_a_quiet_spell, .timeout = 5)
{
	struct fixture f;
	setup(&f, 2, OUTLIER("0.5"));
	struct backend *a = f.b[0];
	uint64_t t = 0, want[] = { 10000, 20000, 35000, 35000 };
	for (size_t i = 0; i < 4; i++) {
		fail_n(a, 2, t);
		cr_assert_eq(backend_outlier_report(a, false, t), BACKEND_OUTLIER_EJECTED);
		cr_assert_eq(a->outlier.until_ms - t, want[i], "ejection %zu lasts %llu ms, want %llu", i + 1,
			     (unsigned long long)(a->outlier.until_ms - t), (unsigned long long)want[i]);
		t = a->outlier.until_ms + 1;	/* fails again as soon as it is back */
	}
	/* In for max_eject_ms without an ejection: the next is short again. */
	t = a->outlier.until_ms + 35000;
	fail_n(a, 3, t);
	cr_assert_eq(a->outlier.until_ms - t, 10000);
	cr_assert_eq(a->outlier.ejections, 5);
	teardown(&f);
}

Test(outlier, never_more_than_the_share_of_a_pool_is_ejected, .timeout = 5)
{
	struct fixture f;
	setup(&f, 4, OUTLIER("0.5"));
	uint64_t t = 0;
	fail_n(f.b[0], 3, t);
	fail_n(f.b[1], 3, t);
	cr_assert_eq(backend_pool_ejected(f.gpu, t), 2);
	/* Half of four is out: the third bad backend stays in, said once. */
	fail_n(f.b[2], 2, t);
	cr_assert_eq(backend_outlier_report(f.b[2], false, t), BACKEND_OUTLIER_KEPT);
	cr_assert_eq(backend_outlier_report(f.b[2], false, t), BACKEND_OUTLIER_SAME);
	cr_assert(backend_is_up(f.b[2], t));
	cr_assert_eq(backend_pool_ejected(f.gpu, t), 2);
	/* Once one is back, its failures (still counted) eject it at the next one. */
	t = 10000;
	cr_assert_eq(backend_pool_ejected(f.gpu, t), 0);
	cr_assert_eq(backend_outlier_report(f.b[2], false, t), BACKEND_OUTLIER_EJECTED);
	teardown(&f);
}

Test(outlier, a_lone_backend_is_never_ejected_below_a_full_share, .timeout = 5)
{
	struct fixture f;
	setup(&f, 1, OUTLIER("0.5"));
	fail_n(f.b[0], 2, 0);
	cr_assert_eq(backend_outlier_report(f.b[0], false, 0), BACKEND_OUTLIER_KEPT);
	cr_assert(backend_pool_has_up(f.gpu, 0), "a bad rollout must not empty the pool");
	teardown(&f);

	setup(&f, 1, OUTLIER("1"));
	fail_n(f.b[0], 2, 0);
	cr_assert_eq(backend_outlier_report(f.b[0], false, 0), BACKEND_OUTLIER_EJECTED,
		     "max_ejected_share 1 allows the whole pool out");
	cr_assert_not(backend_pool_has_up(f.gpu, 0));
	teardown(&f);
}

Test(outlier, no_section_no_ejection_and_retired_backends_are_ignored, .timeout = 5)
{
	struct fixture f;
	setup(&f, 2, OUTLIER("0.5"));
	struct backend *c = f.bare->backends[0];
	cr_assert_not(f.bare->cfg->outlier.enabled);
	fail_n(c, 100, 0);
	cr_assert(backend_is_up(c, 0));
	cr_assert_eq(c->outlier.ejections, 0);
	struct backend *a = f.b[0];
	backend_acquire(a);
	backend_pool_retire(a);
	fail_n(a, 10, 0);
	cr_assert_eq(a->outlier.ejections, 0, "a retired backend is out of the pool already");
	backend_release(a);
	teardown(&f);
}

Test(outlier, ejection_and_health_and_passive_marks_combine, .timeout = 5)
{
	struct fixture f;
	setup(&f, 2, HEALTH OUTLIER("0.5"));
	struct backend *a = f.b[0];
	fail_n(a, 3, 0);
	cr_assert_not(backend_is_up(a, 5000));
	for (int i = 0; i < 3; i++)
		backend_health_record(a, &f.gpu->cfg->health, BACKEND_CHECK_FAILED, 503, 6000);
	cr_assert_not(backend_is_up(a, 20000), "ejection over, but its checks keep it out");
	for (int i = 0; i < 2; i++)
		backend_health_record(a, &f.gpu->cfg->health, BACKEND_CHECK_OK, 200, 21000);
	cr_assert(backend_is_up(a, 21000));
	backend_mark_failed(a, 21000);
	cr_assert_not(backend_is_up(a, 21000), "a failed connect still marks it down");
	teardown(&f);
}
