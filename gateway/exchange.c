/*
 * exchange.c - one request's exchange with a backend; see exchange.h.
 *
 * Ownership.  The exchange is owned by its client connection (c->x) and
 * freed by exchange_end().  It holds the upstream connection while in use
 * (up->owner points back at it).  libuv requests on the upstream handle
 * (connect, write) can complete after the exchange is gone, when the
 * handle is closed under them: they are allocated apart, and exchange_end()
 * detaches them (op->x = NULL) so that their callbacks only free themselves.
 *
 * The request head is built once and kept with the body until the response
 * starts, because a pooled connection that turns out to be dead (the
 * server closed it while it was idle) is retried once on a fresh one.  Only
 * a connection that has not produced a single response byte is retried, so
 * a request is never executed twice by a live server.
 *
 * Backpressure.  Response bytes are written to the client as they come;
 * when more than GW_WRITE_HIGH bytes wait in the client's write queue,
 * reading from the backend stops until it drains below GW_WRITE_LOW.  A slow client
 * thus holds a bounded amount of memory and slows its backend down, as TCP
 * would end to end.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backends/upstream.h"
#include "gateway/adapt.h"
#include "gateway/conn.h"
#include "gateway/dispatch.h"
#include "gateway/exchange.h"
#include "gateway/health.h"
#include "gateway/log.h"
#include "gateway/openai.h"
#include "gateway/server.h"
#include "gateway/slot.h"
#include "gateway/sse.h"
#include "queue/admit.h"
#include "queue/preempt.h"

#define GW_EXCHANGE_MAGIC 0x45584348u	/* "EXCH" */
/* The end of a response body is kept to read its `usage` block, which
 * OpenAI-compatible servers put last (in the JSON, or in the final SSE
 * event before [DONE]). */
#define TAIL_MAX 2048

/* Other backends a request that could not reach its backend is started on. */
#define GW_RETRIES_MAX 2

enum phase { PHASE_CONNECT, PHASE_WAIT };

struct upstream_op {
	union {
		uv_connect_t connect;
		uv_write_t write;
	} req;
	struct gw_exchange *x;		/* NULL once the exchange is gone */
};

struct gw_exchange {
	uint32_t magic;
	enum phase phase;
	struct gw_conn *conn;
	struct gw_slot *slot;		/* held until exchange_end(); its backend is ours */
	struct backend_conn *up;
	struct upstream_op *op;		/* connect or write in flight */
	struct gw_http resp;
	struct gw_buf head;		/* request head sent upstream */
	bool head_secret;		/* it carries the pool's credential: wiped when freed */
	struct gw_buf out;		/* client bytes produced by one upstream read */
	bool reused;			/* sent on a pooled connection */
	bool retried;
	bool got_bytes;			/* the backend sent at least one response byte */
	bool head_sent;			/* a response head went to the client */
	bool chunked_out;		/* we frame the client response in chunks */
	bool close_client;		/* the client response ends with the connection */
	bool paused;			/* upstream reads stopped for backpressure */
	bool reusable;			/* upstream connection may go back to the pool */
	struct gw_sse sse;		/* content events of a streamed 200 (sse.h) */
	size_t tail_len;
	char tail[TAIL_MAX];		/* last bytes of the response body */
};

static struct gw_exchange *exchange_from_up(uv_handle_t *h)
{
	struct backend_conn *bc = backend_conn_from(h);
	struct gw_exchange *x = bc->owner;
	if (x == NULL || x->magic != GW_EXCHANGE_MAGIC)
		abort();
	return x;
}

static void send_request(struct gw_exchange *x);
static void connect_new(struct gw_exchange *x);

/*
 * The exchange is over: hand the upstream connection back or close it,
 * give the slot back (which schedules the queue kick: waiting requests get
 * the slot from the loop, not from here), and free the exchange.  The
 * connection's own fate is decided by the caller.
 */
