/*
 * promtext.c - a bounded reader of Prometheus' text format, for three
 * gauges; see promtext.h.
 *
 * A sample line is `name[{labels}] value [timestamp]`; a label value is a
 * double-quoted string with \\, \" and \n escapes, which may hold `}` and
 * spaces, so the labels are skipped quote-aware.  Comment lines (# HELP,
 * # TYPE) and blank lines are skipped.  Every index is checked against the
 * line's end: the input is not NUL-terminated.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backends/promtext.h"

enum series { RUNNING, WAITING, KV, KV_OLD, NSERIES };

static const struct {
	const char *name;
	size_t len;
} series[NSERIES] = {
	[RUNNING] = { "vllm:num_requests_running", sizeof("vllm:num_requests_running") - 1 },
	[WAITING] = { "vllm:num_requests_waiting", sizeof("vllm:num_requests_waiting") - 1 },
	[KV] = { "vllm:kv_cache_usage_perc", sizeof("vllm:kv_cache_usage_perc") - 1 },
	[KV_OLD] = { "vllm:gpu_cache_usage_perc", sizeof("vllm:gpu_cache_usage_perc") - 1 },
};

/* Past `{...}` starting at s[i] == '{': the index after '}', or len when
 * it does not close on this line. */
static size_t skip_labels(const char *s, size_t i, size_t len)
{
	bool quoted = false;
	for (i++; i < len; i++) {
		char ch = s[i];
		if (quoted) {
			if (ch == '\\')
				i++;	/* the escaped byte; i < len is checked by the loop */
			else if (ch == '"')
				quoted = false;
		} else if (ch == '"') {
			quoted = true;
		} else if (ch == '}') {
			return i + 1;
		}
	}
	return len;
}

/* The value of a sample line s[0..len) of one of the series, or -1 when
 * the line is not one or its value is not a finite number >= 0. */
static double sample_value(const char *s, size_t len, enum series *which)
{
	size_t i = 0;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i >= len || s[i] == '#')
		return -1;
	size_t name = i;
	while (i < len && s[i] != '{' && s[i] != ' ' && s[i] != '\t')
		i++;
	size_t nlen = i - name;
	int k;
	for (k = 0; k < NSERIES; k++)
		if (nlen == series[k].len && memcmp(s + name, series[k].name, nlen) == 0)
			break;
	if (k == NSERIES)
		return -1;
	if (i < len && s[i] == '{') {
		i = skip_labels(s, i, len);
		if (i >= len)
			return -1;
	}
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	size_t v = i;
	while (i < len && s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
		i++;
	char num[64];
	if (i == v || i - v >= sizeof(num))
		return -1;
	memcpy(num, s + v, i - v);
	num[i - v] = '\0';
	char *end;
	double d = strtod(num, &end);
	if (*end != '\0' || !isfinite(d) || d < 0)
		return -1;
	*which = (enum series)k;
	return d;
}

int backend_promtext_vllm(const char *text, size_t len, struct backend_vllm_load *out)
{
	double sum[NSERIES] = { 0 };
	unsigned n[NSERIES] = { 0 };
	if (len > BACKEND_PROMTEXT_MAX)
		len = BACKEND_PROMTEXT_MAX;
	size_t at = 0;
	while (at < len) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - text) : len;
		enum series which;
		double d = sample_value(text + at, end - at, &which);
		if (d >= 0 && n[which] < 1u << 20) {
			sum[which] += d;
			n[which]++;
		}
		at = end + 1;
	}
	if (n[RUNNING] == 0 || n[WAITING] == 0)
		return -ENOENT;
	out->running = sum[RUNNING];
	out->waiting = sum[WAITING];
	/* Usage is a share of each engine's own cache: their mean, not sum. */
	int kv = n[KV] ? KV : KV_OLD;
	out->kv_usage = n[kv] ? sum[kv] / n[kv] : -1;
	if (out->kv_usage > 1)
		out->kv_usage = 1;
	return 0;
}
