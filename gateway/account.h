/*
 * account.h - what every request cost, recorded once when it ends.
 *
 * A client connection carries one `struct gw_reqrec` for its current
 * request.  The request path only stamps it (monotonic nanoseconds from
 * uv_hrtime(), byte counts, the backend, the status); gw__account_end()
 * turns it into histogram samples, counters and one access-log line, once,
 * whichever way the request ended (response, rejection, client gone).
 *
 * Stages, as SREs read them:
 *   queue wait   request read  -> slot taken (or timeout / cancel / reject)
 *   TTFB         first request byte -> first response byte written
 *   upstream     slot taken -> backend response complete (or failed)
 *   total        first request byte -> response complete
 *   TTFT         first request byte -> first SSE event carrying content
 *                written (sse.h); non-streamed: -> response complete
 *   ITL          between two successive content events of a stream
 *   output tokens  usage.completion_tokens, else the stream's content events
 *
 * Histograms are gw_hist (fixed memory, O(1) record, no allocation per
 * sample); the Prometheus `le` buckets are derived when scraped.  Requests
 * answered by sluice itself have no pool: they are kept under pool "none".
 */
#ifndef SLUICE_GATEWAY_ACCOUNT_H
#define SLUICE_GATEWAY_ACCOUNT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "backends/backend.h"
#include "conf/conf.h"
#include "gateway/alog.h"
#include "gateway/errors.h"
#include "gateway/hist.h"

struct backend;
struct gw_conn;

enum gw_qout {
	GW_QOUT_DISPATCHED = 0,
	GW_QOUT_TIMEOUT,
	GW_QOUT_CANCELLED,
	GW_QOUT_REJECTED,
	GW_QOUT_COUNT
};

extern const char *const gw_qout_names[GW_QOUT_COUNT];

/* The current request of a connection. */
struct gw_reqrec {
	uint64_t t_start;		/* first byte read */
	uint64_t t_ready;		/* fully read */
	uint64_t t_dispatch;		/* slot taken; 0: never */
	uint64_t t_first_byte;		/* first response byte written; 0: none */
	uint64_t t_upstream_end;	/* backend done (or failed); 0: no backend */
	uint64_t bytes_in, bytes_out;
	double tokens_estimated;	/* charged at admission */
	double tokens_reported;		/* from the response's usage; < 0: none */
	uint64_t t_first_token;		/* first content event written (sse.h); 0: none */
	uint64_t t_last_token;		/* latest content event written; 0: none */
	uint64_t content_events;	/* of a stream */
	double tokens_output;		/* usage.completion_tokens, else content events; < 0: none */
	/* Where it was sent.  The pool is held (backend_pool_hold()) until
	 * the connection's next request or its close, since a reload may
	 * retire it; the backend's name is copied: a backend may be retired
	 * and freed before the request's line is written. */
	struct backend_pool *pool;	/* NULL: not sent */
	char backend[BACKEND_NAME_MAX];
	uint8_t retries;		/* resent to another backend after a failed connect */
	uint16_t status;		/* 499: the client left first */
	uint8_t reason;			/* enum gw_reason, GW_R_COUNT when none */
	bool active;
	char traceparent[56];		/* W3C, sent upstream and logged */
};

struct gw_tenant_acct {
	uint64_t requests[CONF_CLASS_COUNT];
	uint64_t rejections[GW_R_COUNT];	/* answered by sluice, by reason */
	double tokens_estimated, tokens_reported;
	uint64_t *gpu_ns;		/* [npools]: slot time held for the tenant */
	struct gw_hist *duration;	/* [CONF_CLASS_COUNT], only with tenant_histograms */
};

#define GW_ACCOUNT_WINDOW_MS 30000	/* live view: the last two windows (~1 min) */

/* The histograms kept for each class and pool. */
struct gw_cp_hists {
	struct gw_hist ttfb, upstream, request;
	struct gw_hist ttft, itl, otokens;	/* token level */
};

struct gw_account {
	const struct conf *conf;
	size_t npools, ntenants;
	bool histograms;
	struct gw_hist queue_wait[CONF_CLASS_COUNT][GW_QOUT_COUNT];
	struct gw_cp_hists *cp;		/* [class][pool], pool npools = "none" */
	uint64_t *codes;		/* [class + none][pool + none][status - 100] */
	uint64_t rejections[CONF_CLASS_COUNT + 1][GW_R_COUNT];
	struct gw_tenant_acct *tenants;
	struct gw_hist window[CONF_CLASS_COUNT][2];	/* request duration, live view */
	/* The same for the requests a backend answered only: those sluice
	 * answered itself (rejections, timeouts in the queue) are fast and
	 * would hide a slow backend in an incident. */
	struct gw_hist served[CONF_CLASS_COUNT][2];
	int window_cur;
	uint64_t window_start_ms;
	struct gw_alog alog;
	struct gw_buf line;		/* scratch for one access-log line */
	long stamp_sec;			/* second of `stamp` */
	char stamp[32];			/* "2026-11-23T11:30:45." */
};

