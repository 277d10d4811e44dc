/*
 * test_defer.c - deferred work on a real loop: it runs from the loop, never
 * before gw_defer_schedule() returns; once however often it is scheduled;
 * never after it is cancelled; and work scheduled by deferred work waits
 * for the next turn.
 */
#include <criterion/criterion.h>
#include <stddef.h>

#include "gateway/defer.h"

struct job {
	struct gw_defer d;
	struct gw_defer_list *list;
	int runs;
	struct job *then;		/* scheduled by this job when it runs */
	uv_loop_t *loop;
	uint64_t ran_in_turn;
};

static uint64_t turns;

static void on_prepare(uv_prepare_t *h)
{
	turns++;
}

static void run_job(struct gw_defer *d)
{
	struct job *j = (struct job *)((char *)d - offsetof(struct job, d));
	j->runs++;
	j->ran_in_turn = turns;
	if (j->then != NULL)
		gw_defer_schedule(j->list, &j->then->d);
}

static void job_init(struct job *j, struct gw_defer_list *l)
{
	*j = (struct job){ .list = l };
	gw_defer_init(&j->d, run_job);
}

Test(defer, runs_from_the_loop_once_and_never_after_cancel, .timeout = 5)
{
	uv_loop_t loop;
	struct gw_defer_list l;
	struct job a, b, c;
	uv_prepare_t prep;
	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(gw_defer_list_init(&l, &loop), 0);
	uv_prepare_init(&loop, &prep);
	uv_prepare_start(&prep, on_prepare);
	uv_unref((uv_handle_t *)&prep);
	job_init(&a, &l);
	job_init(&b, &l);
	job_init(&c, &l);
	a.then = &c;

	gw_defer_schedule(&l, &a.d);
	gw_defer_schedule(&l, &a.d);
	gw_defer_schedule(&l, &b.d);
	cr_assert_eq(a.runs, 0, "nothing runs before schedule returns");
	cr_assert(gw_defer_scheduled(&b.d));
	gw_defer_cancel(&b.d);
	gw_defer_cancel(&b.d);
	cr_assert_not(gw_defer_scheduled(&b.d));
	turns = 0;
	uv_run(&loop, UV_RUN_DEFAULT);	/* returns once nothing is scheduled */
	cr_assert_eq(a.runs, 1, "scheduled twice, run once");
	cr_assert_eq(b.runs, 0, "cancelled work never runs");
	cr_assert_eq(c.runs, 1, "work scheduled by deferred work runs too");
	cr_assert_gt(c.ran_in_turn, a.ran_in_turn, "...in a later turn, so a step cannot starve the loop");

	/* All cancelled before the loop runs: the loop still ends. */
	gw_defer_schedule(&l, &b.d);
	gw_defer_cancel(&b.d);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(b.runs, 0);

	gw_defer_list_close(&l);
	uv_close((uv_handle_t *)&prep, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0);
}
