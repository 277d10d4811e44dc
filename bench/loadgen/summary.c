/*
 * summary.c - per-stream statistics, the table and the JSON summary.
 *
 * Everything here is a pure function of the stats it is given (no clock, no
 * sockets), so the unit tests build a stats object by hand and check what
 * comes out.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/loadgen/summary.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "unknown"
#endif

static const char *const err_names[LG_ERR_COUNT] = {
	[LG_ERR_CONNECT] = "connect",
	[LG_ERR_RESET] = "reset",
	[LG_ERR_CLOSED] = "closed",
	[LG_ERR_TRUNCATED] = "truncated",
	[LG_ERR_PARSE] = "parse",
};

const char *lg_err_name(enum lg_err e)
{
	return (unsigned)e < LG_ERR_COUNT ? err_names[e] : "unknown";
}

void lg_stats_init(struct lg_stats *s)
{
	memset(s, 0, sizeof(*s));
	gw_hist_init(&s->latency);
	gw_hist_init(&s->ttfb);
	gw_hist_init(&s->reject_latency);
	gw_hist_init(&s->retry_after);
}

static void add_reason_n(struct lg_stats *s, const char *name, size_t len, uint64_t n)
{
	if (len >= LG_REASON_LEN)
		len = LG_REASON_LEN - 1;
	for (unsigned i = 0; i < s->nreasons; i++) {
		struct lg_reason *r = &s->reasons[i];
		if (strncmp(r->name, name, len) == 0 && r->name[len] == '\0') {
			r->count += n;
			return;
		}
	}
	if (s->nreasons == LG_REASONS_MAX) {
		s->reasons_other += n;
		return;
	}
	struct lg_reason *r = &s->reasons[s->nreasons++];
	memcpy(r->name, name, len);
	r->name[len] = '\0';
	r->count = n;
}

void lg_stats_add_reason(struct lg_stats *s, const char *name, size_t len)
{
	add_reason_n(s, name, len, 1);
}

void lg_stats_merge(struct lg_stats *dst, const struct lg_stats *src)
{
	dst->sent += src->sent;
	dst->ok += src->ok;
	dst->rejected += src->rejected;
	dst->other += src->other;
	for (int i = 0; i < LG_ERR_COUNT; i++)
		dst->errors[i] += src->errors[i];
	dst->dropped += src->dropped;
	dst->unfinished += src->unfinished;
	dst->tokens += src->tokens;
	for (int i = 0; i < LG_STATUS_MAX; i++)
		dst->status[i] += src->status[i];
	for (unsigned i = 0; i < src->nreasons; i++)
		add_reason_n(dst, src->reasons[i].name, strlen(src->reasons[i].name),
			     src->reasons[i].count);
	dst->reasons_other += src->reasons_other;
	gw_hist_merge(&dst->latency, &src->latency);
	gw_hist_merge(&dst->ttfb, &src->ttfb);
	gw_hist_merge(&dst->reject_latency, &src->reject_latency);
	gw_hist_merge(&dst->retry_after, &src->retry_after);
}

uint64_t lg_stats_errors(const struct lg_stats *s)
{
	uint64_t n = 0;
	for (int i = 0; i < LG_ERR_COUNT; i++)
		n += s->errors[i];
	return n;
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

static const double pcts[] = {50, 90, 99, 99.9};
static const char *const pct_keys[] = {"p50", "p90", "p99", "p99.9"};

/* Milliseconds rounded to the nanosecond, so the JSON shows no float noise. */
static json_t *json_ms(double ns, double unit_ns)
{
	return json_real(round(ns) * unit_ns / 1e6);
}

/* {"count", "mean", "min", "p50", "p90", "p99", "p99.9", "max"}; only "count" when empty. */
static json_t *hist_json(const struct gw_hist *h, double unit_ns)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "count", json_integer((json_int_t)gw_hist_count(h)));
	if (gw_hist_count(h) == 0)
		return o;
	json_object_set_new(o, "mean", json_ms(gw_hist_mean(h), unit_ns));
	json_object_set_new(o, "min", json_ms((double)gw_hist_min(h), unit_ns));
	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
		json_object_set_new(o, pct_keys[i],
				    json_ms((double)gw_hist_percentile(h, pcts[i]), unit_ns));
	json_object_set_new(o, "max", json_ms((double)gw_hist_max(h), unit_ns));
	return o;
}

