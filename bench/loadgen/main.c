/*
 * loadgen: an open-loop, multi-stream HTTP/1.1 load generator for sluice
 * and its backends (one libuv loop, llhttp, no allocation per request).
 *
 * Streams.  Each --stream is one kind of request (same bytes every time,
 * built once at start) sent either open loop, on a fixed or Poisson
 * schedule whatever happened to earlier requests, or closed loop, by N
 * connections that each send the next request when the previous one ended.
 * Open loop is what users do to a gateway; closed loop is what a batch job
 * does.  See schedule.h for the arrival processes.
 *
 * Time.  The run starts at t0; requests scheduled before t_warm = t0 +
 * warmup are sent but not measured; sending stops at t_end = t_warm +
 * duration.  Then loadgen waits up to --grace seconds for requests in
 * flight; those still unanswered count as `unfinished` and every connection
 * is closed.  Latency is measured from each request's scheduled time, so a
 * request that left late (all connections busy, or loadgen itself behind)
 * carries its delay.  uv_timer only has millisecond resolution, so on Linux
 * the schedule runs on a timerfd (nanosecond expiry, polled by the loop);
 * when it fires, every request whose time has come is sent, and the gap
 * between the actual send and the scheduled time is recorded as the run's
 * schedule lag, so a user can see when loadgen is the bottleneck.
 *
 * Connections.  Each stream keeps its own keep-alive connections, one
 * request at a time on each.  An open-loop request that comes due takes an
 * idle connection (most recently used first), else opens a new one up to the
 * stream's max_conns, else it is counted as dropped: it is never queued
 * behind a busy connection, which would hide the delay.  A connection is a
 * struct conn that owns its uv_tcp_t; it is freed only in that handle's
 * close callback, so it stays valid for the whole of any callback stack that
 * began while it was open (conn_close() only starts the close).  Its state:
 *
 *   CONNECTING ──connected──> OPEN ──(close / error / end)──> CLOSING ─> freed
 *
 * and, while OPEN, it either carries a request (has_req: written or being
 * written, response being parsed) or sits in the stream's idle list.  A
 * connection is opened only for a request, so a CONNECTING one always
 * carries one, written as soon as the connect completes.
 *
 * Failures.  Every transport failure of a connection that carries a request
 * goes through conn_fail(): the request is counted as an error of one kind
 * (summary.h), the connection closes, and a closed-loop stream schedules
 * that slot's next request after a short backoff.  A keep-alive connection
 * the server closes while idle is simply forgotten.
 *
 * Memory.  Request bytes live in the stream and are written by every
 * connection without copying; responses are parsed straight out of one
 * shared read buffer (the loop reads one socket at a time and parses before
 * the next read), and bodies are only scanned for token counts, never kept.
 */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/timerfd.h>
#endif

#include <jansson.h>
#include <llhttp.h>
#include <uv.h>

#include "bench/loadgen/schedule.h"
#include "bench/loadgen/spec.h"
#include "bench/loadgen/summary.h"
#include "bench/loadgen/tokens.h"
#include "gateway/hist.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "unknown"
#endif

#define LOADGEN_MAGIC 0x6c67656eu	/* "lgen" */
#define STREAM_MAGIC 0x6c677374u	/* "lgst" */
#define CONN_MAGIC 0x6c67636eu		/* "lgcn" */
#define PROBE_MAGIC 0x6c677072u		/* "lgpr" */

#define STREAMS_MAX 64
#define READ_BUF_SIZE ((size_t)64 << 10)
#define HNAME_MAX 32			/* longest response header name we look at */
#define HVALUE_MAX 64			/* ...and its value */
#define RESTART_BACKOFF_NS ((uint64_t)10 * 1000 * 1000)
#define PROBE_TIMEOUT_MS 3000
#define NS_PER_S 1e9