static void exchange_release(struct gw_exchange *x, bool reuse_upstream)
{
	struct gw_conn *c = x->conn;
	struct gw_server *srv = c->srv;
	c->rec.t_upstream_end = uv_hrtime();
	if (x->op != NULL)
		x->op->x = NULL;
	if (x->up != NULL) {
		if (reuse_upstream) {
			backend_conn_put(&x->up, gw_now_ms(srv));
		} else {
			backend_conn_close(&x->up);
		}
	}
	gw_http_finish(&x->resp);
	if (x->head_secret)
		explicit_bzero(x->head.data, x->head.len);
	gw_buf_finish(&x->head);
	gw_buf_finish(&x->out);
	gw__slot_give(srv, &x->slot);
	x->magic = 0;
	free(x);
	c->x = NULL;
}

static void exchange_end(struct gw_exchange *x, bool reuse_upstream)
{
	/* No usage came back: the output part of the charge is given back (a
	 * no-op once the response's usage settled it). */
	queue_settle_unreported(&x->conn->qi, gw_now_ms(x->conn->srv));
	exchange_release(x, reuse_upstream);
}

static void flush_out(struct gw_exchange *x)
{
	struct gw_conn *c = x->conn;
	if (x->out.len == 0)
		return;
	gw__conn_write(c, &x->out);
	if (c->x == x && !x->paused && x->up != NULL && gw__conn_write_queue(c) > GW_WRITE_HIGH) {
		/* The backend waits for the client now: the timer watches the
		 * client, so that one that never reads cannot hold a slot. */
		backend_conn_pause(x->up);
		gw__conn_arm(c, c->srv->conf->timeouts.idle_ms);
		c->outq_mark = UINT32_MAX;
		gw__conn_client_progressed(c);
		x->paused = true;
	}
}

/*
 * The backend failed.  Before any response byte: retry a pooled connection
 * once on a new one; when the backend cannot be reached at all, start the
 * request on another backend (GW_RETRIES_MAX times); else answer 502/504.
 * After the head went out: cut the client connection so that the client
 * sees the response is incomplete.
 *
 * A request is resent only when no byte of it can have reached a backend
 * (a failed connect; a pooled connection that turned out closed): an
 * inference request is not idempotent.
 */
static void upstream_failed(struct gw_exchange *x, enum gw_reason r, const char *detail)
{
	struct gw_conn *c = x->conn;
	struct gw_server *srv = c->srv;
	if (x->reused && !x->retried && !x->got_bytes && r == GW_R_UPSTREAM_ERROR) {
		x->retried = true;
		x->reused = false;
		srv->metrics.upstream_retries++;
		if (x->op != NULL) {
			x->op->x = NULL;
			x->op = NULL;
		}
		backend_conn_close(&x->up);
		gw_debug("pooled upstream connection to %s was dead (%s); retrying request_id=%s",
			 x->slot->backend->name, detail, c->request_id);
		connect_new(x);
		return;
	}
	if (r != GW_R_INTERNAL)	/* outlier ejection: a reset, a timeout, a refused connect */
		gw__health_outcome(srv, x->slot->backend, false);
	if (!x->head_sent) {
		char msg[256];
		snprintf(msg, sizeof(msg), "backend %s of pool '%s': %s", x->slot->backend->name,
			 x->slot->backend->pool->cfg->name, detail);
		if ((r == GW_R_UPSTREAM_CONNECT_FAILED || r == GW_R_UPSTREAM_CONNECT_TIMEOUT) &&
		    c->rec.retries < GW_RETRIES_MAX) {
			c->rec.retries++;
			srv->metrics.upstream_failovers++;
			gw_info("%s; trying another backend request_id=%s", msg, c->request_id);
			exchange_release(x, false);	/* keeps the charge */
			if (gw__dispatch_retry(c))
				return;
			gw__conn_reject(c, r, msg, 0);
			return;
		}
		exchange_end(x, false);
		gw__conn_reject(c, r, msg, 0);
		return;
	}
	srv->metrics.upstream_truncated++;
	c->rec.reason = (uint8_t)r;
	gw_warn("backend %s of pool '%s' failed mid-response (%s); closing client request_id=%s",
		x->slot->backend->name, x->slot->backend->pool->cfg->name, detail, c->request_id);
	flush_out(x);
	exchange_end(x, false);
	c->reset_on_close = true;
	gw__conn_finish_request(c, false);
}