static json_t *str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* Keys are secrets: the summary shows enough to tell them apart, no more. */
static json_t *masked_key(const char *key)
{
	if (key == NULL)
		return json_null();
	char buf[16];
	snprintf(buf, sizeof(buf), "%.4s...", key);
	return json_string(buf);
}

static json_t *conf_json(const struct lg_stream_conf *c)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	bool open = c->rate > 0;
	json_object_set_new(o, "mode", json_string(open ? "open" : "closed"));
	json_object_set_new(o, "rate", open ? json_real(c->rate) : json_null());
	json_object_set_new(o, "arrival", open ? json_string(lg_arrival_name(c->arrival)) : json_null());
	json_object_set_new(o, "concurrency",
			    open ? json_null() : json_integer((json_int_t)c->concurrency));
	json_object_set_new(o, "max_conns", open ? json_integer((json_int_t)c->max_conns) : json_null());
	json_object_set_new(o, "path", json_string(c->path));
	json_object_set_new(o, "key", masked_key(c->key));
	json_object_set_new(o, "class", str_or_null(c->cls));
	json_object_set_new(o, "model", str_or_null(c->model));
	json_t *hdrs = json_object();
	for (unsigned i = 0; i < c->nheaders; i++)
		json_object_set_new(hdrs, c->headers[i].name, json_string(c->headers[i].value));
	json_object_set_new(o, "headers", hdrs);
	json_object_set_new(o, "prompt_tokens", json_integer(c->prompt_tokens));
	json_object_set_new(o, "max_tokens", json_integer(c->max_tokens));
	if (c->max_tokens_hi > c->max_tokens)
		json_object_set_new(o, "max_tokens_hi", json_integer(c->max_tokens_hi));
	json_object_set_new(o, "stream", json_boolean(c->stream));
	json_object_set_new(o, "deadline_ms",
			    c->deadline_ms >= 0 ? json_integer(c->deadline_ms) : json_null());
	return o;
}

static json_t *stream_json(const struct lg_report *r, double seconds)
{
	const struct lg_stats *s = r->stats;
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	double per_s = seconds > 0 ? 1.0 / seconds : 0.0;
	uint64_t answered = s->ok + s->rejected + s->other;
	json_object_set_new(o, "name", json_string(r->name));
	json_object_set_new(o, "target", str_or_null(r->target));
	if (r->conf != NULL)
		json_object_set_new(o, "config", conf_json(r->conf));
	json_object_set_new(o, "scheduled", json_integer((json_int_t)(s->sent + s->dropped)));
	json_object_set_new(o, "sent", json_integer((json_int_t)s->sent));
	json_object_set_new(o, "ok", json_integer((json_int_t)s->ok));
	json_object_set_new(o, "rejected_429", json_integer((json_int_t)s->rejected));
	json_object_set_new(o, "other_status", json_integer((json_int_t)s->other));
	json_object_set_new(o, "errors", json_integer((json_int_t)lg_stats_errors(s)));
	json_object_set_new(o, "dropped", json_integer((json_int_t)s->dropped));
	json_object_set_new(o, "unfinished", json_integer((json_int_t)s->unfinished));

	json_t *kinds = json_object();
	for (int i = 0; i < LG_ERR_COUNT; i++)
		json_object_set_new(kinds, err_names[i], json_integer((json_int_t)s->errors[i]));
	json_object_set_new(o, "error_kinds", kinds);

	json_t *status = json_object();
	for (int i = 0; i < LG_STATUS_MAX; i++) {
		if (s->status[i] == 0)
			continue;
		char code[8];
		snprintf(code, sizeof(code), i == 0 ? "other" : "%d", i);
		json_object_set_new(status, code, json_integer((json_int_t)s->status[i]));
	}
	json_object_set_new(o, "status", status);

	json_t *reasons = json_object();
	for (unsigned i = 0; i < s->nreasons; i++)
		json_object_set_new(reasons, s->reasons[i].name,
				    json_integer((json_int_t)s->reasons[i].count));
	if (s->reasons_other > 0)
		json_object_set_new(reasons, "(other)", json_integer((json_int_t)s->reasons_other));
	json_object_set_new(o, "reasons", reasons);

	json_object_set_new(o, "throughput_rps", json_real((double)answered * per_s));
	json_object_set_new(o, "ok_rps", json_real((double)s->ok * per_s));
	json_object_set_new(o, "output_tokens", json_integer((json_int_t)s->tokens));
	json_object_set_new(o, "output_tokens_per_s", json_real((double)s->tokens * per_s));
	json_object_set_new(o, "latency_ms", hist_json(&s->latency, 1.0));
	json_object_set_new(o, "ttfb_ms", hist_json(&s->ttfb, 1.0));
	json_object_set_new(o, "reject_latency_ms", hist_json(&s->reject_latency, 1.0));
	json_object_set_new(o, "retry_after_ms", hist_json(&s->retry_after, 1e6));
	return o;
}

