/*
 * conn.c - client connections: reading, parsing, timers, writing, closing.
 *
 * See conn.h for the states.  The one failure funnel is gw__conn_close():
 * every path that gives up on a connection ends there, and it withdraws the
 * connection from whatever else refers to it (wait queue, exchange) before
 * closing the handles, so no callback can reach a connection after it.
 *
 * Parsing re-entrancy: conn_parse() may answer a request synchronously (an
 * admin request, a rejection), which finishes the request and makes the
 * connection ready for the next one.  `driving` tells
 * gw__conn_finish_request() that a parse loop is already on the stack and
 * will carry on with the remaining bytes, so that pipelined requests are
 * handled by iteration, never by recursion.  Any other finish (from the
 * exchange, the queue kick, another request's eviction, a write callback)
 * only schedules `resume`, which parses the pending bytes from the loop
 * (defer.h): nothing here admits a request up another request's stack.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/admin.h"
#include "gateway/conn.h"
#include "gateway/dispatch.h"
#include "gateway/exchange.h"
#include "gateway/log.h"
#include "gateway/openai.h"
#include "gateway/server.h"

/* Pipelined bytes kept while a request is being served; reading pauses beyond. */
#define PIPELINED_MAX (64 * 1024)
/* Lingering close: how long and how much of an abandoned request is drained. */
#define LINGER_MS 2000
#define LINGER_MAX (4 * 1024 * 1024)

struct conn_write {
	uv_write_t req;
	char *data;
};

struct gw_conn *gw__conn_from(void *handle_data)
{
	struct gw_conn *c = handle_data;
	if (c == NULL || c->magic != GW_CONN_MAGIC)
		abort();
	return c;
}

/* The peer's address as text, formatted once per connection: it goes into
 * every request's x-forwarded-for and log line. */
static void peer_name(struct gw_conn *c)
{
	const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
	if (sa->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)sa, c->peer_text, sizeof(c->peer_text));
	else if (sa->sa_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)sa, c->peer_text, sizeof(c->peer_text));
	else
		snprintf(c->peer_text, sizeof(c->peer_text), "unknown");
}

const char *gw__conn_peer(const struct gw_conn *c)
{
	return c->peer_text;
}

/* The body inspection is over (read by dispatch, or the request ended):
 * the parser must no longer hand it bytes. */
static void scan_drop(struct gw_conn *c)
{
	if (c->scan == NULL)
		return;
	gw_http_observe_body(&c->http, NULL, NULL);
	free(c->scan);
	c->scan = NULL;
}

void gw__conn_body_fields(struct gw_conn *c, struct gw_openai_body *out)
{
	if (c->scan == NULL) {
		gw_openai_body_absent(out);	/* no body (or no memory to inspect it) */
		return;
	}
	gw_openai_scan_finish(c->scan, out);
	scan_drop(c);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct gw_conn *c = gw__conn_from(h->data);
	if (--c->handles > 0)
		return;
	struct gw_server *srv = c->srv;
	scan_drop(c);
	queue_tenant_put(&c->qi.tenant);	/* a request that ended with its connection */
	backend_pool_put(&c->rec.pool);
	free(c->model);
	gw_http_finish(&c->http);
	gw_buf_finish(&c->pending);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	srv->nconns--;
	c->magic = 0;
	free(c);
	gw_server_conn_gone(srv);
}

