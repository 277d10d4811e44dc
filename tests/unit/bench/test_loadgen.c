/*
 * test_loadgen.c - the parts of loadgen that need no sockets: the arrival
 * schedules, stream specs, the token scanner, per-stream stats and the
 * summary (JSON and table).  The network side is exercised by
 * bench/scenarios/loadgen-selfcheck.sh against a real gpusim.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/loadgen/schedule.h"
#include "bench/loadgen/spec.h"
#include "bench/loadgen/summary.h"
#include "bench/loadgen/tokens.h"

/* ------------------------------------------------------------------------ */
/* Schedules                                                                 */

Test(schedule, fixed_intervals_are_exact, .timeout = 10)
{
	struct lg_sched s;
	lg_sched_init(&s, LG_ARRIVAL_FIXED, 50, 1);
	for (uint64_t k = 0; k < 1000; k++)
		cr_assert_eq(lg_sched_next(&s), k * 20000000, "arrival %llu",
			     (unsigned long long)k);

	/* A rate whose interval is not a whole number of ns does not drift. */
	lg_sched_init(&s, LG_ARRIVAL_FIXED, 3, 1);
	uint64_t prev = 0;
	for (uint64_t k = 0; k <= 3000000; k++) {
		uint64_t t = lg_sched_next(&s);
		uint64_t want = (uint64_t)llround((double)k * 1e9 / 3);
		cr_assert_eq(t, want, "arrival %llu at %llu, want %llu", (unsigned long long)k,
			     (unsigned long long)t, (unsigned long long)want);
		if (k > 0)
			cr_assert(t - prev == 333333333 || t - prev == 333333334);
		prev = t;
	}
	cr_assert_eq(prev, 1000000000000000u); /* 3e6 arrivals at 3/s: exactly 1e6 s */
}

Test(schedule, peek_does_not_consume, .timeout = 10)
{
	struct lg_sched s;
	lg_sched_init(&s, LG_ARRIVAL_POISSON, 100, 42);
	for (int i = 0; i < 100; i++) {
		uint64_t p = lg_sched_peek(&s);
		cr_assert_eq(lg_sched_peek(&s), p);
		cr_assert_eq(lg_sched_next(&s), p);
		cr_assert_geq(lg_sched_peek(&s), p);
	}
}

static void check_poisson(double rate, uint64_t seed)
{
	enum { N = 100000 };
	struct lg_sched s;
	lg_sched_init(&s, LG_ARRIVAL_POISSON, rate, seed);
	double sum = 0, sumsq = 0;
	uint64_t prev = 0;
	for (int i = 0; i < N; i++) {
		uint64_t t = lg_sched_next(&s);
		cr_assert_geq(t, prev);
		double gap = (double)(t - prev) / 1e9;
		sum += gap;
		sumsq += gap * gap;
		prev = t;
	}
	double measured = N / ((double)prev / 1e9);
	double mean = sum / N;
	double sd = sqrt(sumsq / N - mean * mean);
	cr_assert(fabs(measured / rate - 1) < 0.02, "rate %g: measured %g", rate, measured);
	cr_assert(fabs(sd / mean - 1) < 0.03, "rate %g: inter-arrival CV %g", rate, sd / mean);
	/* Memorylessness, roughly: P(gap > mean) = 1/e. */
	lg_sched_init(&s, LG_ARRIVAL_POISSON, rate, seed + 1);
	prev = 0;
	int longer = 0;
	for (int i = 0; i < N; i++) {
		uint64_t t = lg_sched_next(&s);
		longer += (double)(t - prev) > 1e9 / rate;
		prev = t;
	}
	cr_assert(fabs((double)longer / N - exp(-1)) < 0.01, "P(gap > mean) = %g",
		  (double)longer / N);
}

Test(schedule, poisson_rate_and_cv, .timeout = 20)
{
	check_poisson(1000, 1);
	check_poisson(10, 7);
	check_poisson(0.5, 99);
	check_poisson(250000, 12345);
}

