/* test_bucket.c - token buckets on a hand-driven clock. */
#include <criterion/criterion.h>

#include "queue/bucket.h"

Test(bucket, burst_then_refill_with_honest_wait, .timeout = 5)
{
	struct queue_bucket b;
	uint64_t wait = 0;
	queue_bucket_init(&b, 50, 100, 1000);
	for (int i = 0; i < 100; i++)
		cr_assert(queue_bucket_take(&b, 1, 1000, &wait), "take %d within the burst", i);
	cr_assert_not(queue_bucket_take(&b, 1, 1000, &wait));
	cr_assert_eq(wait, 20, "one request at 50/s is 20 ms away, got %llu", (unsigned long long)wait);
	cr_assert_not(queue_bucket_take(&b, 1, 1019, &wait));
	cr_assert_eq(wait, 1);
	cr_assert(queue_bucket_take(&b, 1, 1020, &wait), "the hint was honest: a retry then succeeds");
	/* a full refill takes burst / rate = 2 s */
	cr_assert_eq(queue_bucket_full_in(&b, 1020), 2000);
	cr_assert_float_eq(queue_bucket_level(&b, 3020), 100, 1e-9, "never above burst");
}

Test(bucket, large_amounts_wait_for_a_full_bucket_and_leave_debt, .timeout = 5)
{
	struct queue_bucket b;
	uint64_t wait = 0;
	queue_bucket_init(&b, 10, 10, 0);	/* 10 tokens/s, 10 deep */
	cr_assert(queue_bucket_take(&b, 25, 0, &wait), "more than the burst passes on a full bucket");
	cr_assert_float_eq(queue_bucket_level(&b, 0), -15, 1e-9);
	cr_assert_not(queue_bucket_take(&b, 1, 0, &wait));
	cr_assert_eq(wait, 1600, "debt of 15 plus 1 token at 10/s: 1.6 s, got %llu", (unsigned long long)wait);
}

Test(bucket, adjust_reconciles_estimates, .timeout = 5)
{
	struct queue_bucket b;
	uint64_t wait;
	queue_bucket_init(&b, 1, 1000, 0);
	cr_assert(queue_bucket_take(&b, 600, 0, &wait));
	queue_bucket_adjust(&b, 600 - 150, 0);	/* estimated 600, used 150 */
	cr_assert_float_eq(queue_bucket_level(&b, 0), 850, 1e-9);
	queue_bucket_adjust(&b, 1e9, 0);
	cr_assert_float_eq(queue_bucket_level(&b, 0), 1000, 1e-9, "a refund never overfills");
}

Test(bucket, unlimited, .timeout = 5)
{
	struct queue_bucket b;
	uint64_t wait = 0;
	queue_bucket_init(&b, 0, 0, 0);
	for (int i = 0; i < 1000; i++)
		cr_assert(queue_bucket_take(&b, 1e6, 0, &wait));
	cr_assert_eq(queue_bucket_full_in(&b, 0), 0);
}

Test(bucket, corrections_leave_at_most_one_burst_of_debt, .timeout = 5)
{
	struct queue_bucket b;
	queue_bucket_init(&b, 10, 100, 0);
	queue_bucket_adjust(&b, -1e18, 0);
	cr_assert_float_eq(queue_bucket_level(&b, 0), -100, 1e-9);
	cr_assert_eq(queue_bucket_full_in(&b, 0), 20000, "200 tokens at 10/s");
}