#define CHECK_OBJ(p, m)                                                                    \
	do {                                                                               \
		if ((p) == NULL || (p)->magic != (m)) {                                    \
			fprintf(stderr, "loadgen: %s:%d: bad object %s (magic mismatch)\n", \
				__FILE__, __LINE__, #p);                                   \
			abort();                                                           \
		}                                                                          \
	} while (0)

struct target {
	char hostport[280];		/* as given, for the Host field and the report */
	struct sockaddr_storage addr;
	int probe_status;		/* 0 reached, 1 pending, < 0 uv error */
};

enum conn_state { C_CONNECTING, C_OPEN, C_CLOSING };

struct loadgen;
struct stream;

struct conn {
	uint32_t magic;
	enum conn_state state;
	uv_tcp_t tcp;
	uv_connect_t connect_req;
	uv_write_t write_req;
	llhttp_t parser;
	struct stream *st;
	struct conn *prev, *next;		/* lg->conns: every conn not yet freed */
	struct conn *idle_prev, *idle_next;	/* st->idle while idle */
	bool idle;
	bool writing;				/* write_req is in flight */
	/* The request this connection carries, if any. */
	bool has_req;
	bool measured;
	bool got_byte, got_body, done;
	uint64_t sched_ns, first_byte_ns, first_body_ns, now_ns;
	/* Response fields we keep (copied: llhttp hands over pieces). */
	char hname[HNAME_MAX];
	char hvalue[HVALUE_MAX];
	char reason[LG_REASON_LEN];
	uint8_t hname_len, hvalue_len, reason_len;
	bool hname_long, hvalue_long;
	long retry_ms;				/* < 0: no hint */
	struct lg_tokscan tok;
};

struct stream {
	uint32_t magic;
	struct loadgen *lg;
	struct lg_stream_conf conf;
	char name[72];
	const struct target *target;
	/* The request bytes, written by every conn: one variant per value
	 * of max_tokens (one, or up to LG_VARIANTS_MAX over its range),
	 * drawn per request. */
	char *req[LG_VARIANTS_MAX];
	size_t req_len[LG_VARIANTS_MAX];
	unsigned nreq;
	uint64_t rng;
	bool open;				/* open loop (rate) rather than closed */
	struct lg_sched sched;			/* open loop */
	uint64_t origin;			/* open loop: schedule offsets count from here */
	uint64_t *restart;			/* closed loop: ring of slot restart times */
	unsigned restart_head, restart_n;
	unsigned nconns;			/* conns not yet freed */
	struct conn *idle;			/* idle list, most recently used first */
	unsigned reported;			/* error kinds already printed (bit mask) */
	struct lg_stats *stats;
};

struct options {
	const char *target;
	const char *json_path;
	double duration_s, warmup_s, grace_s;
	uint64_t seed;
};

struct loadgen {
	uint32_t magic;
	uv_loop_t *loop;
	struct options opt;
	llhttp_settings_t settings;
	struct stream streams[STREAMS_MAX];
	unsigned nstreams;
	struct target targets[STREAMS_MAX + 1];
	unsigned ntargets;
	struct conn *conns;
	unsigned inflight;			/* conns with has_req */
	uint64_t t0, t_warm, t_end, t_done;
	uint64_t armed_due;			/* when the schedule timer fires next */
	bool sending, stopping, shut, interrupted;
	int tfd;				/* timerfd, or -1: uv_timer instead */
	uv_poll_t tfd_poll;
	uv_timer_t timer;
	uv_timer_t grace;
	uv_signal_t sigint, sigterm;
	struct gw_hist lag;
	char rbuf[READ_BUF_SIZE];
	unsigned probes_pending;
};

static void conn_close(struct conn *c);
static void lg_check_done(struct loadgen *lg);

/* ------------------------------------------------------------------------ */
/* Schedule timer                                                            */

static void on_timer(uv_timer_t *t);

/* Fire the schedule at uv_hrtime() >= due (as closely as the clock allows). */
static void ticker_arm(struct loadgen *lg, uint64_t due)
{
	lg->armed_due = due;
	uint64_t now = uv_hrtime();
	uint64_t delta = due > now ? due - now : 1; /* 0 would disarm a timerfd */
#ifdef __linux__
	if (lg->tfd >= 0) {
		struct itimerspec its = {
			.it_value = {.tv_sec = (time_t)(delta / 1000000000u),
				     .tv_nsec = (long)(delta % 1000000000u)},
		};
		if (timerfd_settime(lg->tfd, 0, &its, NULL) == 0)
			return;
		/* cannot happen with a valid fd; fall back rather than stall */
	}
#endif
	uv_timer_start(&lg->timer, on_timer, (delta + 999999) / 1000000, 0);
}

static void ticker_stop(struct loadgen *lg)
{
	lg->armed_due = UINT64_MAX;
#ifdef __linux__
	if (lg->tfd >= 0) {
		struct itimerspec its = {{0, 0}, {0, 0}};
		timerfd_settime(lg->tfd, 0, &its, NULL);
	}
#endif
	uv_timer_stop(&lg->timer);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */

static void on_close(uv_handle_t *h)
{
	struct conn *c = h->data;
	CHECK_OBJ(c, CONN_MAGIC);
	struct loadgen *lg = c->st->lg;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		lg->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->st->nconns--;
	c->magic = 0;
	free(c);
}

static void idle_remove(struct conn *c)
{
	struct stream *st = c->st;
	if (!c->idle)
		return;
	if (c->idle_prev != NULL)
		c->idle_prev->idle_next = c->idle_next;
	else
		st->idle = c->idle_next;
	if (c->idle_next != NULL)
		c->idle_next->idle_prev = c->idle_prev;
	c->idle_prev = c->idle_next = NULL;
	c->idle = false;
}

static void idle_push(struct conn *c)
{
	struct stream *st = c->st;
	c->idle_prev = NULL;
	c->idle_next = st->idle;
	if (st->idle != NULL)
		st->idle->idle_prev = c;
	st->idle = c;
	c->idle = true;
}

static void conn_close(struct conn *c)
{
	if (c->state == C_CLOSING)
		return;
	idle_remove(c);
	c->state = C_CLOSING;
	uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void restart_push(struct stream *st, uint64_t due)
{
	if (st->restart_n == st->conf.concurrency)
		return; /* cannot happen: one entry per slot at most */
	st->restart[(st->restart_head + st->restart_n++) % st->conf.concurrency] = due;
	if (due < st->lg->armed_due && st->lg->sending)
		ticker_arm(st->lg, due);
}

static void report_error(struct stream *st, enum lg_err kind, const char *detail)
{
	if (st->reported & (1u << kind))
		return;
	st->reported |= 1u << kind;
	fprintf(stderr, "loadgen: %s: %s error: %s (further ones are only counted)\n", st->name,
		lg_err_name(kind), detail);
}

/* The request this connection carries failed: count it, close, go on. */
static void conn_fail(struct conn *c, enum lg_err kind, const char *detail)
{
	struct stream *st = c->st;
	struct loadgen *lg = st->lg;
	if (c->state == C_CLOSING)
		return;
	if (c->has_req) {
		c->has_req = false;
		lg->inflight--;
		if (c->measured)
			st->stats->errors[kind]++;
		report_error(st, kind, detail);
		uint64_t now = uv_hrtime();
		if (!st->open && lg->sending && now < lg->t_end)
			restart_push(st, now + RESTART_BACKOFF_NS);
	}
	conn_close(c);
	lg_check_done(lg);
}

static void on_write(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	CHECK_OBJ(c, CONN_MAGIC);
	c->writing = false;
	if (status < 0 && status != UV_ECANCELED)
		conn_fail(c, LG_ERR_RESET, uv_strerror(status));
}

/* xorshift64: which variant a request is; cheap, and the same run to run. */
static unsigned pick_variant(struct stream *st)
{
	if (st->nreq == 1)
		return 0;
	st->rng ^= st->rng << 13;
	st->rng ^= st->rng >> 7;
	st->rng ^= st->rng << 17;
	return (unsigned)(st->rng % st->nreq);
}

static void conn_write(struct conn *c)
{
	unsigned v = pick_variant(c->st);
	uv_buf_t buf = uv_buf_init(c->st->req[v], (unsigned)c->st->req_len[v]);
	c->write_req.data = c;
	int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
	if (rc < 0) {
		conn_fail(c, LG_ERR_RESET, uv_strerror(rc));
		return;
	}
	c->writing = true;
}

/* Give the connection a request scheduled at `sched`; written now or on connect. */
static void conn_begin(struct conn *c, uint64_t sched, bool measured)
{
	c->has_req = true;
	c->measured = measured;
	c->sched_ns = sched;
	c->got_byte = c->got_body = c->done = false;
	c->hname_len = c->hvalue_len = c->reason_len = 0;
	c->hname_long = c->hvalue_long = false;
	c->retry_ms = -1;
	lg_tokscan_init(&c->tok);
	c->st->lg->inflight++;
	if (c->state == C_OPEN)
		conn_write(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	CHECK_OBJ(c, CONN_MAGIC);
	/* One buffer for every connection: each read is parsed before the next. */
	buf->base = c->st->lg->rbuf;
	buf->len = READ_BUF_SIZE;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_connect(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	CHECK_OBJ(c, CONN_MAGIC);
	if (c->state == C_CLOSING)
		return;
	if (status < 0) {
		conn_fail(c, LG_ERR_CONNECT, uv_strerror(status));
		return;
	}
	c->state = C_OPEN;
	uv_tcp_nodelay(&c->tcp, 1);
	int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
	if (rc < 0) {
		conn_fail(c, LG_ERR_RESET, uv_strerror(rc));
		return;
	}
	if (c->has_req)
		conn_write(c);
	else
		conn_close(c); /* opened for a request that is gone (end of run) */
}

/* Open a connection for the stream; NULL (and *err) if it failed at once. */
static struct conn *conn_open(struct stream *st, int *err)
{
	struct loadgen *lg = st->lg;
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		*err = UV_ENOMEM;
		return NULL;
	}
	int rc = uv_tcp_init(lg->loop, &c->tcp);
	if (rc < 0) {
		free(c);
		*err = rc;
		return NULL;
	}
	c->magic = CONN_MAGIC;
	c->st = st;
	c->state = C_CONNECTING;
	c->tcp.data = c;
	c->connect_req.data = c;
	llhttp_init(&c->parser, HTTP_RESPONSE, &lg->settings);
	c->parser.data = c;
	c->next = lg->conns;
	if (lg->conns != NULL)
		lg->conns->prev = c;
	lg->conns = c;
	st->nconns++;
	rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&st->target->addr,
			    on_connect);
	if (rc < 0) {
		conn_close(c);
		*err = rc;
		return NULL;
	}
	return c;
}

/*
 * A request of `st` is due: scheduled at `sched` (closed loop: now), sent
 * at `now`.  `c` is the connection to use (closed loop reuses its own), or
 * NULL to take an idle one or open one.
 */
static void stream_issue(struct stream *st, uint64_t sched, uint64_t now, struct conn *c)
{
	struct loadgen *lg = st->lg;
	bool measured = sched >= lg->t_warm && sched < lg->t_end;
	if (st->open && measured)
		gw_hist_record(&lg->lag, now > sched ? now - sched : 0);
	if (c == NULL && st->idle != NULL) {
		c = st->idle;
		idle_remove(c);
	}
	if (c == NULL) {
		if (st->open && st->nconns >= st->conf.max_conns) {
			if (measured)
				st->stats->dropped++;
			return;
		}
		int err = 0;
		c = conn_open(st, &err);
		if (c == NULL) {
			if (measured) {
				st->stats->sent++;
				st->stats->errors[LG_ERR_CONNECT]++;
			}
			report_error(st, LG_ERR_CONNECT, uv_strerror(err));
			if (!st->open)
				restart_push(st, now + RESTART_BACKOFF_NS);
			return;
		}
	}
	if (measured)
		st->stats->sent++;
	conn_begin(c, sched, measured);
}

static void record_response(struct conn *c, uint64_t now)
{
	struct lg_stats *s = c->st->stats;
	unsigned status = llhttp_get_status_code(&c->parser);
	s->status[status < LG_STATUS_MAX ? status : 0]++;
	uint64_t lat = now > c->sched_ns ? now - c->sched_ns : 0;
	if (status >= 200 && status < 300) {
		s->ok++;
		gw_hist_record(&s->latency, lat);
		uint64_t first = c->st->conf.stream && c->got_body ? c->first_body_ns : c->first_byte_ns;
		gw_hist_record(&s->ttfb, first > c->sched_ns ? first - c->sched_ns : 0);
		s->tokens += lg_tokscan_tokens(&c->tok, c->st->conf.stream);
	} else {
		if (status == 429)
			s->rejected++;
		else
			s->other++;
		gw_hist_record(&s->reject_latency, lat);
	}
	if (c->reason_len > 0)
		lg_stats_add_reason(s, c->reason, c->reason_len);
	if (c->retry_ms >= 0)
		gw_hist_record(&s->retry_after, (uint64_t)c->retry_ms);
}

/* The response is complete; `reuse` says whether the connection may carry another. */
static void conn_response_done(struct conn *c, uint64_t now, bool reuse)
{
	struct stream *st = c->st;
	struct loadgen *lg = st->lg;
	c->has_req = false;
	lg->inflight--;
	if (c->measured)
		record_response(c, now);
	/* A response that came before all of the request was written (an early
	 * 413 or 429) leaves the rest of it unsent: the connection is done. */
	if (c->writing)
		reuse = false;
	/* Closed loop: this slot sends its next request at once. */
	bool next = !st->open && lg->sending && now < lg->t_end;
	if (reuse && next) {
		stream_issue(st, now, now, c);
	} else if (reuse && st->open && lg->sending) {
		idle_push(c);
	} else {
		conn_close(c);
		if (next)
			stream_issue(st, now, now, NULL);
	}
	lg_check_done(lg);
}

static void conn_feed(struct conn *c, const char *p, size_t n, uint64_t now)
{
	if (!c->has_req) {
		conn_close(c); /* bytes nobody asked for: this connection is unusable */
		return;
	}
	if (!c->got_byte) {
		c->got_byte = true;
		c->first_byte_ns = now;
	}
	c->now_ns = now;
	llhttp_errno_t e = llhttp_execute(&c->parser, p, n);
	if (e == HPE_OK)
		return;
	if (e == HPE_PAUSED && c->done) {
		size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
		llhttp_resume(&c->parser);
		conn_response_done(c, now, used == n && llhttp_should_keep_alive(&c->parser));
		return;
	}
	const char *why = llhttp_get_error_reason(&c->parser);
	conn_fail(c, LG_ERR_PARSE, why != NULL ? why : llhttp_errno_name(e));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	CHECK_OBJ(c, CONN_MAGIC);
	if (nread == 0 || c->state == C_CLOSING)
		return;
	uint64_t now = uv_hrtime();
	if (nread > 0) {
		conn_feed(c, buf->base, (size_t)nread, now);
		return;
	}
	if (!c->has_req) {
		conn_close(c); /* an idle keep-alive connection the server closed */
		return;
	}
	if (nread != UV_EOF) {
		conn_fail(c, LG_ERR_RESET, uv_strerror((int)nread));
		return;
	}
	if (!c->got_byte) {
		conn_fail(c, LG_ERR_CLOSED, "connection closed before the response");
		return;
	}
	/* A body delimited by the close ends here; anything else was cut short. */
	llhttp_errno_t e = llhttp_finish(&c->parser);
	if (e == HPE_PAUSED)
		llhttp_resume(&c->parser);
	if (c->done)
		conn_response_done(c, now, false);
	else
		conn_fail(c, LG_ERR_TRUNCATED, "connection closed inside the response");
}

/* ------------------------------------------------------------------------ */
/* llhttp callbacks                                                          */

static struct conn *conn_of(llhttp_t *p)
{
	struct conn *c = p->data;
	CHECK_OBJ(c, CONN_MAGIC);
	return c;
}

static int on_message_begin(llhttp_t *p)
{
	struct conn *c = conn_of(p);
	return c->has_req ? 0 : -1; /* a response nobody asked for */
}

/* Append a piece of a header name or value; what does not fit is cut off and flagged. */
static void append(char *dst, uint8_t *len, bool *too_long, size_t cap, const char *at,
		   size_t n)
{
	if (*len + n > cap) {
		n = cap - *len;
		*too_long = true;
	}
	memcpy(dst + *len, at, n);
	*len = (uint8_t)(*len + n);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
	struct conn *c = conn_of(p);
	append(c->hname, &c->hname_len, &c->hname_long, sizeof(c->hname), at, n);
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
	struct conn *c = conn_of(p);
	append(c->hvalue, &c->hvalue_len, &c->hvalue_long, sizeof(c->hvalue), at, n);
	return 0;
}

static bool name_is(const struct conn *c, const char *lit)
{
	return !c->hname_long && c->hname_len == strlen(lit) &&
	       strncasecmp(c->hname, lit, c->hname_len) == 0;
}

/* A non-negative integer value, or -1. */
static long value_number(const struct conn *c)
{
	if (c->hvalue_long || c->hvalue_len == 0 || c->hvalue_len > 12)
		return -1;
	long v = 0;
	for (unsigned i = 0; i < c->hvalue_len; i++) {
		if (c->hvalue[i] < '0' || c->hvalue[i] > '9')
			return -1;
		v = v * 10 + (c->hvalue[i] - '0');
	}
	return v;
}

static int on_header_value_complete(llhttp_t *p)
{
	struct conn *c = conn_of(p);
	if (name_is(c, "x-sluice-reject-reason")) {
		size_t n = c->hvalue_len; /* a longer value is counted under its first bytes */
		if (n >= LG_REASON_LEN)
			n = LG_REASON_LEN - 1;
		memcpy(c->reason, c->hvalue, n);
		c->reason_len = (uint8_t)n;
	} else if (name_is(c, "retry-after-ms")) {
		c->retry_ms = value_number(c);
	} else if (name_is(c, "retry-after") && c->retry_ms < 0) {
		long s = value_number(c);
		c->retry_ms = s >= 0 && s < 1000000 ? s * 1000 : -1;
	}
	c->hname_len = c->hvalue_len = 0;
	c->hname_long = c->hvalue_long = false;
	return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
	struct conn *c = conn_of(p);
	if (!c->got_body) {
		c->got_body = true;
		c->first_body_ns = c->now_ns;
	}
	lg_tokscan_feed(&c->tok, at, n);
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct conn *c = conn_of(p);
	c->done = true;
	return HPE_PAUSED; /* handled in conn_feed(), outside the parser */
}

/* ------------------------------------------------------------------------ */
/* Run                                                                       */

static void close_quietly(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void close_walk(uv_handle_t *h, void *arg)
{
	close_quietly(h);
}

static void on_tfd_close(uv_handle_t *h)
{
	struct loadgen *lg = h->data;
	CHECK_OBJ(lg, LOADGEN_MAGIC);
	close(lg->tfd);
	lg->tfd = -1;
}

/* Close everything: requests still in flight are unfinished. */
static void lg_shutdown(struct loadgen *lg)
{
	if (lg->shut)
		return;
	lg->shut = true;
	lg->sending = false;
	lg->t_done = uv_hrtime();
	ticker_stop(lg);
	for (struct conn *c = lg->conns; c != NULL; c = c->next) {
		if (c->has_req) {
			c->has_req = false;
			lg->inflight--;
			if (c->measured)
				c->st->stats->unfinished++;
		}
		conn_close(c);
	}
	close_quietly((uv_handle_t *)&lg->timer);
	close_quietly((uv_handle_t *)&lg->grace);
	close_quietly((uv_handle_t *)&lg->sigint);
	close_quietly((uv_handle_t *)&lg->sigterm);
	if (lg->tfd >= 0)
		uv_close((uv_handle_t *)&lg->tfd_poll, on_tfd_close);
}

static void lg_check_done(struct loadgen *lg)
{
	if (lg->stopping && !lg->shut && lg->inflight == 0)
		lg_shutdown(lg);
}

static void on_grace(uv_timer_t *t)
{
	struct loadgen *lg = t->data;
	CHECK_OBJ(lg, LOADGEN_MAGIC);
	lg_shutdown(lg);
}

/* Stop sending; wait up to the grace period for what is in flight. */
static void lg_stop_sending(struct loadgen *lg)
{
	if (!lg->sending)
		return;
	lg->sending = false;
	lg->stopping = true;
	ticker_stop(lg);
	for (unsigned i = 0; i < lg->nstreams; i++) {
		struct stream *st = &lg->streams[i];
		st->restart_n = 0;
		while (st->idle != NULL)
			conn_close(st->idle);
	}
	if (lg->inflight == 0) {
		lg_shutdown(lg);
		return;
	}
	uv_timer_start(&lg->grace, on_grace, (uint64_t)(lg->opt.grace_s * 1000), 0);
}

static void lg_tick(struct loadgen *lg)
{
	if (!lg->sending)
		return;
	uint64_t now = uv_hrtime();
	for (unsigned i = 0; i < lg->nstreams && lg->sending; i++) {
		struct stream *st = &lg->streams[i];
		if (st->open) {
			for (;;) {
				uint64_t t = st->origin + lg_sched_peek(&st->sched);
				if (t > now || t >= lg->t_end)
					break;
				lg_sched_next(&st->sched);
				stream_issue(st, t, uv_hrtime(), NULL);
			}
		} else {
			while (st->restart_n > 0 && st->restart[st->restart_head] <= now) {
				st->restart_head = (st->restart_head + 1) % st->conf.concurrency;
				st->restart_n--;
				stream_issue(st, now, now, NULL);
			}
		}
	}
	if (now >= lg->t_end) {
		lg_stop_sending(lg);
		return;
	}
	uint64_t due = lg->t_end;
	for (unsigned i = 0; i < lg->nstreams; i++) {
		struct stream *st = &lg->streams[i];
		uint64_t t = UINT64_MAX;
		if (st->open)
			t = st->origin + lg_sched_peek(&st->sched);
		else if (st->restart_n > 0)
			t = st->restart[st->restart_head];
		if (t < due)
			due = t;
	}
	ticker_arm(lg, due);
}

static void on_timer(uv_timer_t *t)
{
	struct loadgen *lg = t->data;
	CHECK_OBJ(lg, LOADGEN_MAGIC);
	lg_tick(lg);
}

static void on_tfd(uv_poll_t *p, int status, int events)
{
	struct loadgen *lg = p->data;
	CHECK_OBJ(lg, LOADGEN_MAGIC);
	uint64_t expirations;
	if (read(lg->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		fprintf(stderr, "loadgen: timerfd: %s\n", strerror(errno));
	lg_tick(lg);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct loadgen *lg = s->data;
	CHECK_OBJ(lg, LOADGEN_MAGIC);
	if (!lg->sending) {
		lg_shutdown(lg); /* a second signal: stop waiting */
		return;
	}
	uint64_t now = uv_hrtime();
	lg->interrupted = true;
	if (now < lg->t_end)
		lg->t_end = now;
	fprintf(stderr, "loadgen: interrupted; waiting up to %.1f s for replies (again to stop now)\n",
		lg->opt.grace_s);
	lg_stop_sending(lg);
}

static int lg_start(struct loadgen *lg)
{
	int rc;
	uv_timer_init(lg->loop, &lg->timer);
	uv_timer_init(lg->loop, &lg->grace);
	lg->timer.data = lg->grace.data = lg;
	lg->tfd = -1;
#ifdef __linux__
	lg->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (lg->tfd >= 0) {
		rc = uv_poll_init(lg->loop, &lg->tfd_poll, lg->tfd);
		if (rc == 0)
			rc = uv_poll_start(&lg->tfd_poll, UV_READABLE, on_tfd);
		if (rc < 0) {
			fprintf(stderr, "loadgen: timerfd poll: %s; using uv_timer (1 ms steps)\n",
				uv_strerror(rc));
			close(lg->tfd);
			lg->tfd = -1;
		}
		lg->tfd_poll.data = lg;
	}
#endif
	if ((rc = uv_signal_init(lg->loop, &lg->sigint)) < 0 ||
	    (rc = uv_signal_init(lg->loop, &lg->sigterm)) < 0)
		return rc;
	lg->sigint.data = lg->sigterm.data = lg;
	uv_signal_start(&lg->sigint, on_signal, SIGINT);
	uv_signal_start(&lg->sigterm, on_signal, SIGTERM);

	lg->t0 = uv_hrtime();
	lg->t_warm = lg->t0 + (uint64_t)(lg->opt.warmup_s * NS_PER_S);
	lg->t_end = lg->t_warm + (uint64_t)(lg->opt.duration_s * NS_PER_S);
	lg->sending = true;
	for (unsigned i = 0; i < lg->nstreams; i++) {
		struct stream *st = &lg->streams[i];
		st->origin = lg->t0;
		for (unsigned k = 0; !st->open && k < st->conf.concurrency; k++)
			st->restart[k] = lg->t0;
		st->restart_n = st->open ? 0 : st->conf.concurrency;
	}
	lg_tick(lg);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Setup: targets, requests, reachability                                    */

/* The target for HOST:PORT (validated by parse_args), resolved once; NULL if it cannot be. */
static const struct target *target_add(struct loadgen *lg, const char *hostport)
{
	for (unsigned i = 0; i < lg->ntargets; i++)
		if (strcmp(lg->targets[i].hostport, hostport) == 0)
			return &lg->targets[i];
	char host[256], port[8];
	int p;
	if (lg_target_split(hostport, host, sizeof(host), &p) < 0)
		return NULL;
	snprintf(port, sizeof(port), "%d", p);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	uv_getaddrinfo_t req;
	int rc = uv_getaddrinfo(lg->loop, &req, NULL, host, port, &hints);
	if (rc < 0) {
		fprintf(stderr, "loadgen: cannot resolve '%s': %s\n", host, uv_strerror(rc));
		return NULL;
	}
	struct target *t = &lg->targets[lg->ntargets++];
	snprintf(t->hostport, sizeof(t->hostport), "%s", hostport);
	memcpy(&t->addr, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
	uv_freeaddrinfo(req.addrinfo);
	return t;
}

static bool path_is_chat(const char *path)
{
	size_t n = strcspn(path, "?");
	static const char suffix[] = "/chat/completions";
	return n >= sizeof(suffix) - 1 && memcmp(path + n - (sizeof(suffix) - 1), suffix,
						 sizeof(suffix) - 1) == 0;
}

/* Build the bytes of one of the stream's requests, asking for max_tokens. */
static int stream_build_variant(struct stream *st, unsigned max_tokens, char **out, size_t *out_len)
{
	const struct lg_stream_conf *c = &st->conf;
	size_t plen = (size_t)c->prompt_tokens * 4;
	char *prompt = malloc(plen + 1);
	if (prompt == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < plen; i += 4)
		memcpy(prompt + i, "tok ", 4);
	prompt[plen] = '\0';

	json_t *body = json_object();
	if (c->model != NULL)
		json_object_set_new(body, "model", json_string(c->model));
	if (path_is_chat(c->path))
		json_object_set_new(body, "messages",
				    json_pack("[{s:s, s:s}]", "role", "user", "content", prompt));
	else
		json_object_set_new(body, "prompt", json_string(prompt));
	free(prompt);
	json_object_set_new(body, "prompt_tokens", json_integer(c->prompt_tokens));
	json_object_set_new(body, "max_tokens", json_integer(max_tokens));
	if (c->stream) {
		json_object_set_new(body, "stream", json_true());
		json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
	}
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL)
		return -ENOMEM;

	char *req = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&req, &len);
	if (f == NULL) {
		free(text);
		return -ENOMEM;
	}
	fprintf(f,
		"POST %s HTTP/1.1\r\nhost: %s\r\nuser-agent: sluice-loadgen/%s\r\n"
		"content-type: application/json\r\naccept: %s\r\n",
		c->path, st->target->hostport, SLUICE_VERSION,
		c->stream ? "text/event-stream" : "application/json");
	if (c->key != NULL)
		fprintf(f, "authorization: Bearer %s\r\n", c->key);
	if (c->cls != NULL)
		fprintf(f, "x-sluice-class: %s\r\n", c->cls);
	if (c->deadline_ms >= 0)
		fprintf(f, "x-sluice-deadline-ms: %ld\r\n", c->deadline_ms);
	for (unsigned i = 0; i < c->nheaders; i++)
		fprintf(f, "%s: %s\r\n", c->headers[i].name, c->headers[i].value);
	fprintf(f, "content-length: %zu\r\n\r\n%s", strlen(text), text);
	free(text);
	if (fclose(f) != 0 || len > UINT32_MAX) {
		free(req);
		return -ENOMEM;
	}
	*out = req;
	*out_len = len;
	return 0;
}

/* Build the stream's requests once; every request of the stream is one of these. */
static int stream_build_request(struct stream *st)
{
	const struct lg_stream_conf *c = &st->conf;
	unsigned lo = c->max_tokens, hi = c->max_tokens_hi > lo ? c->max_tokens_hi : lo;
	unsigned n = hi - lo + 1 < LG_VARIANTS_MAX ? hi - lo + 1 : LG_VARIANTS_MAX;
	st->rng = 0x9e3779b97f4a7c15u ^ (uint64_t)(uintptr_t)st->name[0];
	for (st->nreq = 0; st->nreq < n; st->nreq++) {
		unsigned m = n == 1 ? lo : lo + (unsigned)((uint64_t)(hi - lo) * st->nreq / (n - 1));
		if (stream_build_variant(st, m, &st->req[st->nreq], &st->req_len[st->nreq]) < 0)
			return -ENOMEM;
	}
	return 0;
}

struct probe {
	uint32_t magic;
	struct loadgen *lg;
	struct target *t;
	uv_tcp_t tcp;
	uv_connect_t req;
};

static void on_probe_close(uv_handle_t *h)
{
	struct probe *p = h->data;
	CHECK_OBJ(p, PROBE_MAGIC);
	p->magic = 0;
	free(p);
}

static void on_probe_connect(uv_connect_t *req, int status)
{
	struct probe *p = req->data;
	CHECK_OBJ(p, PROBE_MAGIC);
	p->t->probe_status = status < 0 ? status : 0;
	if (--p->lg->probes_pending == 0)
		uv_timer_stop(&p->lg->timer);
	if (!uv_is_closing((uv_handle_t *)&p->tcp))
		uv_close((uv_handle_t *)&p->tcp, on_probe_close);
}

static void close_probe(uv_handle_t *h, void *arg)
{
	if (h->type == UV_TCP && !uv_is_closing(h))
		uv_close(h, on_probe_close);
}

static void on_probe_timeout(uv_timer_t *t)
{
	struct loadgen *lg = t->data;
	CHECK_OBJ(lg, LOADGEN_MAGIC);
	/* Only probes own TCP handles yet; their connects end with ECANCELED. */
	uv_walk(lg->loop, close_probe, NULL);
}

/* Connect once to every target; 0 if all answered, else -1 (reported). */
static int lg_probe(struct loadgen *lg)
{
	uv_timer_init(lg->loop, &lg->timer);
	lg->timer.data = lg;
	for (unsigned i = 0; i < lg->ntargets; i++) {
		struct target *t = &lg->targets[i];
		struct probe *p = calloc(1, sizeof(*p));
		if (p == NULL)
			return -1;
		*p = (struct probe){.magic = PROBE_MAGIC, .lg = lg, .t = t};
		int rc = uv_tcp_init(lg->loop, &p->tcp);
		if (rc < 0) {
			t->probe_status = rc;
			free(p);
			continue;
		}
		p->tcp.data = p->req.data = p;
		t->probe_status = 1;
		rc = uv_tcp_connect(&p->req, &p->tcp, (const struct sockaddr *)&t->addr,
				    on_probe_connect);
		if (rc < 0) {
			t->probe_status = rc;
			uv_close((uv_handle_t *)&p->tcp, on_probe_close);
			continue;
		}
		lg->probes_pending++;
	}
	if (lg->probes_pending > 0)
		uv_timer_start(&lg->timer, on_probe_timeout, PROBE_TIMEOUT_MS, 0);
	uv_run(lg->loop, UV_RUN_DEFAULT);
	close_quietly((uv_handle_t *)&lg->timer);
	uv_run(lg->loop, UV_RUN_DEFAULT);
	int bad = 0;
	for (unsigned i = 0; i < lg->ntargets; i++) {
		struct target *t = &lg->targets[i];
		if (t->probe_status != 0) {
			fprintf(stderr, "loadgen: cannot connect to %s: %s\n", t->hostport,
				t->probe_status == UV_ECANCELED ? "timed out"
								: uv_strerror(t->probe_status));
			bad = -1;
		}
	}
	return bad;
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loadgen --target HOST:PORT [options] --stream SPEC [--stream SPEC ...]\n"
		"\n"
		"Sends HTTP/1.1 POST requests (OpenAI completions) from one or more streams for\n"
		"a fixed time and reports per-stream latency, TTFB, statuses and errors.\n"
		"Open-loop streams send each request at its scheduled time whatever happened to\n"
		"earlier ones, and measure latency from that time (no coordinated omission).\n"
		"\n"
		"options:\n"
		"  -t, --target HOST:PORT   server for streams without target= (also [V6]:PORT, :PORT)\n"
		"  -d, --duration S         measured seconds (10)\n"
		"  -w, --warmup S           seconds sent before measuring starts (0)\n"
		"  -g, --grace S            after the run, wait up to S seconds for replies still\n"
		"                           in flight; then they count as unfinished (5)\n"
		"  -j, --json FILE          also write a JSON summary to FILE\n"
		"  -s, --seed N             seed of the Poisson arrivals (1)\n"
		"  -S, --stream SPEC        a stream (repeatable, at most %d): field=value,...\n"
		"  -h, --help               this help\n"
		"\n"
		"stream fields (values cannot contain commas):\n"
		"%s"
		"\n"
		"Each request of a stream is the same: body {\"prompt\": 4N characters,\n"
		"\"prompt_tokens\": N, \"max_tokens\": M} (with stream=1 also \"stream\": true and\n"
		"\"stream_options\": {\"include_usage\": true}); keep-alive connections, one\n"
		"request at a time each.\n"
		"\n"
		"Only requests scheduled after the warmup and before the end are counted:\n"
		"  sent = ok + 429 + other + err + unfinished;  dropped: due while max_conns\n"
		"  connections were busy (open loop), never sent.\n"
		"Latency: scheduled send -> last response byte, of 2xx responses; TTFB: to the\n"
		"first response byte (stream=1: the first SSE event).  ok/s: 2xx per measured\n"
		"second.  Schedule lag: actual - scheduled send, loadgen's own delay.\n"
		"Percentiles come from log-linear histograms (within 1.6%%).\n"
		"\n"
		"stdout: a run line, a table (one row per stream, a total row when there are\n"
		"several; latencies in ms), then per stream the x-sluice-reject-reason counts,\n"
		"retry hints, error kinds (connect, reset, closed, truncated, parse) and other\n"
		"statuses that occurred.\n"
		"--json: {\"run\": {version, duration_s, warmup_s, grace_s, elapsed_s, seed,\n"
		"interrupted, schedule_lag_ms}, \"streams\": [{name, target, config, scheduled,\n"
		"sent, ok, rejected_429, other_status, errors, dropped, unfinished, error_kinds,\n"
		"status, reasons, throughput_rps, ok_rps, output_tokens, output_tokens_per_s,\n"
		"latency_ms, ttfb_ms, reject_latency_ms, retry_after_ms}]}; each *_ms histogram\n"
		"is {count, mean, min, p50, p90, p99, p99.9, max} (only count when empty).\n"
		"\n"
		"Exit status: 0 after a run (whatever the server answered), 1 if a target\n"
		"cannot be reached at the start, 2 for a usage error.  SIGINT ends the run\n"
		"early and reports what was measured.\n"
		"\n"
		"example:\n"
		"  loadgen --target 127.0.0.1:8080 --duration 20 --warmup 2 --json out.json \\\n"
		"    --stream 'name=chat,rate=10,class=interactive,key=sk-chat,max_tokens=16,stream=1' \\\n"
		"    --stream 'name=batch,concurrency=48,class=opportunistic,prompt_tokens=1024,max_tokens=256'\n",
		STREAMS_MAX, LG_STREAM_FIELDS_HELP);
}

static int parse_seconds(const char *opt, const char *s, double *out, double max)
{
	if (lg_parse_double(s, out) < 0 || *out < 0 || *out > max) {
		fprintf(stderr, "loadgen: %s must be a number of seconds in 0..%g\n", opt, max);
		return -1;
	}
	return 0;
}

/* Returns 0, or 2 for a usage error (reported), or 1 to exit 0 (help). */
static int parse_args(struct loadgen *lg, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"target", required_argument, NULL, 't'},
		{"duration", required_argument, NULL, 'd'},
		{"warmup", required_argument, NULL, 'w'},
		{"grace", required_argument, NULL, 'g'},
		{"json", required_argument, NULL, 'j'},
		{"seed", required_argument, NULL, 's'},
		{"stream", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct options *o = &lg->opt;
	*o = (struct options){.duration_s = 10, .warmup_s = 0, .grace_s = 5, .seed = 1};
	int ch;
	while ((ch = getopt_long(argc, argv, "t:d:w:g:j:s:S:h", longopts, NULL)) != -1) {
		unsigned long u;
		char err[200];
		switch (ch) {
		case 't': o->target = optarg; break;
		case 'd':
			if (parse_seconds("--duration", optarg, &o->duration_s, 86400) < 0)
				return 2;
			if (o->duration_s <= 0) {
				fprintf(stderr, "loadgen: --duration must be > 0\n");
				return 2;
			}
			break;
		case 'w':
			if (parse_seconds("--warmup", optarg, &o->warmup_s, 86400) < 0)
				return 2;
			break;
		case 'g':
			if (parse_seconds("--grace", optarg, &o->grace_s, 3600) < 0)
				return 2;
			break;
		case 'j': o->json_path = optarg; break;
		case 's':
			if (lg_parse_uint(optarg, ULONG_MAX, &u) < 0) {
				fprintf(stderr, "loadgen: --seed must be a non-negative integer\n");
				return 2;
			}
			o->seed = u;
			break;
		case 'S': {
			if (lg->nstreams == STREAMS_MAX) {
				fprintf(stderr, "loadgen: at most %d streams\n", STREAMS_MAX);
				return 2;
			}
			struct stream *st = &lg->streams[lg->nstreams];
			int rc = lg_stream_conf_parse(&st->conf, optarg, err, sizeof(err));
			if (rc < 0) {
				fprintf(stderr, "loadgen: --stream '%s': %s\n", optarg,
					rc == -ENOMEM ? "out of memory" : err);
				return 2;
			}
			lg->nstreams++;
			break;
		}
		case 'h': usage(stdout); return 1;
		default:
			fprintf(stderr, "loadgen: see loadgen --help\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "loadgen: unexpected argument '%s' (see --help)\n", argv[optind]);
		return 2;
	}
	if (lg->nstreams == 0) {
		fprintf(stderr, "loadgen: give at least one --stream (see --help)\n");
		return 2;
	}
	for (unsigned i = 0; i < lg->nstreams; i++) {
		struct stream *st = &lg->streams[i];
		if (st->conf.name != NULL)
			snprintf(st->name, sizeof(st->name), "%s", st->conf.name);
		else
			snprintf(st->name, sizeof(st->name), "stream%u", i + 1);
		for (unsigned j = 0; j < i; j++)
			if (strcmp(lg->streams[j].name, st->name) == 0) {
				fprintf(stderr, "loadgen: two streams are named '%s'\n", st->name);
				return 2;
			}
		if (st->conf.target == NULL && o->target == NULL) {
			fprintf(stderr, "loadgen: stream '%s' has no target: give --target or target=\n",
				st->name);
			return 2;
		}
	}
	char host[256];
	int port;
	if (o->target != NULL && (lg_target_split(o->target, host, sizeof(host), &port) < 0 ||
				  strlen(o->target) >= sizeof(lg->targets[0].hostport))) {
		fprintf(stderr, "loadgen: --target must be HOST:PORT, not '%s'\n", o->target);
		return 2;
	}
	return 0;
}

/* Let every stream open its max_conns: raise the descriptor limit to the hard one. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void lg_finish(struct loadgen *lg)
{
	for (unsigned i = 0; i < lg->nstreams; i++) {
		struct stream *st = &lg->streams[i];
		lg_stream_conf_finish(&st->conf);
		for (unsigned v = 0; v < st->nreq; v++)
			free(st->req[v]);
		free(st->restart);
		free(st->stats);
		st->magic = 0;
	}
	lg->magic = 0;
}

int main(int argc, char **argv)
{
	static struct loadgen lg_storage; /* large (read buffer, histograms): not on the stack */
	struct loadgen *lg = &lg_storage;
	lg->magic = LOADGEN_MAGIC;
	int rc = parse_args(lg, argc, argv);
	if (rc != 0) {
		lg_finish(lg);
		return rc == 1 ? 0 : 2;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	uv_loop_t loop;
	if ((rc = uv_loop_init(&loop)) < 0) {
		fprintf(stderr, "loadgen: uv_loop_init: %s\n", uv_strerror(rc));
		return 1;
	}
	lg->loop = &loop;
	llhttp_settings_init(&lg->settings);
	lg->settings.on_message_begin = on_message_begin;
	lg->settings.on_header_field = on_header_field;
	lg->settings.on_header_value = on_header_value;
	lg->settings.on_header_value_complete = on_header_value_complete;
	lg->settings.on_body = on_body;
	lg->settings.on_message_complete = on_message_complete;
	gw_hist_init(&lg->lag);

	int status = 0;
	for (unsigned i = 0; i < lg->nstreams && status == 0; i++) {
		struct stream *st = &lg->streams[i];
		st->magic = STREAM_MAGIC;
		st->lg = lg;
		st->open = st->conf.rate > 0;
		st->target = target_add(lg, st->conf.target != NULL ? st->conf.target : lg->opt.target);
		st->stats = malloc(sizeof(*st->stats));
		if (!st->open)
			st->restart = calloc(st->conf.concurrency, sizeof(*st->restart));
		if (st->target == NULL) {
			status = 1;
			break;
		}
		if (st->stats == NULL || (!st->open && st->restart == NULL) ||
		    stream_build_request(st) < 0) {
			fprintf(stderr, "loadgen: out of memory\n");
			status = 1;
			break;
		}
		lg_stats_init(st->stats);
		if (st->open)
			lg_sched_init(&st->sched, st->conf.arrival, st->conf.rate,
				      lg_mix64(lg->opt.seed ^ lg_mix64(i + 1)));
	}
	if (status == 0 && lg_probe(lg) < 0)
		status = 1;
	if (status == 0 && (rc = lg_start(lg)) < 0) {
		fprintf(stderr, "loadgen: cannot start: %s\n", uv_strerror(rc));
		status = 1;
	}
	if (status == 0) {
		uv_run(&loop, UV_RUN_DEFAULT);

		double measured = lg->opt.duration_s;
		if (lg->interrupted)
			measured = lg->t_end > lg->t_warm ? (double)(lg->t_end - lg->t_warm) / NS_PER_S : 0;
		bool any_open = false;
		struct lg_report reports[STREAMS_MAX];
		for (unsigned i = 0; i < lg->nstreams; i++) {
			struct stream *st = &lg->streams[i];
			any_open |= st->open;
			reports[i] = (struct lg_report){.name = st->name,
							.target = st->target->hostport,
							.conf = &st->conf,
							.stats = st->stats};
		}
		struct lg_run run = {
			.duration_s = measured,
			.warmup_s = lg->opt.warmup_s,
			.grace_s = lg->opt.grace_s,
			.elapsed_s = (double)(lg->t_done - lg->t0) / NS_PER_S,
			.seed = lg->opt.seed,
			.interrupted = lg->interrupted,
			.lag = any_open ? &lg->lag : NULL,
		};
		lg_summary_print(stdout, &run, reports, lg->nstreams);
		fflush(stdout);
		if (lg->opt.json_path != NULL &&
		    lg_summary_write_json(lg->opt.json_path, &run, reports, lg->nstreams) < 0)
			fprintf(stderr, "loadgen: cannot write %s\n", lg->opt.json_path);
	}
	/* Whatever path led here, every handle is closed or closing. */
	uv_walk(&loop, close_walk, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		fprintf(stderr, "loadgen: loop still has handles at exit\n");
	lg_finish(lg);
	return status;
}