/* The response's first token went by at `now`: tell the queues how long
 * the backend took from the slot to it (ttft_objective_ms predictions). */
static void first_token(struct gw_exchange *x, uint64_t now)
{
	const struct gw_reqrec *r = &x->conn->rec;
	struct gw_server *srv = x->conn->srv;
	if (r->t_dispatch == 0 || now <= r->t_dispatch)
		return;
	uint64_t ns = now - r->t_dispatch;
	if (r->pool != NULL && r->pool->index < srv->queue.npools)
		queue_on_first_token(&srv->queue, r->pool->index, ns / 1000000);
	gw__adapt_first_token(x->slot->backend, ns);	/* the backend's own TTFT: slots.adapt latency */
}

static void exchange_complete(struct gw_exchange *x)
{
	struct gw_conn *c = x->conn;
	if (x->chunked_out)
		gw_buf_appends(&x->out, "0\r\n\r\n");
	flush_out(x);
	int status = x->resp.msg.status;
	double out = -1;
	double used = status == 200 ? gw_openai_usage(x->tail, x->tail_len, &out) : -1;
	if (used >= 0)
		gw__dispatch_settle(c, used);
	if (status == 200) {
		/* A response that is not a stream gives its first token with
		 * its last byte, as far as a client can tell. */
		if (!x->sse.data_lines) {
			c->rec.t_first_token = uv_hrtime();
			first_token(x, c->rec.t_first_token);
		}
		c->rec.tokens_output = out >= 0 ? out : x->sse.data_lines ? (double)x->sse.events : -1;
	}
	/* An early answer (a 413 while the body uploads) leaves part of our
	 * request unsent: that connection cannot carry another one. */
	bool reuse = x->reusable && x->resp.msg.keep_alive && x->op == NULL;
	bool keep_client = !x->close_client;
	gw__health_outcome(c->srv, x->slot->backend, status < 500);	/* outlier ejection */
	exchange_end(x, reuse);
	gw__conn_finish_request(c, keep_client);
}

/* Append the client's response head, rewritten: hop-by-hop fields dropped,
 * framing chosen for the client, sluice's own fields added. */
static void write_head(struct gw_exchange *x)
{
	struct gw_conn *c = x->conn;
	const struct gw_msg *m = &x->resp.msg;
	const struct gw_msg *req = &c->http.msg;
	struct gw_buf *o = &x->out;
	bool no_body = req->method == HTTP_HEAD || m->status == 204 || m->status == 304;
	c->rec.status = m->status;

	gw_buf_reserve(o, m->head.len + 4 * (size_t)m->nfields + 768);	/* one allocation, as above */
	gw_buf_appends(o, "HTTP/1.1 ");
	gw_buf_append_u64(o, m->status);
	gw_buf_append(o, " ", 1);
	if (m->start_len > 0)
		gw_buf_append(o, gw_msg_start(m), m->start_len);
	else
		gw_buf_appends(o, gw_status_text(m->status));
	gw_buf_append(o, "\r\n", 2);
	for (uint32_t i = 0; i < m->nfields; i++) {
		const struct gw_field *f = &m->fields[i];
		const char *name = gw_field_name(m, f);
		if (gw_msg_field_is_hop(m, f) || gw_token_eq(name, f->name_len, "x-request-id"))
			continue;
		if (f->name_len > 9 && strncasecmp(name, "x-sluice-", 9) == 0)
			continue;
		gw_buf_append(o, name, f->name_len);
		gw_buf_append(o, ": ", 2);
		gw_buf_append(o, gw_field_value(m, f), f->value_len);
		gw_buf_append(o, "\r\n", 2);
	}
	if (!no_body && !m->has_length) {
		if (req->http_major == 1 && req->http_minor >= 1) {
			gw_buf_appends(o, "transfer-encoding: chunked\r\n");
			x->chunked_out = true;
		} else {
			x->close_client = true;
		}
	}
	gw_buf_appends(o, "x-request-id: ");
	gw_buf_appends(o, c->request_id);
	gw_buf_appends(o, "\r\nx-sluice-class: ");
	gw_buf_appends(o, conf_class_name(c->qi.klass));
	gw_buf_appends(o, "\r\nx-sluice-pool: ");
	gw_buf_appends(o, x->slot->backend->pool->cfg->name);
	gw_buf_appends(o, "\r\nx-sluice-queue-ms: ");
	gw_buf_append_u64(o, (c->rec.t_dispatch - c->rec.t_ready) / 1000000);
	gw_buf_append(o, "\r\n", 2);
	gw_openai_ratelimit_headers(c->qi.tenant, gw_now_ms(c->srv), o);
	if (x->close_client || !req->keep_alive || c->srv->draining)
		gw_buf_appends(o, "connection: close\r\n");
	gw_buf_appends(o, "\r\n");
	x->head_sent = true;
}