json_t *lg_summary_json(const struct lg_run *run, const struct lg_report *streams, unsigned n)
{
	json_t *root = json_object();
	json_t *r = json_object();
	json_t *list = json_array();
	if (root == NULL || r == NULL || list == NULL) {
		json_decref(root);
		json_decref(r);
		json_decref(list);
		return NULL;
	}
	json_object_set_new(r, "version", json_string(SLUICE_VERSION));
	json_object_set_new(r, "duration_s", json_real(run->duration_s));
	json_object_set_new(r, "warmup_s", json_real(run->warmup_s));
	json_object_set_new(r, "grace_s", json_real(run->grace_s));
	json_object_set_new(r, "elapsed_s", json_real(run->elapsed_s));
	json_object_set_new(r, "seed", json_integer((json_int_t)run->seed));
	json_object_set_new(r, "interrupted", json_boolean(run->interrupted));
	if (run->lag != NULL)
		json_object_set_new(r, "schedule_lag_ms", hist_json(run->lag, 1.0));
	json_object_set_new(root, "run", r);
	for (unsigned i = 0; i < n; i++)
		json_array_append_new(list, stream_json(&streams[i], run->duration_s));
	json_object_set_new(root, "streams", list);
	return root;
}

int lg_summary_write_json(const char *path, const struct lg_run *run,
			  const struct lg_report *streams, unsigned n)
{
	json_t *root = lg_summary_json(run, streams, n);
	if (root == NULL)
		return -ENOMEM;
	int rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
	json_decref(root);
	return rc == 0 ? 0 : -EIO;
}

/* ------------------------------------------------------------------------ */
/* Table                                                                     */

