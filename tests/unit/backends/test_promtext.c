/*
 * test_promtext.c - reading vLLM's gauges from its /metrics text.
 *
 * The inputs are what vLLM writes (V1 engine: labels model_name and engine;
 * the older engine's gpu_cache_usage_perc), fed whole and cut at every byte
 * (a truncated body must never read past its end or invent a value).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backends/promtext.h"

static const char VLLM[] =
	"# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
	"# TYPE vllm:num_requests_running gauge\n"
	"vllm:num_requests_running{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 12.0\n"
	"vllm:num_requests_running{engine=\"1\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 4.0\n"
	"# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
	"# TYPE vllm:num_requests_waiting gauge\n"
	"vllm:num_requests_waiting{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 3.0\n"
	"vllm:num_requests_waiting{engine=\"1\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 0.0\n"
	"# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
	"# TYPE vllm:kv_cache_usage_perc gauge\n"
	"vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 0.5\n"
	"vllm:kv_cache_usage_perc{engine=\"1\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 0.25\n"
	"# HELP vllm:num_requests_running_total A lookalike that is not the gauge.\n"
	"vllm:num_requests_running_total 1000\n"
	"vllm:time_to_first_token_seconds_bucket{le=\"0.001\",model_name=\"m\"} 7.0\n";

Test(promtext, sums_over_label_sets_and_averages_the_cache, .timeout = 5)
{
	struct backend_vllm_load l;
	cr_assert_eq(backend_promtext_vllm(VLLM, strlen(VLLM), &l), 0);
	cr_assert_float_eq(l.running, 16, 1e-9);
	cr_assert_float_eq(l.waiting, 3, 1e-9);
	cr_assert_float_eq(l.kv_usage, 0.375, 1e-9);
}

Test(promtext, older_servers_and_unlabelled_series, .timeout = 5)
{
	const char *t = "vllm:num_requests_running 2\r\n"
			"vllm:num_requests_waiting\t1e1 1700000000000\n"
			"vllm:gpu_cache_usage_perc{model_name=\"a}b \\\"c\\\"\"} 0.9\n";
	struct backend_vllm_load l;
	cr_assert_eq(backend_promtext_vllm(t, strlen(t), &l), 0);
	cr_assert_float_eq(l.running, 2, 1e-9);
	cr_assert_float_eq(l.waiting, 10, 1e-9, "a timestamp after the value is ignored");
	cr_assert_float_eq(l.kv_usage, 0.9, 1e-9, "a quoted '}' does not end the labels");
}

Test(promtext, missing_or_bad_gauges, .timeout = 5)
{
	struct backend_vllm_load l;
	const char *no_waiting = "vllm:num_requests_running 2\n";
	cr_assert_eq(backend_promtext_vllm(no_waiting, strlen(no_waiting), &l), -ENOENT);
	const char *bad = "vllm:num_requests_running NaN\nvllm:num_requests_waiting -1\n"
			  "vllm:num_requests_running +Inf\nvllm:num_requests_waiting 1x\n";
	cr_assert_eq(backend_promtext_vllm(bad, strlen(bad), &l), -ENOENT, "NaN, infinities, negatives, junk");
	const char *html = "<html><body>Not Found</body></html>";
	cr_assert_eq(backend_promtext_vllm(html, strlen(html), &l), -ENOENT);
	cr_assert_eq(backend_promtext_vllm("", 0, &l), -ENOENT);
	const char *nokv = "vllm:num_requests_running 1\nvllm:num_requests_waiting 0\n";
	cr_assert_eq(backend_promtext_vllm(nokv, strlen(nokv), &l), 0);
	cr_assert_lt(l.kv_usage, 0, "no cache gauge: unknown, not zero");
	const char *open_labels = "vllm:num_requests_running{model_name=\"x 5\nvllm:num_requests_waiting 0\n"
				  "vllm:num_requests_running 1\n";
	cr_assert_eq(backend_promtext_vllm(open_labels, strlen(open_labels), &l), 0);
	cr_assert_float_eq(l.running, 1, 1e-9, "labels left open end their line only");
}

Test(promtext, every_prefix_reads_within_its_bounds, .timeout = 10)
{
	size_t n = strlen(VLLM);
	for (size_t cut = 0; cut <= n; cut++) {
		/* A heap copy of exactly `cut` bytes: ASan catches a read past it. */
		char *p = malloc(cut ? cut : 1);
		memcpy(p, VLLM, cut);
		struct backend_vllm_load l;
		int rc = backend_promtext_vllm(p, cut, &l);
		if (rc == 0) {
			cr_assert_leq(l.running, 16);
			cr_assert_leq(l.waiting, 3);
		}
		free(p);
	}
	struct backend_vllm_load l;
	cr_assert_eq(backend_promtext_vllm(VLLM, n, &l), 0);
}