static void keep_tail(struct gw_exchange *x, const char *at, size_t len)
{
	if (len >= TAIL_MAX) {
		memcpy(x->tail, at + len - TAIL_MAX, TAIL_MAX);
		x->tail_len = TAIL_MAX;
		return;
	}
	if (x->tail_len + len > TAIL_MAX) {
		size_t drop = x->tail_len + len - TAIL_MAX;
		memmove(x->tail, x->tail + drop, x->tail_len - drop);
		x->tail_len -= drop;
	}
	memcpy(x->tail + x->tail_len, at, len);
	x->tail_len += len;
}

static int on_resp_body(void *ctx, const char *at, size_t len)
{
	struct gw_exchange *x = ctx;
	int rc = 0;
	keep_tail(x, at, len);
	if (x->resp.msg.status == 200 && gw_sse_feed(&x->sse, at, len) > 0) {
		uint64_t now = uv_hrtime();
		if (x->conn->rec.t_first_token == 0)
			first_token(x, now);
		gw__account_token(&x->conn->srv->account, x->conn, now);
	}
	if (x->chunked_out) {
		rc |= gw_buf_append_hex(&x->out, len);
		rc |= gw_buf_append(&x->out, "\r\n", 2);
		rc |= gw_buf_append(&x->out, at, len);
		rc |= gw_buf_append(&x->out, "\r\n", 2);
	} else {
		rc = gw_buf_append(&x->out, at, len);
	}
	return rc == 0 ? 0 : -1;
}

static void on_up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct gw_exchange *x = exchange_from_up(h);
	buf->base = x->conn->srv->readbuf;
	buf->len = sizeof(x->conn->srv->readbuf);
}

static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	if (nread == 0)
		return;
	struct gw_exchange *x = exchange_from_up((uv_handle_t *)s);
	struct gw_conn *c = x->conn;
	if (nread < 0) {
		if (nread == UV_EOF && gw_http_eof(&x->resp) == GW_HTTP_DONE) {
			x->reusable = false;
			exchange_complete(x);
			return;
		}
		upstream_failed(x, GW_R_UPSTREAM_ERROR,
				nread == UV_EOF ? "connection closed before the response was complete"
						: uv_strerror((int)nread));
		return;
	}
	x->got_bytes = true;
	gw__conn_arm(c, c->srv->conf->timeouts.upstream_ms);
	size_t off = 0;
	for (;;) {
		size_t used;
		enum gw_http_event ev = gw_http_parse(&x->resp, buf->base + off, (size_t)nread - off, &used);
		off += used;
		if (ev == GW_HTTP_MORE)
			break;
		if (ev == GW_HTTP_ERROR) {
			upstream_failed(x, GW_R_UPSTREAM_ERROR, x->resp.error_detail);
			return;
		}
		uint16_t status = x->resp.msg.status;
		bool interim = status >= 100 && status < 200;
		if (ev == GW_HTTP_HEAD) {
			if (!interim)
				write_head(x);
			continue;
		}
		/* GW_HTTP_DONE.  Interim responses (103 Early Hints) are not
		 * forwarded: the final response follows on the same stream. */
		if (interim) {
			gw_http_next(&x->resp, false);
			if (c->http.msg.method == HTTP_HEAD)
				gw_http_expect_no_body(&x->resp);
			continue;
		}
		/* Bytes after a complete response were never asked for: the
		 * connection's state is unknown, do not reuse it. */
		x->reusable = off == (size_t)nread;
		exchange_complete(x);
		return;
	}
	flush_out(x);
}