/* A latency in ms with three significant-ish decimals, or "-" with no samples. */
static const char *fmt_ms(char *buf, size_t len, const struct gw_hist *h, double p)
{
	if (gw_hist_count(h) == 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	double ms = (double)(p >= 100 ? gw_hist_max(h) : gw_hist_percentile(h, p)) / 1e6;
	snprintf(buf, len, ms < 100 ? "%.3f" : ms < 10000 ? "%.1f" : "%.0f", ms);
	return buf;
}

static void print_row(FILE *f, int w, const char *name, const struct lg_stats *s, double seconds)
{
	char b[7][24];
	fprintf(f,
		"%-*s %8llu %8llu %6llu %6llu %6llu %6llu %6llu %9.1f %9s %9s %9s %9s %9s %9s %9s\n",
		w, name, (unsigned long long)s->sent, (unsigned long long)s->ok,
		(unsigned long long)s->rejected, (unsigned long long)s->other,
		(unsigned long long)lg_stats_errors(s), (unsigned long long)s->dropped,
		(unsigned long long)s->unfinished, seconds > 0 ? (double)s->ok / seconds : 0.0,
		fmt_ms(b[0], 24, &s->latency, 50), fmt_ms(b[1], 24, &s->latency, 90),
		fmt_ms(b[2], 24, &s->latency, 99), fmt_ms(b[3], 24, &s->latency, 99.9),
		fmt_ms(b[4], 24, &s->latency, 100), fmt_ms(b[5], 24, &s->ttfb, 50),
		fmt_ms(b[6], 24, &s->ttfb, 99));
}

static void print_details(FILE *f, const char *name, const struct lg_stats *s)
{
	if (s->nreasons > 0 || s->reasons_other > 0) {
		fprintf(f, "  %s reasons:", name);
		for (unsigned i = 0; i < s->nreasons; i++)
			fprintf(f, " %s=%llu", s->reasons[i].name,
				(unsigned long long)s->reasons[i].count);
		if (s->reasons_other > 0)
			fprintf(f, " (other)=%llu", (unsigned long long)s->reasons_other);
		fputc('\n', f);
	}
	if (gw_hist_count(&s->retry_after) > 0)
		fprintf(f, "  %s retry hints: %llu, p50 %llu ms, max %llu ms\n", name,
			(unsigned long long)gw_hist_count(&s->retry_after),
			(unsigned long long)gw_hist_percentile(&s->retry_after, 50),
			(unsigned long long)gw_hist_max(&s->retry_after));
	if (lg_stats_errors(s) > 0) {
		fprintf(f, "  %s errors:", name);
		for (int i = 0; i < LG_ERR_COUNT; i++)
			if (s->errors[i] > 0)
				fprintf(f, " %s=%llu", err_names[i], (unsigned long long)s->errors[i]);
		fputc('\n', f);
	}
	bool other = false;
	for (int i = 0; i < LG_STATUS_MAX; i++) {
		if (s->status[i] == 0 || (i >= 200 && i < 300) || i == 429)
			continue;
		if (!other)
			fprintf(f, "  %s other statuses:", name);
		other = true;
		if (i == 0)
			fprintf(f, " ?=%llu", (unsigned long long)s->status[i]);
		else
			fprintf(f, " %d=%llu", i, (unsigned long long)s->status[i]);
	}
	if (other)
		fputc('\n', f);
}

void lg_summary_print(FILE *f, const struct lg_run *run, const struct lg_report *streams,
		      unsigned n)
{
	char b[3][24];
	fprintf(f, "loadgen: %.1f s measured after %.1f s warmup, seed %llu%s", run->duration_s,
		run->warmup_s, (unsigned long long)run->seed,
		run->interrupted ? " (interrupted)" : "");
	if (run->lag != NULL && gw_hist_count(run->lag) > 0)
		fprintf(f, "; schedule lag p50 %s, p99 %s, max %s ms",
			fmt_ms(b[0], 24, run->lag, 50), fmt_ms(b[1], 24, run->lag, 99),
			fmt_ms(b[2], 24, run->lag, 100));
	fputc('\n', f);

	int w = 6;
	for (unsigned i = 0; i < n; i++)
		if ((int)strlen(streams[i].name) > w)
			w = (int)strlen(streams[i].name);
	fprintf(f, "%-*s %8s %8s %6s %6s %6s %6s %6s %9s %9s %9s %9s %9s %9s %9s %9s\n", w,
		"stream", "sent", "ok", "429", "other", "err", "drop", "unfin", "ok/s", "p50_ms",
		"p90_ms", "p99_ms", "p99.9_ms", "max_ms", "ttfb50", "ttfb99");
	for (unsigned i = 0; i < n; i++)
		print_row(f, w, streams[i].name, streams[i].stats, run->duration_s);
	struct lg_stats *total = n > 1 ? malloc(sizeof(*total)) : NULL; /* 66 KiB */
	if (total != NULL) {
		lg_stats_init(total);
		for (unsigned i = 0; i < n; i++)
			lg_stats_merge(total, streams[i].stats);
		print_row(f, w, "total", total, run->duration_s);
		free(total);
	}
	for (unsigned i = 0; i < n; i++)
		print_details(f, streams[i].name, streams[i].stats);
}