void gw__conn_close(struct gw_conn *c)
{
	if (c->state == GW_CONN_CLOSING)
		return;
	bool mid_request = c->state == GW_CONN_QUEUED || c->state == GW_CONN_UPSTREAM;
	if (c->state == GW_CONN_QUEUED)
		gw__dispatch_withdraw(c);
	gw_defer_cancel(&c->resume);
	if (c->x != NULL)
		gw__exchange_abort(c);
	if (mid_request && c->rec.active) {
		/* nginx's convention: 499, the client closed the connection first. */
		c->rec.status = 499;
		gw__account_end(&c->srv->account, c);
	}
	c->state = GW_CONN_CLOSING;
	/* A reset tells the client a response was cut short even where only
	 * the end of the connection frames it (HTTP/1.0, no length). */
	if (!c->reset_on_close || uv_tcp_close_reset(&c->tcp, on_handle_closed) != 0)
		uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_timer(uv_timer_t *t)
{
	struct gw_conn *c = gw__conn_from(t->data);
	if (c->doomed) {
		gw__conn_close(c);
		return;
	}
	switch (c->state) {
	case GW_CONN_IDLE:
		/* Still delivering earlier answers to a client that reads,
		 * slowly: give it more time (closing would drop them). */
		if ((c->write_blocked || c->writes > 0) && gw__conn_client_progressed(c)) {
			gw__conn_arm(c, c->srv->conf->timeouts.idle_ms);
			break;
		}
		gw__conn_close(c);
		break;
	case GW_CONN_HEAD:
	case GW_CONN_BODY:
		/* The request was not read to its end, so the connection
		 * cannot be reused: the rejection closes it. */
		gw__conn_reject(c, GW_R_REQUEST_TIMEOUT,
			       c->state == GW_CONN_HEAD ? "request headers not received in time"
							: "request body not received in time", 0);
		break;
	case GW_CONN_QUEUED:
		break;	/* deadlines are kept by the queue's own timer */
	case GW_CONN_UPSTREAM:
		gw__exchange_timeout(c);
		break;
	case GW_CONN_FLUSH:
		/* The client does not read its last response: give up, unless
		 * it is reading, slowly. */
		if (c->writes > 0 && gw__conn_client_progressed(c)) {
			gw__conn_arm(c, c->srv->conf->timeouts.idle_ms);
			break;
		}
		gw__conn_close(c);
		break;
	case GW_CONN_CLOSING:
		break;
	}
}

void gw__conn_arm(struct gw_conn *c, uint64_t ms)
{
	if (!c->doomed)
		uv_timer_start(&c->timer, on_timer, ms, 0);
}

void gw__conn_disarm(struct gw_conn *c)
{
	if (!c->doomed)
		uv_timer_stop(&c->timer);	/* a doomed one keeps its closing timer */
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	free(req);
}

/* The last response is written: close, or linger if the client may still
 * be sending the request we did not read. */
static void flushed(struct gw_conn *c)
{
	if (!c->lingering) {
		gw__conn_close(c);
		return;
	}
	uv_shutdown_t *req = malloc(sizeof(*req));
	if (req == NULL || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
		free(req);
		gw__conn_close(c);
		return;
	}
	gw__conn_arm(c, LINGER_MS);
}

/*
 * A write failed: the connection is dead, but callers up the stack may still
 * hold its exchange.  Close it from the timer on the next loop iteration,
 * never synchronously (our APIs do not call back into their caller).
 */
static void doom(struct gw_conn *c, int err)
{
	gw_debug("write to client failed: %s", uv_strerror(err));
	if (c->doomed)
		return;
	c->doomed = true;
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
	uv_timer_start(&c->timer, on_timer, 0, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void conn_resume(struct gw_conn *c);

static void on_written(uv_write_t *req, int status)
{
	struct conn_write *w = (struct conn_write *)req;
	struct gw_conn *c = gw__conn_from(req->handle->data);
	free(w->data);
	free(w);
	c->writes--;
	if (c->state == GW_CONN_CLOSING)
		return;
	if (status < 0) {
		gw__conn_close(c);
		return;
	}
	if (c->close_after && c->writes == 0) {
		flushed(c);
		return;
	}
	if (c->x != NULL)
		gw__exchange_client_drained(c);
	if (c->write_blocked) {
		if (gw__conn_write_queue(c) > GW_WRITE_LOW) {
			gw__conn_arm(c, c->srv->conf->timeouts.idle_ms);	/* progress: more time */
			return;
		}
		c->write_blocked = false;
		if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
			c->reading = true;
		if (!c->driving && c->pending.len > 0)
			gw_defer_schedule(&c->srv->defer, &c->resume);
	}
}

/* `interim`: a 100 Continue, which is not the response's first byte. */
static void conn_write(struct gw_conn *c, struct gw_buf *out, bool interim)
{
	if (out->len == 0 || c->state == GW_CONN_CLOSING || c->doomed) {
		gw_buf_finish(out);
		return;
	}
	if (!interim) {
		if (c->rec.t_first_byte == 0)
			c->rec.t_first_byte = uv_hrtime();
		c->rec.bytes_out += out->len;
	}
	/* Most responses fit the socket buffer: try to write in place and
	 * skip the request allocation and the callback.  uv_try_write()
	 * refuses while earlier writes are queued, which keeps the order. */
	uv_buf_t b = uv_buf_init(out->data, (unsigned)out->len);
	int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	if (n == (int)out->len) {
		gw_buf_finish(out);
		return;
	}
	if (n < 0 && n != UV_EAGAIN) {
		gw_buf_finish(out);
		doom(c, n);
		return;
	}
	size_t done = n > 0 ? (size_t)n : 0;
	struct conn_write *w = malloc(sizeof(*w));
	if (w == NULL) {
		gw_buf_finish(out);
		doom(c, UV_ENOMEM);
		return;
	}
	size_t len = out->len;
	w->data = gw_buf_take(out);
	b = uv_buf_init(w->data + done, (unsigned)(len - done));
	int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
	if (rc < 0) {
		free(w->data);
		free(w);
		doom(c, rc);
		return;
	}
	c->writes++;
}

void gw__conn_write(struct gw_conn *c, struct gw_buf *out)
{
	conn_write(c, out, false);
}

size_t gw__conn_write_queue(const struct gw_conn *c)
{
	return c->tcp.write_queue_size;
}

bool gw__conn_client_progressed(struct gw_conn *c)
{
	uv_os_fd_t fd;
	int unsent = 0;
	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || ioctl(fd, SIOCOUTQ, &unsent) != 0)
		return false;
	bool progressed = (uint32_t)unsent < c->outq_mark;
	c->outq_mark = (uint32_t)unsent;
	return progressed;
}

static bool conn_parsing(const struct gw_conn *c)
{
	return (c->state == GW_CONN_IDLE || c->state == GW_CONN_HEAD || c->state == GW_CONN_BODY) &&
	       !c->write_blocked && !c->doomed;
}

/* Keep bytes that cannot be parsed now; pause reading past the bound. */
static void stash(struct gw_conn *c, const char *data, size_t len)
{
	if (gw_buf_append(&c->pending, data, len) < 0) {
		doom(c, UV_ENOMEM);
		return;
	}
	if (c->pending.len >= PIPELINED_MAX && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void on_head(struct gw_conn *c)
{
	const struct gw_msg *m = &c->http.msg;
	c->state = GW_CONN_BODY;
	if (m->method == HTTP_CONNECT) {
		gw__conn_reject(c, GW_R_METHOD_NOT_ALLOWED, "CONNECT is not supported", 0);
		return;
	}
	bool has_body = m->chunked || (m->has_length && m->content_length > 0);
	if (has_body && !c->admin && c->scan == NULL && (c->scan = malloc(sizeof(*c->scan))) != NULL) {
		/* The body is inspected read by read as it arrives: admission
		 * then has its fields at once, with no pass over it. */
		gw_openai_scan_init(c->scan);
		gw_http_observe_body(&c->http, gw_openai_scan_observe, c->scan);
	}
	if (m->expect_continue && has_body && m->http_minor >= 1) {
		struct gw_buf out = GW_BUF_INIT;
		if (gw_buf_appends(&out, "HTTP/1.1 100 Continue\r\n\r\n") == 0)
			conn_write(c, &out, true);
	}
	gw__conn_arm(c, c->srv->conf->timeouts.body_ms);
}

static void on_request(struct gw_conn *c)
{
	c->rec.t_ready = uv_hrtime();
	c->rec.bytes_in = c->http.head_seen + c->http.msg.body.len;
	gw__conn_disarm(c);
	gw_ids_request_id(&c->srv->ids, &c->http.msg, c->request_id);
	if (c->admin) {
		gw__admin_handle(c);
		return;
	}
	gw_ids_traceparent(&c->srv->ids, &c->http.msg, c->rec.traceparent);
	gw__dispatch_request(c);
}

/*
 * Parse as many requests from data as the connection can take now; returns
 * the bytes used.  Stops at the end of the data, at a request that must
 * wait for its response, or at an error.
 */
static size_t conn_parse(struct gw_conn *c, const char *data, size_t len)
{
	size_t off = 0;
	c->driving = true;
	while (conn_parsing(c)) {
		size_t used;
		enum gw_http_event ev = gw_http_parse(&c->http, data + off, len - off, &used);
		off += used;
		if (c->state == GW_CONN_IDLE && c->http.started) {
			c->state = GW_CONN_HEAD;
			backend_pool_put(&c->rec.pool);	/* the last request's */
			c->rec = (struct gw_reqrec){ .t_start = uv_hrtime(), .active = !c->admin,
						     .reason = GW_R_COUNT, .tokens_reported = -1,
						     .tokens_output = -1 };
			gw__conn_arm(c, c->srv->conf->timeouts.header_ms);
		}
		if (ev == GW_HTTP_MORE)
			break;
		if (ev == GW_HTTP_HEAD) {
			on_head(c);
		} else if (ev == GW_HTTP_DONE) {
			on_request(c);
		} else {
			gw__conn_reject(c, (enum gw_reason)c->http.error, c->http.error_detail, 0);
			break;
		}
	}
	c->driving = false;
	return off;
}

/* Parse what is pending (after a request finished). */
static void conn_resume(struct gw_conn *c)
{
	struct gw_buf in = c->pending;
	c->pending = (struct gw_buf)GW_BUF_INIT;
	size_t used = conn_parse(c, in.data, in.len);
	if (used < in.len && c->state != GW_CONN_CLOSING)
		stash(c, in.data + used, in.len - used);
	gw_buf_finish(&in);
}

/* The deferred resume (defer.h), from the loop. */
static void resumed(struct gw_defer *d)
{
	struct gw_conn *c = gw__conn_from((char *)d - offsetof(struct gw_conn, resume));
	if (c->pending.len > 0 && conn_parsing(c))
		conn_resume(c);
}

/* Reads land in the server's one read buffer, except the rest of a large
 * body of known length: that is read straight into the request's body
 * buffer (allocated whole at the head), with no copy and in as few reads as
 * the socket allows. */
#define BODY_DIRECT_MIN (16 * 1024)

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct gw_conn *c = gw__conn_from(h->data);
	size_t room;
	char *at;
	if (c->state == GW_CONN_BODY && c->pending.len == 0 && conn_parsing(c) &&
	    (at = gw_http_body_room(&c->http, &room)) != NULL && room >= BODY_DIRECT_MIN) {
		buf->base = at;
		buf->len = room;
		return;
	}
	buf->base = c->srv->readbuf;
	buf->len = sizeof(c->srv->readbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct gw_conn *c = gw__conn_from(s->data);
	if (nread == 0 || c->state == GW_CONN_CLOSING)
		return;
	if (c->state == GW_CONN_FLUSH && nread > 0) {
		/* Lingering: the rest of a request we will not serve. */
		c->linger_bytes += (uint32_t)nread;
		if (c->linger_bytes > LINGER_MAX)
			gw__conn_close(c);
		return;
	}
	if (c->state == GW_CONN_FLUSH && nread == UV_EOF && c->writes > 0) {
		/* Done sending, still to read its answer: let the answer finish
		 * (closing now would cancel it); flushed() closes after. */
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
		c->lingering = false;
		return;
	}
	if (nread < 0) {
		/* The client is gone (or half-closed, which HTTP/1.1 clients do
		 * not do before reading their response): give up on it. */
		if (c->state == GW_CONN_QUEUED || c->state == GW_CONN_UPSTREAM) {
			c->srv->metrics.client_aborts++;
			gw_debug("client gone while %s request_id=%s",
				 c->state == GW_CONN_QUEUED ? "queued" : "in flight", c->request_id);
		}
		gw__conn_close(c);
		return;
	}
	if (c->state == GW_CONN_BODY)
		gw__conn_arm(c, c->srv->conf->timeouts.body_ms);
	if (c->pending.len == 0 && conn_parsing(c)) {
		size_t used = conn_parse(c, buf->base, (size_t)nread);
		if (used < (size_t)nread && c->state != GW_CONN_CLOSING)
			stash(c, buf->base + used, (size_t)nread - used);
	} else {
		stash(c, buf->base, (size_t)nread);
		if (conn_parsing(c) && c->state != GW_CONN_CLOSING)
			conn_resume(c);
	}
}

void gw__conn_finish_request(struct gw_conn *c, bool keep_alive)
{
	if (c->state == GW_CONN_CLOSING)
		return;
	scan_drop(c);
	gw__account_end(&c->srv->account, c);
	/* The request is over: its tenant may go (a reload may have removed it). */
	c->classified = false;
	queue_tenant_put(&c->qi.tenant);
	c->qi.model = NULL;
	free(c->model);
	c->model = NULL;
	if (c->writes > 0) {
		/* answers still on their way: the timer judges progress from here */
		c->outq_mark = UINT32_MAX;
		gw__conn_client_progressed(c);
	}
	keep_alive = keep_alive && c->http.msg.keep_alive && !c->srv->draining;
	if (!keep_alive) {
		c->close_after = true;
		c->state = GW_CONN_FLUSH;
		c->lingering = !c->http.done;
		if (c->reading && !c->lingering) {
			uv_read_stop((uv_stream_t *)&c->tcp);
			c->reading = false;
		}
		if (c->writes == 0)
			flushed(c);
		else
			gw__conn_arm(c, c->srv->conf->timeouts.idle_ms);
		return;
	}
	/* An idle connection keeps no buffers: release them unless another
	 * request is already waiting. */
	gw_http_next(&c->http, c->pending.len == 0);
	c->state = GW_CONN_IDLE;
	c->request_id[0] = '\0';
	gw__conn_arm(c, c->srv->conf->timeouts.idle_ms);
	if (gw__conn_write_queue(c) > GW_WRITE_HIGH) {
		/* The client is not reading its answers: answer nothing more
		 * (and read nothing more) until it does, or idle_ms passes. */
		c->write_blocked = true;
		if (c->reading) {
			uv_read_stop((uv_stream_t *)&c->tcp);
			c->reading = false;
		}
		return;
	}
	if (!c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
			c->reading = true;
	}
	if (!c->driving && c->pending.len > 0)
		gw_defer_schedule(&c->srv->defer, &c->resume);
}

void gw__conn_reject(struct gw_conn *c, enum gw_reason r, const char *detail, uint64_t retry_ms)
{
	struct gw_server *srv = c->srv;
	const struct gw_reason_info *ri = gw_reason_info(r);
	/* A request that was not read to its end leaves the stream in an
	 * unknown state: answer, then close. */
	bool keep = c->http.done && c->http.msg.keep_alive && !srv->draining;
	const char *tenant = c->classified ? c->qi.tenant->cfg->name : NULL;
	const char *klass = c->classified ? conf_class_name((enum conf_class)c->qi.klass) : NULL;
	c->rec.status = (uint16_t)ri->status;
	c->rec.reason = (uint8_t)r;
	if (c->classified && c->rec.t_dispatch == 0) {
		/* How the request left (or never entered) its queue. */
		uint64_t waited = c->rec.t_ready ? uv_hrtime() - c->rec.t_ready : 0;
		gw__account_queue(&srv->account, (enum conf_class)c->qi.klass,
				 r == GW_R_QUEUE_TIMEOUT ? GW_QOUT_TIMEOUT : GW_QOUT_REJECTED, waited);
	}
	/* 4xx are the client's doing and may come by the thousand: counters and
	 * the access log keep them; the operator log gets 5xx. */
	enum gw_log_level level = ri->status >= 500 ? GW_LOG_WARN : GW_LOG_DEBUG;
	if (level >= gw_log_min) {
		/* The detail may quote the client (a model's name). */
		char shown[4 * GW_ERROR_MSG_MAX];
		gw_log(level, "reject %d %s peer=%s request_id=%s tenant=%s class=%s: %s", ri->status,
		       ri->code, gw__conn_peer(c), c->request_id[0] ? c->request_id : "-",
		       tenant ? tenant : "-", klass ? klass : "-", gw_log_text(shown, sizeof(shown), detail));
	}

	struct gw_buf limits = GW_BUF_INIT;
	int rc = 0;
	if (c->classified)
		rc |= gw_openai_ratelimit_headers(c->qi.tenant, gw_now_ms(srv), &limits);
	rc |= gw_buf_append(&limits, "", 1);
	/* SDKs ignore hints past a minute and would retry at once: a longer
	 * wait is said as "do not retry" instead.  5xx may pass; 429 may when
	 * it has a hint; a bad request will not get better. */
	if (retry_ms >= GW_RETRY_HINT_MAX_MS)
		retry_ms = 0;
	bool should_retry = ri->status >= 500 || (ri->status == 429 && retry_ms > 0);
	struct gw_reject rj = { detail, c->request_id, tenant, klass, retry_ms, should_retry, limits.data };
	struct gw_buf out = GW_BUF_INIT;
	if (rc == 0)
		rc = gw_error_render(&out, r, &rj, keep);
	gw_buf_finish(&limits);
	if (rc < 0) {
		gw_buf_finish(&out);
		gw__conn_close(c);
		return;
	}
	gw__conn_write(c, &out);
	gw__conn_finish_request(c, keep);
}

void gw__conn_respond(struct gw_conn *c, int status, const char *type, struct gw_buf *body)
{
	struct gw_buf out = GW_BUF_INIT;
	int rc = gw_buf_appendf(&out, "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
				"cache-control: no-store\r\n\r\n",
				status, gw_status_text(status), type, body->len);
	rc |= gw_buf_append(&out, body->data, body->len);
	gw_buf_finish(body);
	if (rc != 0) {
		gw_buf_finish(&out);
		gw__conn_reject(c, GW_R_INTERNAL, "out of memory", 0);
		return;
	}
	c->rec.status = (uint16_t)status;
	gw__conn_write(c, &out);
	gw__conn_finish_request(c, true);
}

void gw__conn_accept(struct gw_server *srv, uv_stream_t *listener, bool admin)
{
	struct gw_conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		gw_error("accept: out of memory");
		return;
	}
	c->magic = GW_CONN_MAGIC;
	c->srv = srv;
	c->admin = admin;
	uv_tcp_init(srv->loop, &c->tcp);
	uv_timer_init(srv->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles = 2;
	gw_defer_init(&c->resume, resumed);
	gw_http_init(&c->http, HTTP_REQUEST, &srv->req_limits, NULL, NULL);
	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;

	int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
	if (rc < 0) {
		gw_warn("accept: %s", uv_strerror(rc));
		gw__conn_close(c);
		return;
	}
	srv->metrics.connections++;
	if (!admin && srv->nconns > srv->conf->limits.max_connections) {
		srv->metrics.connections_refused++;
		gw_warn("connection refused: %u open, limits.max_connections is %u",
			srv->nconns - 1, srv->conf->limits.max_connections);
		gw__conn_close(c);
		return;
	}
	int namelen = sizeof(c->peer);
	uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &namelen);
	peer_name(c);
	uv_tcp_nodelay(&c->tcp, 1);
	rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (rc < 0) {
		gw__conn_close(c);
		return;
	}
	c->reading = true;
	gw__conn_arm(c, srv->conf->timeouts.header_ms);
}