/* A connect or write completed: free its op.  Returns its exchange, or
 * NULL when the exchange ended meanwhile. */
static struct gw_exchange *op_completed(struct upstream_op *op)
{
	struct gw_exchange *x = op->x;
	free(op);
	if (x != NULL)
		x->op = NULL;
	return x;
}

static void on_sent(uv_write_t *req, int status)
{
	struct gw_exchange *x = op_completed((struct upstream_op *)req);
	if (x == NULL)
		return;
	if (status < 0)
		upstream_failed(x, GW_R_UPSTREAM_ERROR, uv_strerror(status));
}

/*
 * Send the request.  Most fit the socket buffer: written in place with one
 * writev, they need no write request and no POLLOUT interest (which would
 * cost an epoll_ctl per request); only what does not fit is queued.
 */
static void send_request(struct gw_exchange *x)
{
	struct gw_conn *c = x->conn;
	x->phase = PHASE_WAIT;
	gw__conn_arm(c, c->srv->conf->timeouts.upstream_ms);
	int rc = backend_conn_use(x->up, x, on_up_alloc, on_up_read);
	uv_buf_t bufs[2] = {
		uv_buf_init(x->head.data, (unsigned)x->head.len),
		uv_buf_init(c->http.msg.body.data, (unsigned)c->http.msg.body.len),
	};
	unsigned nbufs = c->http.msg.body.len > 0 ? 2 : 1;
	size_t total = x->head.len + c->http.msg.body.len;
	int n = rc == 0 ? uv_try_write((uv_stream_t *)&x->up->tcp, bufs, nbufs) : rc;
	if (n == (int)total)
		return;
	if (n < 0 && n != UV_EAGAIN) {
		upstream_failed(x, GW_R_UPSTREAM_ERROR, uv_strerror(n));
		return;
	}
	size_t done = n > 0 ? (size_t)n : 0;
	uv_buf_t *b = bufs;
	for (; done >= b->len && nbufs > 0; nbufs--, b++)
		done -= b->len;
	b->base += done;
	b->len -= (unsigned)done;
	struct upstream_op *op = malloc(sizeof(*op));
	if (op == NULL) {
		upstream_failed(x, GW_R_INTERNAL, "out of memory");
		return;
	}
	op->x = x;
	rc = uv_write(&op->req.write, (uv_stream_t *)&x->up->tcp, b, nbufs, on_sent);
	if (rc < 0) {
		free(op);
		upstream_failed(x, GW_R_UPSTREAM_ERROR, uv_strerror(rc));
		return;
	}
	x->op = op;
}

static void on_connected(uv_connect_t *req, int status)
{
	struct gw_exchange *x = op_completed((struct upstream_op *)req);
	if (x == NULL)
		return;
	if (status < 0) {
		backend_mark_failed(x->slot->backend, gw_now_ms(x->conn->srv));
		backend_note_error(x->slot->backend, uv_strerror(status), gw_now_ms(x->conn->srv));
		upstream_failed(x, GW_R_UPSTREAM_CONNECT_FAILED, uv_strerror(status));
		return;
	}
	backend_mark_ok(x->slot->backend);
	uv_tcp_nodelay(&x->up->tcp, 1);
	send_request(x);
}

