/*
 * summary.h - what loadgen measures per stream, and how it reports it.
 *
 * One struct lg_stats per stream holds counters and histograms of the
 * requests whose scheduled send time fell inside the measured window (after
 * warmup, before the end); nothing else is counted.  Every such request ends
 * in exactly one of: ok (2xx), rejected (429), other (any other status), an
 * error (transport failure, by kind), dropped (open loop: due while
 * max_conns connections were busy) or unfinished (still in flight when the
 * grace period after the run ran out), so
 *
 *   scheduled = sent + dropped,  sent = ok + rejected + other + errors + unfinished.
 *
 * Times are recorded in nanoseconds and reported in milliseconds.  Latency
 * and TTFB run from the *scheduled* send time, so a late send (the server,
 * the network or loadgen itself falling behind) shows up in them instead of
 * being hidden (no coordinated omission).
 *
 * The stats are plain data (large: four histograms, about 66 KiB); callers
 * allocate them.  The report functions only read them.
 */
#ifndef SLUICE_BENCH_LOADGEN_SUMMARY_H
#define SLUICE_BENCH_LOADGEN_SUMMARY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/loadgen/spec.h"
#include "gateway/hist.h"

enum lg_err {
	LG_ERR_CONNECT = 0,	/* the TCP connect failed (refused, unreachable, no fd) */
	LG_ERR_RESET,		/* read or write failed (reset, broken pipe) */
	LG_ERR_CLOSED,		/* closed before any byte of the response */
	LG_ERR_TRUNCATED,	/* closed inside the response (e.g. chunked without its last chunk) */
	LG_ERR_PARSE,		/* the response is not valid HTTP/1.1 */
	LG_ERR_COUNT
};

#define LG_REASONS_MAX 32
#define LG_REASON_LEN 48
#define LG_STATUS_MAX 600

struct lg_reason {
	char name[LG_REASON_LEN];
	uint64_t count;
};

struct lg_stats {
	uint64_t sent;
	uint64_t ok;
	uint64_t rejected;		/* 429 */
	uint64_t other;			/* any other status */
	uint64_t errors[LG_ERR_COUNT];
	uint64_t dropped;
	uint64_t unfinished;
	uint64_t tokens;		/* output tokens of ok responses */
	uint64_t status[LG_STATUS_MAX];	/* by code; codes out of range count at [0] */
	struct lg_reason reasons[LG_REASONS_MAX];	/* x-sluice-reject-reason values */
	unsigned nreasons;
	uint64_t reasons_other;		/* reasons beyond LG_REASONS_MAX distinct ones */
	struct gw_hist latency;		/* ok: scheduled send -> last byte, ns */
	struct gw_hist ttfb;		/* ok: scheduled send -> first byte (SSE: first event), ns */
	struct gw_hist reject_latency;	/* non-2xx responses: scheduled send -> last byte, ns */
	struct gw_hist retry_after;	/* retry-after-ms hints (or retry-after x 1000), ms */
};

/* Empty stats. */
void lg_stats_init(struct lg_stats *s);

/* Add everything in `src` to `dst` (counters, reasons by name, histograms). */
void lg_stats_merge(struct lg_stats *dst, const struct lg_stats *src);

/* Count one response carrying reject reason `name` (`len` bytes, cut to fit). */
void lg_stats_add_reason(struct lg_stats *s, const char *name, size_t len);

/* Sum of errors over every kind. */
uint64_t lg_stats_errors(const struct lg_stats *s);

/* "connect", "reset", ... */
const char *lg_err_name(enum lg_err e);

/* One stream as the report sees it. */
struct lg_report {
	const char *name;
	const char *target;			/* HOST:PORT it was sent to */
	const struct lg_stream_conf *conf;	/* NULL: no config echo (totals) */
	const struct lg_stats *stats;
};

/* The run as a whole. */
struct lg_run {
	double duration_s;		/* measured window: throughput divides by this */
	double warmup_s;
	double grace_s;
	double elapsed_s;		/* wall time from start to the last response or give-up */
	uint64_t seed;
	bool interrupted;		/* SIGINT shortened the measured window */
	const struct gw_hist *lag;	/* open loop: actual - scheduled send, ns */
};

/*
 * The JSON summary: {"run": {...}, "streams": [{...}, ...]}, documented in
 * loadgen --help.  Returns a new reference, or NULL if out of memory.
 */
json_t *lg_summary_json(const struct lg_run *run, const struct lg_report *streams, unsigned n);

/* Write lg_summary_json() to `path`, indented.  0 or a negative errno. */
int lg_summary_write_json(const char *path, const struct lg_run *run,
			  const struct lg_report *streams, unsigned n);

/*
 * The table: a run line, one row per stream (and a merged "total" row when
 * there are several), then a line per stream for reasons and error kinds
 * that occurred.
 */
void lg_summary_print(FILE *f, const struct lg_run *run, const struct lg_report *streams,
		      unsigned n);

#endif