/* Allocate for `c` (which must outlive it) and open the access log.
 * Returns 0 or a negative errno (logged). */
int gw__account_init(struct gw_account *a, const struct conf *c, size_t ntenants, uv_loop_t *loop);

/*
 * A reload of the same shape, in two steps so that a refused reload
 * changes nothing.  Prepare opens the access log of `c` into *fresh (always
 * reopened, which is what log rotation needs; *reopen is false when a write
 * is in flight and the path is the same, then the old file stays); it
 * returns 0 or a negative errno.  Commit switches to `c` and cannot fail.
 * A prepared log that is not committed must be closed with gw__alog_close().
 */
int gw__account_prepare(struct gw_account *a, const struct conf *c, uv_loop_t *loop,
		       struct gw_alog *fresh, bool *reopen);
void gw__account_commit(struct gw_account *a, const struct conf *c, struct gw_alog *fresh, bool reopen);

/*
 * The per-tenant counters across a reload that adds, removes or reorders
 * tenants (queue_tenants_prepare() says how: from[i] is the index before
 * of the i-th tenant after, or QUEUE_TENANT_NEW).  Prepare allocates the
 * new array, and the counters of new tenants, into *fresh; it returns 0 or
 * -ENOMEM, changing nothing.  Commit moves the counters of kept tenants to
 * their new index (they go on counting under their name), frees those of
 * removed tenants (their series leave /metrics) and cannot fail.  Discard
 * frees a prepared array that is not committed.  A request of a removed
 * tenant that ends later is recorded everywhere but under its tenant.
 */
struct gw_account_tenants {
	struct gw_tenant_acct *v;
	size_t n;
};
int gw__account_tenants_prepare(const struct gw_account *a, const size_t *from, size_t n,
				struct gw_account_tenants *fresh);
void gw__account_tenants_commit(struct gw_account *a, const size_t *from, struct gw_account_tenants *fresh);
void gw__account_tenants_discard(struct gw_account_tenants *fresh);

/*
 * The per-pool counters across a reload that adds, removes or reorders
 * pools (conf_pool_map(): from[i] is the index before of the i-th pool
 * after, or CONF_POOL_NEW).  Prepare allocates the new [class][pool]
 * arrays and a gpu_ns array for each of the `ntenants` tenants the reload
 * leaves (after gw__account_tenants_prepare()); it returns 0 or -ENOMEM,
 * changing nothing.  Commit, after gw__account_tenants_commit(), moves the
 * counters of kept pools to their new index (they go on counting under
 * their name), drops those of removed pools and cannot fail.  Discard
 * frees a prepared set that is not committed.
 */
struct gw_account_pools {
	struct gw_cp_hists *cp;
	uint64_t *codes;
	uint64_t **gpu_ns;		/* [ntenants][npools] */
	size_t npools, ntenants;
};
int gw__account_pools_prepare(const struct gw_account *a, size_t npools, size_t ntenants,
			      struct gw_account_pools *fresh);
void gw__account_pools_commit(struct gw_account *a, const size_t *from, struct gw_account_pools *fresh);
void gw__account_pools_discard(struct gw_account_pools *fresh);

/* Flush the access log synchronously and free everything. */
void gw__account_finish(struct gw_account *a);

/* Once a second: rotate the live windows, flush the access log. */
void gw__account_tick(struct gw_account *a, uint64_t now_ms);

/* A request of class k left the queue (or never entered it) this way. */
void gw__account_queue(struct gw_account *a, enum conf_class k, enum gw_qout out, uint64_t wait_ns);

/* The request of c wrote a content event of its stream at `now`: the gap
 * since the previous one is an inter-token latency sample. */
void gw__account_token(struct gw_account *a, struct gw_conn *c, uint64_t now);

/* The request of c is over: record it everywhere, once. */
void gw__account_end(struct gw_account *a, struct gw_conn *c);

/* Index helpers for the [class][pool] arrays. */
static inline size_t gw__account_cp(const struct gw_account *a, int k, size_t pool)
{
	return (size_t)k * (a->npools + 1) + pool;
}

#endif