Test(schedule, seeds_are_reproducible_and_distinct, .timeout = 10)
{
	struct lg_sched a, b, c;
	lg_sched_init(&a, LG_ARRIVAL_POISSON, 100, 5);
	lg_sched_init(&b, LG_ARRIVAL_POISSON, 100, 5);
	lg_sched_init(&c, LG_ARRIVAL_POISSON, 100, 6);
	int same = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = lg_sched_next(&a), y = lg_sched_next(&b), z = lg_sched_next(&c);
		cr_assert_eq(x, y);
		same += x == z;
	}
	cr_assert_lt(same, 5);
}

Test(schedule, rng_unit_is_in_range, .timeout = 10)
{
	struct lg_rng r;
	lg_rng_seed(&r, 0);
	double sum = 0;
	for (int i = 0; i < 100000; i++) {
		double u = lg_rng_unit(&r);
		cr_assert(u > 0 && u <= 1);
		sum += u;
	}
	cr_assert(fabs(sum / 100000 - 0.5) < 0.01);
}

/* ------------------------------------------------------------------------ */
/* Stream specs                                                              */

Test(spec, full_open_loop_spec, .timeout = 10)
{
	struct lg_stream_conf c;
	char err[200] = "";
	int rc = lg_stream_conf_parse(&c,
		"name=chat,rate=10.5,arrival=fixed,class=interactive,key=sk-chat-demo,"
		"prompt_tokens=128,max_tokens=16,stream=1,deadline_ms=250,max_conns=7,"
		"header=X-A: 1,header=x-b:two=2,target=10.0.0.1:8080,path=/v1/chat/completions,"
		"model=m1", err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_str_eq(c.name, "chat");
	cr_assert_float_eq(c.rate, 10.5, 1e-12);
	cr_assert_eq(c.concurrency, 0);
	cr_assert_eq(c.arrival, LG_ARRIVAL_FIXED);
	cr_assert_str_eq(c.cls, "interactive");
	cr_assert_str_eq(c.key, "sk-chat-demo");
	cr_assert_eq(c.prompt_tokens, 128);
	cr_assert_eq(c.max_tokens, 16);
	cr_assert(c.stream);
	cr_assert_eq(c.deadline_ms, 250);
	cr_assert_eq(c.max_conns, 7);
	cr_assert_eq(c.nheaders, 2);
	cr_assert_str_eq(c.headers[0].name, "X-A");
	cr_assert_str_eq(c.headers[0].value, "1");
	cr_assert_str_eq(c.headers[1].name, "x-b");
	cr_assert_str_eq(c.headers[1].value, "two=2");
	cr_assert_str_eq(c.target, "10.0.0.1:8080");
	cr_assert_str_eq(c.path, "/v1/chat/completions");
	cr_assert_str_eq(c.model, "m1");
	lg_stream_conf_finish(&c);
}

Test(spec, closed_loop_defaults, .timeout = 10)
{
	struct lg_stream_conf c;
	char err[200] = "";
	cr_assert_eq(lg_stream_conf_parse(&c, "concurrency=48", err, sizeof(err)), 0, "%s", err);
	cr_assert_null(c.name);
	cr_assert_null(c.target);
	cr_assert_null(c.key);
	cr_assert_null(c.cls);
	cr_assert_str_eq(c.path, "/v1/completions");
	cr_assert_eq(c.concurrency, 48);
	cr_assert_eq(c.prompt_tokens, 16);
	cr_assert_eq(c.max_tokens, 16);
	cr_assert_not(c.stream);
	cr_assert_lt(c.deadline_ms, 0);
	lg_stream_conf_finish(&c);
}

Test(spec, max_tokens_may_be_a_range, .timeout = 10)
{
	struct lg_stream_conf c;
	char err[200] = "";
	cr_assert_eq(lg_stream_conf_parse(&c, "concurrency=4,max_tokens=64-192", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.max_tokens, 64);
	cr_assert_eq(c.max_tokens_hi, 192);
	lg_stream_conf_finish(&c);
	cr_assert_eq(lg_stream_conf_parse(&c, "concurrency=4,max_tokens=64-192,max_tokens=8", err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(c.max_tokens, 8);
	cr_assert_eq(c.max_tokens_hi, 0, "a later single value replaces the range");
	lg_stream_conf_finish(&c);
}

Test(spec, bad_specs_are_refused_with_the_field_named, .timeout = 10)
{
	static const struct {
		const char *spec, *needle;
	} bad[] = {
		{"name=x", "exactly one of rate"},
		{"rate=1,concurrency=2", "exactly one of rate"},
		{"rate=0", "rate"},
		{"rate=-3", "rate"},
		{"rate=abc", "rate"},
		{"rate=1,arrival=bursty", "arrival"},
		{"concurrency=2,arrival=fixed", "arrival applies to open-loop"},
		{"concurrency=2,max_conns=3", "max_conns applies to open-loop"},
		{"rate=1,colour=red", "unknown field 'colour'"},
		{"rate=1,stream=yes", "stream"},
		{"rate=1,max_tokens=0", "max_tokens"},
		{"rate=1,max_tokens=9-3", "N <= M"},
		{"rate=1,max_tokens=0-3", "max_tokens"},
		{"rate=1,max_tokens=3-", "max_tokens"},
		{"rate=1,prompt_tokens=1x", "prompt_tokens"},
		{"rate=1,header=NoColon", "header"},
		{"rate=1,target=nohost", "target"},
		{"rate=1,target=h:99999", "target"},
		{"rate=1,path=relative", "path"},
		{"rate=1,key=a\"b", "key"},
		{"rate=1,justakey", "not field=value"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct lg_stream_conf c;
		char err[200] = "";
		cr_assert_eq(lg_stream_conf_parse(&c, bad[i].spec, err, sizeof(err)), -EINVAL,
			     "'%s' was accepted", bad[i].spec);
		cr_assert_not_null(strstr(err, bad[i].needle), "'%s': message '%s' lacks '%s'",
				   bad[i].spec, err, bad[i].needle);
		cr_assert_null(c.spec);
	}
}

Test(spec, targets, .timeout = 10)
{
	char host[64];
	int port = 0;
	cr_assert_eq(lg_target_split("127.0.0.1:8080", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 8080);
	cr_assert_eq(lg_target_split(":9", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 9);
	cr_assert_eq(lg_target_split("[::1]:443", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(lg_target_split("localhost:1", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "localhost");
	cr_assert_eq(lg_target_split("::1:80", host, sizeof(host), &port), -EINVAL);
	cr_assert_eq(lg_target_split("h:0", host, sizeof(host), &port), -EINVAL);
	cr_assert_eq(lg_target_split("h:", host, sizeof(host), &port), -EINVAL);
	cr_assert_eq(lg_target_split("h", host, sizeof(host), &port), -EINVAL);
	cr_assert_eq(lg_target_split("averyveryveryverylonghostname:1", host, 8, &port), -EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Token scanner: whole, and one byte at a time                              */

static uint64_t scan(const char *body, size_t step, bool sse)
{
	struct lg_tokscan t;
	lg_tokscan_init(&t);
	size_t n = strlen(body);
	for (size_t i = 0; i < n; i += step)
		lg_tokscan_feed(&t, body + i, n - i < step ? n - i : step);
	return lg_tokscan_tokens(&t, sse);
}

static void check_scan(const char *body, bool sse, uint64_t want)
{
	for (size_t step = 1; step <= 7; step++)
		cr_assert_eq(scan(body, step, sse), want, "step %zu: %llu tokens, want %llu in %s",
			     step, (unsigned long long)scan(body, step, sse),
			     (unsigned long long)want, body);
	cr_assert_eq(scan(body, strlen(body) + 1, sse), want);
}

Test(tokens, json_usage, .timeout = 10)
{
	check_scan("{\"id\":\"cmpl-1\",\"choices\":[{\"text\":\"a b c\"}],\"usage\":{\"prompt_tokens\":7,"
		   "\"completion_tokens\":123,\"total_tokens\":130}}", false, 123);
	check_scan("{\"usage\": {\"completion_tokens\": 42}}", false, 42);
	check_scan("{\"usage\":{\"completion_tokens\":9}", false, 9); /* cut after the digits */
	check_scan("{\"choices\":[]}", false, 0);
	/* A partial key followed by the real one. */
	check_scan("\"completion_\"completion_tokens\":5}", false, 5);
}

Test(tokens, sse_usage_chunk_wins, .timeout = 10)
{
	check_scan("data: {\"choices\":[{\"text\":\"a\"}]}\n\n"
		   "data: {\"choices\":[{\"text\":\"b\"}]}\n\n"
		   "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":20,"
		   "\"total_tokens\":21}}\n\n"
		   "data: [DONE]\n\n", true, 20);
}

Test(tokens, sse_events_without_usage, .timeout = 10)
{
	check_scan("data: {\"t\":\"a\"}\n\ndata: {\"t\":\"b\"}\r\n\r\ndata:{\"t\":\"c\"}\n\n"
		   ": a comment with data: inside\n\nevent: x\ndata: [DONE]\n\n", true, 3);
	check_scan("data: [DONE]\n\n", true, 0);
	/* "data:" inside a payload is not an event. */
	check_scan("data: {\"text\":\"data: x\"}\n\n", true, 1);
	/* A JSON body counted as SSE has no events; as JSON without usage, 0. */
	check_scan("{\"text\":\"data: nope\"}", false, 0);
}

/* ------------------------------------------------------------------------ */
/* Stats, merge and the summary                                              */

static struct lg_stats *stats_new(void)
{
	struct lg_stats *s = malloc(sizeof(*s));
	cr_assert_not_null(s);
	lg_stats_init(s);
	return s;
}

Test(stats, merge_across_streams, .timeout = 10)
{
	struct lg_stats *a = stats_new(), *b = stats_new(), *both = stats_new();
	for (uint64_t i = 1; i <= 1000; i++) {
		gw_hist_record(&a->latency, i * 1000000);
		gw_hist_record(&both->latency, i * 1000000);
		gw_hist_record(&b->latency, i * 77777);
		gw_hist_record(&both->latency, i * 77777);
	}
	a->sent = 10, a->ok = 7, a->rejected = 2, a->errors[LG_ERR_RESET] = 1;
	b->sent = 5, b->ok = 3, b->other = 1, b->dropped = 4, b->unfinished = 1;
	a->status[200] = 7, a->status[429] = 2, b->status[200] = 3, b->status[503] = 1;
	a->tokens = 70, b->tokens = 30;
	lg_stats_add_reason(a, "queue_full", 10);
	lg_stats_add_reason(a, "queue_full", 10);
	lg_stats_add_reason(b, "queue_full", 10);
	lg_stats_add_reason(b, "no_backend", 10);
	gw_hist_record(&b->retry_after, 120);

	lg_stats_merge(a, b);
	cr_assert_eq(a->sent, 15);
	cr_assert_eq(a->ok, 10);
	cr_assert_eq(a->rejected, 2);
	cr_assert_eq(a->other, 1);
	cr_assert_eq(a->dropped, 4);
	cr_assert_eq(a->unfinished, 1);
	cr_assert_eq(lg_stats_errors(a), 1);
	cr_assert_eq(a->status[200], 10);
	cr_assert_eq(a->status[503], 1);
	cr_assert_eq(a->tokens, 100);
	cr_assert_eq(a->nreasons, 2);
	cr_assert_str_eq(a->reasons[0].name, "queue_full");
	cr_assert_eq(a->reasons[0].count, 3);
	cr_assert_str_eq(a->reasons[1].name, "no_backend");
	cr_assert_eq(a->reasons[1].count, 1);
	cr_assert_eq(gw_hist_count(&a->retry_after), 1);
	cr_assert(memcmp(&a->latency, &both->latency, sizeof(a->latency)) == 0);
	free(a);
	free(b);
	free(both);
}

Test(stats, reasons_are_bounded, .timeout = 10)
{
	struct lg_stats *s = stats_new();
	char name[16];
	for (int i = 0; i < LG_REASONS_MAX + 5; i++) {
		int n = snprintf(name, sizeof(name), "r%d", i);
		lg_stats_add_reason(s, name, (size_t)n);
	}
	cr_assert_eq(s->nreasons, LG_REASONS_MAX);
	cr_assert_eq(s->reasons_other, 5);
	/* A reason longer than the slot is cut, and the cut name still matches. */
	char longname[100];
	memset(longname, 'x', sizeof(longname));
	struct lg_stats *t = stats_new();
	lg_stats_add_reason(t, longname, sizeof(longname));
	lg_stats_add_reason(t, longname, sizeof(longname));
	cr_assert_eq(t->nreasons, 1);
	cr_assert_eq(t->reasons[0].count, 2);
	cr_assert_eq(strlen(t->reasons[0].name), LG_REASON_LEN - 1);
	free(s);
	free(t);
}

/* A hand-built run: two streams, known values everywhere. */
struct fixture {
	struct lg_stream_conf chat, batch;
	struct lg_stats *s_chat, *s_batch;
	struct gw_hist lag;
	struct lg_report reports[2];
	struct lg_run run;
};

static void fixture_build(struct fixture *f)
{
	char err[200];
	cr_assert_eq(lg_stream_conf_parse(&f->chat,
		"name=chat,rate=10,class=interactive,key=sk-chat-demo,prompt_tokens=128,"
		"max_tokens=16,stream=1,header=x-t:1", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(lg_stream_conf_parse(&f->batch,
		"name=batch,concurrency=48,class=opportunistic,max_tokens=256,deadline_ms=900",
		err, sizeof(err)), 0, "%s", err);
	f->s_chat = stats_new();
	f->s_batch = stats_new();
	struct lg_stats *c = f->s_chat, *b = f->s_batch;
	/* chat: 100 sent, 90 ok at exactly 50 ms (TTFB 5 ms), 8 rejected, 1 error, 1 unfinished */
	c->sent = 100, c->ok = 90, c->rejected = 8, c->errors[LG_ERR_TRUNCATED] = 1;
	c->unfinished = 1, c->dropped = 2, c->tokens = 90 * 16;
	c->status[200] = 90, c->status[429] = 8;
	gw_hist_record_n(&c->latency, 50000000, 90);
	gw_hist_record_n(&c->ttfb, 5000000, 90);
	gw_hist_record_n(&c->reject_latency, 300000, 8);
	for (int i = 0; i < 6; i++)
		lg_stats_add_reason(c, "queue_full", 10);
	for (int i = 0; i < 2; i++)
		lg_stats_add_reason(c, "rate_limit_exceeded", 19);
	gw_hist_record_n(&c->retry_after, 120, 8);
	/* batch: 20 ok, latencies 1..20 ms */
	b->sent = 20, b->ok = 20, b->status[200] = 20, b->tokens = 20 * 256;
	for (uint64_t i = 1; i <= 20; i++) {
		gw_hist_record(&b->latency, i * 1000000);
		gw_hist_record(&b->ttfb, i * 1000000);
	}
	gw_hist_init(&f->lag);
	gw_hist_record_n(&f->lag, 20000, 99);
	gw_hist_record(&f->lag, 3000000);
	f->reports[0] = (struct lg_report){"chat", "127.0.0.1:8080", &f->chat, c};
	f->reports[1] = (struct lg_report){"batch", "127.0.0.1:8001", &f->batch, b};
	f->run = (struct lg_run){.duration_s = 10, .warmup_s = 2, .grace_s = 5,
				 .elapsed_s = 12.5, .seed = 77, .lag = &f->lag};
}

static void fixture_free(struct fixture *f)
{
	lg_stream_conf_finish(&f->chat);
	lg_stream_conf_finish(&f->batch);
	free(f->s_chat);
	free(f->s_batch);
}

static double num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	cr_assert(json_is_number(v), "'%s' is not a number", key);
	return json_number_value(v);
}

static void check_summary(json_t *root)
{
	json_t *run = json_object_get(root, "run");
	cr_assert(json_is_object(run));
	cr_assert_float_eq(num(run, "duration_s"), 10, 1e-9);
	cr_assert_float_eq(num(run, "warmup_s"), 2, 1e-9);
	cr_assert_float_eq(num(run, "elapsed_s"), 12.5, 1e-9);
	cr_assert_eq(json_integer_value(json_object_get(run, "seed")), 77);
	cr_assert(json_is_false(json_object_get(run, "interrupted")));
	json_t *lag = json_object_get(run, "schedule_lag_ms");
	cr_assert_eq(num(lag, "count"), 100);
	cr_assert_float_eq(num(lag, "p50"), 0.02, 0.02 / 64);
	cr_assert_float_eq(num(lag, "max"), 3.0, 1e-9);

	json_t *streams = json_object_get(root, "streams");
	cr_assert(json_is_array(streams));
	cr_assert_eq(json_array_size(streams), 2);

	json_t *chat = json_array_get(streams, 0);
	cr_assert_str_eq(json_string_value(json_object_get(chat, "name")), "chat");
	cr_assert_str_eq(json_string_value(json_object_get(chat, "target")), "127.0.0.1:8080");
	cr_assert_eq(num(chat, "scheduled"), 102);
	cr_assert_eq(num(chat, "sent"), 100);
	cr_assert_eq(num(chat, "ok"), 90);
	cr_assert_eq(num(chat, "rejected_429"), 8);
	cr_assert_eq(num(chat, "other_status"), 0);
	cr_assert_eq(num(chat, "errors"), 1);
	cr_assert_eq(num(chat, "dropped"), 2);
	cr_assert_eq(num(chat, "unfinished"), 1);
	cr_assert_eq(num(json_object_get(chat, "error_kinds"), "truncated"), 1);
	cr_assert_eq(num(json_object_get(chat, "error_kinds"), "connect"), 0);
	json_t *status = json_object_get(chat, "status");
	cr_assert_eq(json_object_size(status), 2);
	cr_assert_eq(num(status, "200"), 90);
	cr_assert_eq(num(status, "429"), 8);
	json_t *reasons = json_object_get(chat, "reasons");
	cr_assert_eq(json_object_size(reasons), 2);
	cr_assert_eq(num(reasons, "queue_full"), 6);
	cr_assert_eq(num(reasons, "rate_limit_exceeded"), 2);
	cr_assert_float_eq(num(chat, "throughput_rps"), 9.8, 1e-9);
	cr_assert_float_eq(num(chat, "ok_rps"), 9.0, 1e-9);
	cr_assert_eq(num(chat, "output_tokens"), 1440);
	cr_assert_float_eq(num(chat, "output_tokens_per_s"), 144, 1e-9);
	json_t *lat = json_object_get(chat, "latency_ms");
	cr_assert_eq(num(lat, "count"), 90);
	/* every sample is 50 ms: clamped to min = max, so exact */
	static const char *const keys[] = {"min", "p50", "p90", "p99", "p99.9", "max", "mean"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert_float_eq(num(lat, keys[i]), 50.0, 1e-9, "latency %s", keys[i]);
	cr_assert_float_eq(num(json_object_get(chat, "ttfb_ms"), "p99"), 5.0, 1e-9);
	cr_assert_float_eq(num(json_object_get(chat, "reject_latency_ms"), "p50"), 0.3, 1e-9);
	json_t *hints = json_object_get(chat, "retry_after_ms");
	cr_assert_eq(num(hints, "count"), 8);
	cr_assert_float_eq(num(hints, "p50"), 120, 1e-9);

	json_t *conf = json_object_get(chat, "config");
	cr_assert_str_eq(json_string_value(json_object_get(conf, "mode")), "open");
	cr_assert_float_eq(num(conf, "rate"), 10, 1e-9);
	cr_assert_str_eq(json_string_value(json_object_get(conf, "arrival")), "poisson");
	cr_assert(json_is_null(json_object_get(conf, "concurrency")));
	cr_assert_str_eq(json_string_value(json_object_get(conf, "class")), "interactive");
	cr_assert_str_eq(json_string_value(json_object_get(conf, "key")), "sk-c...");
	cr_assert_eq(num(conf, "prompt_tokens"), 128);
	cr_assert(json_is_true(json_object_get(conf, "stream")));
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(conf, "headers"), "x-t")),
			 "1");

	json_t *batch = json_array_get(streams, 1);
	cr_assert_str_eq(json_string_value(json_object_get(batch, "name")), "batch");
	json_t *bconf = json_object_get(batch, "config");
	cr_assert_str_eq(json_string_value(json_object_get(bconf, "mode")), "closed");
	cr_assert_eq(num(bconf, "concurrency"), 48);
	cr_assert_eq(num(bconf, "deadline_ms"), 900);
	cr_assert(json_is_null(json_object_get(bconf, "key")));
	json_t *blat = json_object_get(batch, "latency_ms");
	cr_assert_float_eq(num(blat, "p50"), 10.0, 10.0 / 64);
	cr_assert_float_eq(num(blat, "max"), 20.0, 1e-9);
	cr_assert_float_eq(num(blat, "min"), 1.0, 1e-9);
	cr_assert_float_eq(num(blat, "mean"), 10.5, 1e-9);
	cr_assert_eq(json_object_size(json_object_get(batch, "reasons")), 0);
	/* An empty histogram is only its count. */
	json_t *rl = json_object_get(batch, "reject_latency_ms");
	cr_assert_eq(json_object_size(rl), 1);
	cr_assert_eq(num(rl, "count"), 0);
}

Test(summary, json_parses_back_with_the_right_values, .timeout = 10)
{
	struct fixture f;
	fixture_build(&f);
	json_t *root = lg_summary_json(&f.run, f.reports, 2);
	cr_assert_not_null(root);
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
	json_decref(root);
	json_error_t jerr;
	json_t *back = json_loads(text, 0, &jerr);
	cr_assert_not_null(back, "%s", jerr.text);
	free(text);
	check_summary(back);
	json_decref(back);
	fixture_free(&f);
}

Test(summary, json_file, .timeout = 10)
{
	struct fixture f;
	fixture_build(&f);
	char path[] = "/tmp/test_loadgen_XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(lg_summary_write_json(path, &f.run, f.reports, 2), 0);
	json_error_t jerr;
	json_t *back = json_load_file(path, 0, &jerr);
	unlink(path);
	cr_assert_not_null(back, "%s", jerr.text);
	check_summary(back);
	json_decref(back);
	cr_assert_lt(lg_summary_write_json("/nonexistent/dir/x.json", &f.run, f.reports, 2), 0);
	fixture_free(&f);
}

Test(summary, table, .timeout = 10)
{
	struct fixture f;
	fixture_build(&f);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	lg_summary_print(out, &f.run, f.reports, 2);
	fclose(out);
	/* run line, header, chat, batch, total, then details */
	cr_assert_not_null(strstr(buf, "10.0 s measured after 2.0 s warmup, seed 77"), "%s", buf);
	cr_assert_not_null(strstr(buf, "schedule lag p50 0.020, p99 0.020, max 3.000 ms"), "%s", buf);
	char *line = strchr(buf, '\n') + 1;
	cr_assert_eq(strncmp(line, "stream ", 7), 0);
	cr_assert_not_null(strstr(line, "p99.9_ms"));
	line = strchr(line, '\n') + 1;
	char name[16];
	unsigned long long sent, ok, rej, other, err, drop, unfin;
	double okps, p50;
	cr_assert_eq(sscanf(line, "%15s %llu %llu %llu %llu %llu %llu %llu %lf %lf", name, &sent,
			    &ok, &rej, &other, &err, &drop, &unfin, &okps, &p50), 10, "%s", line);
	cr_assert_str_eq(name, "chat");
	cr_assert(sent == 100 && ok == 90 && rej == 8 && other == 0 && err == 1 && drop == 2 &&
		  unfin == 1);
	cr_assert_float_eq(okps, 9.0, 1e-9);
	cr_assert_float_eq(p50, 50.0, 1e-9);
	line = strchr(line, '\n') + 1;
	cr_assert_eq(strncmp(line, "batch ", 6), 0);
	line = strchr(line, '\n') + 1;
	cr_assert_eq(sscanf(line, "%15s %llu %llu", name, &sent, &ok), 3);
	cr_assert_str_eq(name, "total");
	cr_assert(sent == 120 && ok == 110);
	cr_assert_not_null(strstr(buf, "chat reasons: queue_full=6 rate_limit_exceeded=2"), "%s", buf);
	cr_assert_not_null(strstr(buf, "chat errors: truncated=1"), "%s", buf);
	cr_assert_null(strstr(buf, "batch errors"));
	free(buf);
	fixture_free(&f);
}