static void connect_new(struct gw_exchange *x)
{
	struct gw_conn *c = x->conn;
	struct gw_server *srv = c->srv;
	x->phase = PHASE_CONNECT;
	x->got_bytes = false;
	x->reusable = true;
	gw_http_next(&x->resp, false);
	if (c->http.msg.method == HTTP_HEAD)
		gw_http_expect_no_body(&x->resp);
	int rc = backend_conn_create(srv->loop, x->slot->backend, &x->up);
	struct upstream_op *op = rc == 0 ? malloc(sizeof(*op)) : NULL;
	if (op == NULL) {
		backend_conn_close(&x->up);
		upstream_failed(x, GW_R_INTERNAL, "out of memory");
		return;
	}
	x->up->owner = x;
	op->x = x;
	rc = uv_tcp_connect(&op->req.connect, &x->up->tcp, (const struct sockaddr *)&x->slot->backend->sa,
			    on_connected);
	if (rc < 0) {
		free(op);
		backend_mark_failed(x->slot->backend, gw_now_ms(srv));
		backend_note_error(x->slot->backend, uv_strerror(rc), gw_now_ms(srv));
		upstream_failed(x, GW_R_UPSTREAM_CONNECT_FAILED, uv_strerror(rc));
		return;
	}
	x->op = op;
	gw__conn_arm(c, srv->conf->timeouts.connect_ms);
}

/* The request head for the backend: hop-by-hop fields dropped, body
 * re-framed with a Content-Length (it is buffered whole), proxy fields added. */
static int build_head(struct gw_exchange *x)
{
	struct gw_conn *c = x->conn;
	const struct gw_msg *m = &c->http.msg;
	struct gw_buf *o = &x->head;
	const struct gw_field *xff = NULL;
	bool has_host = false;
	/* One allocation: the client's head, four bytes of framing a field, and
	 * room for the fields sluice adds. */
	int rc = gw_buf_reserve(o, m->head.len + 4 * (size_t)m->nfields + 512);
	rc |= gw_buf_appends(o, llhttp_method_name(m->method));
	size_t tlen;
	const char *target = gw_msg_origin_form(m, &tlen);
	rc |= gw_buf_append(o, " ", 1);
	rc |= gw_buf_append(o, target, tlen);
	rc |= gw_buf_appends(o, " HTTP/1.1\r\n");
	for (uint32_t i = 0; i < m->nfields; i++) {
		const struct gw_field *f = &m->fields[i];
		const char *name = gw_field_name(m, f);
		/* The client's credentials are for sluice; the backend gets its
		 * own (upstream_auth) or none. */
		if (gw_msg_field_is_hop(m, f) || gw_token_eq(name, f->name_len, "content-length") ||
		    gw_token_eq(name, f->name_len, "authorization") || gw_token_eq(name, f->name_len, "x-api-key") ||
		    gw_token_eq(name, f->name_len, "expect") ||
		    gw_token_eq(name, f->name_len, "x-request-id") ||
		    gw_token_eq(name, f->name_len, "traceparent"))
			continue;
		if (gw_token_eq(name, f->name_len, "x-forwarded-for")) {
			xff = f;
			continue;
		}
		has_host |= gw_token_eq(name, f->name_len, "host");
		rc |= gw_buf_append(o, name, f->name_len);
		rc |= gw_buf_append(o, ": ", 2);
		rc |= gw_buf_append(o, gw_field_value(m, f), f->value_len);
		rc |= gw_buf_append(o, "\r\n", 2);
	}
	if (!has_host)
		rc |= gw_buf_appendf(o, "host: %s\r\n", x->slot->backend->name);
	rc |= gw_buf_appends(o, "x-forwarded-for: ");
	if (xff != NULL) {
		rc |= gw_buf_append(o, gw_field_value(m, xff), xff->value_len);
		rc |= gw_buf_append(o, ", ", 2);
	}
	rc |= gw_buf_appends(o, gw__conn_peer(c));
	rc |= gw_buf_appends(o, "\r\nx-request-id: ");
	rc |= gw_buf_appends(o, c->request_id);
	rc |= gw_buf_appends(o, "\r\ntraceparent: ");
	rc |= gw_buf_appends(o, c->rec.traceparent);
	rc |= gw_buf_append(o, "\r\n", 2);
	const char *bearer = x->slot->backend->pool->cfg->upstream_bearer;
	if (bearer != NULL) {
		/* Room for the rest of the head first: once the credential is
		 * in, the buffer must not move (realloc would free a copy of it
		 * unwiped). */
		static const char field[] = "authorization: Bearer ";
		rc |= gw_buf_reserve(o, sizeof(field) + strlen(bearer) + 2 + sizeof("content-length: \r\n\r\n") + 20);
		rc |= gw_buf_append(o, field, sizeof(field) - 1);
		rc |= gw_buf_appends(o, bearer);
		rc |= gw_buf_append(o, "\r\n", 2);
		x->head_secret = true;
	}
	if (m->has_length || m->chunked) {
		rc |= gw_buf_appends(o, "content-length: ");
		rc |= gw_buf_append_u64(o, m->body.len);
		rc |= gw_buf_append(o, "\r\n", 2);
	}
	rc |= gw_buf_append(o, "\r\n", 2);
	return rc;
}

void gw__exchange_start(struct gw_conn *c, struct gw_slot **slot)
{
	struct gw_server *srv = c->srv;
	/* Zeroed but for the tail buffer, which is written before it is read. */
	struct gw_exchange *x = malloc(sizeof(*x));
	if (x != NULL)
		memset(x, 0, offsetof(struct gw_exchange, tail));
	if (x == NULL) {
		gw__slot_give(srv, slot);
		queue_refund(&c->qi, gw_now_ms(srv));	/* never served */
		gw__conn_reject(c, GW_R_INTERNAL, "out of memory", 0);
		return;
	}
	x->magic = GW_EXCHANGE_MAGIC;
	x->conn = c;
	x->slot = *slot;
	*slot = NULL;
	struct backend *b = x->slot->backend;
	c->x = x;
	c->state = GW_CONN_UPSTREAM;
	gw_http_init(&x->resp, HTTP_RESPONSE, &srv->resp_limits, on_resp_body, x);
	if (build_head(x) != 0) {
		upstream_failed(x, GW_R_INTERNAL, "out of memory");
		return;
	}
	x->up = backend_conn_take(b);
	if (x->up == NULL) {
		connect_new(x);
		return;
	}
	srv->metrics.upstream_reused++;
	x->reused = true;
	x->reusable = true;
	if (c->http.msg.method == HTTP_HEAD)
		gw_http_expect_no_body(&x->resp);
	send_request(x);
}

void gw__exchange_abort(struct gw_conn *c)
{
	struct gw_exchange *x = c->x;
	exchange_end(x, false);
}

void gw__exchange_timeout(struct gw_conn *c)
{
	struct gw_exchange *x = c->x;
	char msg[96];
	if (x->paused && gw__conn_client_progressed(c)) {
		gw__conn_arm(c, c->srv->conf->timeouts.idle_ms);	/* slow, but reading */
		return;
	}
	if (x->paused) {
		gw_warn("client did not read its response for %llu ms; closing it and its upstream request_id=%s",
			(unsigned long long)c->srv->conf->timeouts.idle_ms, c->request_id);
		gw__conn_close(c);
		return;
	}
	if (x->phase == PHASE_CONNECT) {
		backend_mark_failed(x->slot->backend, gw_now_ms(c->srv));
		backend_note_error(x->slot->backend, "connect timed out", gw_now_ms(c->srv));
		snprintf(msg, sizeof(msg), "no connection within %llu ms",
			 (unsigned long long)c->srv->conf->timeouts.connect_ms);
		upstream_failed(x, GW_R_UPSTREAM_CONNECT_TIMEOUT, msg);
	} else {
		snprintf(msg, sizeof(msg), "no response data for %llu ms",
			 (unsigned long long)c->srv->conf->timeouts.upstream_ms);
		upstream_failed(x, GW_R_UPSTREAM_TIMEOUT, msg);
	}
}

void gw__exchange_client_drained(struct gw_conn *c)
{
	struct gw_exchange *x = c->x;
	if (!x->paused)
		return;
	if (gw__conn_write_queue(c) > GW_WRITE_LOW) {
		gw__conn_arm(c, c->srv->conf->timeouts.idle_ms);	/* the client makes progress */
		return;
	}
	x->paused = false;
	if (backend_conn_resume(x->up) < 0) {
		upstream_failed(x, GW_R_UPSTREAM_ERROR, "cannot resume reading");
		return;
	}
	gw__conn_arm(c, c->srv->conf->timeouts.upstream_ms);
}

static bool is_event_stream(const struct gw_msg *m)
{
	const struct gw_field *f = gw_msg_field(m, "content-type");
	static const char sse[] = "text/event-stream";
	return f != NULL && f->value_len >= sizeof(sse) - 1 &&
	       strncasecmp(gw_field_value(m, f), sse, sizeof(sse) - 1) == 0;
}

/* What ends the event the stream was in, so that ours stands alone: the
 * stream is cut on a read boundary, which is almost always an event's. */
static const char *event_break(const struct gw_exchange *x)
{
	const char *t = x->tail;
	size_t n = x->tail_len;
	if (n == 0 || (n >= 2 && t[n - 1] == '\n' && (t[n - 2] == '\n' || (n >= 3 && t[n - 2] == '\r' &&
									      t[n - 3] == '\n'))))
		return "";
	return t[n - 1] == '\n' ? "\n" : "\n\n";
}

void gw__exchange_preempt(struct gw_conn *c, uint64_t retry_ms)
{
	struct gw_exchange *x = c->x;
	struct gw_server *srv = c->srv;
	uint64_t now = gw_now_ms(srv);
	char msg[192];
	snprintf(msg, sizeof(msg), "this %s request was ended early so that interactive work meets its "
		 "deadline; retry in %llu ms", conf_class_name((enum conf_class)c->qi.klass),
		 (unsigned long long)retry_ms);
	if (!x->head_sent) {
		queue_preempt_refund(&c->qi, -1, now);	/* nothing reached the client */
		exchange_release(x, false);
		gw__conn_reject(c, GW_R_PREEMPTED, msg, retry_ms);
		return;
	}
	c->rec.reason = (uint8_t)GW_R_PREEMPTED;
	char *json = NULL;
	if (x->sse.data_lines || is_event_stream(&x->resp.msg)) {
		struct gw_reject rj = { msg, c->request_id, c->qi.tenant->cfg->name,
					conf_class_name((enum conf_class)c->qi.klass), retry_ms, true, NULL };
		json = gw_error_json(GW_R_PREEMPTED, &rj);
	}
	struct gw_buf ev = GW_BUF_INIT;
	int rc = json != NULL ? gw_buf_appendf(&ev, "%sevent: error\ndata: %s\n\n", event_break(x), json) : -1;
	free(json);
	if (rc == 0 && x->chunked_out) {
		rc |= gw_buf_append_hex(&x->out, ev.len);
		rc |= gw_buf_append(&x->out, "\r\n", 2);
		rc |= gw_buf_append(&x->out, ev.data, ev.len);
		rc |= gw_buf_appends(&x->out, "\r\n0\r\n\r\n");
	} else if (rc == 0) {
		rc = gw_buf_append(&x->out, ev.data, ev.len);
	}
	gw_buf_finish(&ev);
	if (rc != 0) {
		/* Not a stream (or no memory to say so): cut after what was
		 * sent, so that the client sees the response is incomplete. */
		queue_preempt_refund(&c->qi, -1, now);
		flush_out(x);
		exchange_release(x, false);
		c->reset_on_close = true;
		gw__conn_finish_request(c, false);
		return;
	}
	queue_preempt_refund(&c->qi, (double)x->sse.events, now);
	c->rec.tokens_output = (double)x->sse.events;
	bool keep_client = x->chunked_out && !x->close_client;
	flush_out(x);
	exchange_release(x, false);
	gw__conn_finish_request(c, keep_client);
}
