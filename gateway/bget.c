/*
 * bget.c - one GET to a backend on a connection of its own; see bget.h.
 *
 * A get is done once its callback came or it was cancelled; it is freed
 * when it is done and no connect is in flight.  The request's text is
 * written when the get starts, so a reload meanwhile (a new path, a rotated
 * credential) applies to the next get, and is wiped when the get is done:
 * it may carry the pool's credential.
 */
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/upstream.h"
#include "gateway/bget.h"
#include "gateway/buf.h"
#include "gateway/http.h"
#include "gateway/server.h"

#define GW_BGET_MAGIC 0x42474554u	/* "BGET" */

struct gw_bget {
	uint32_t magic;
	struct gw_server *srv;
	struct backend_conn *bc;	/* NULL once done */
	uv_connect_t connect;
	struct gw_buf req;
	struct gw_http_limits limits;
	struct gw_http resp;
	size_t max_body;
	gw_bget_cb *cb;
	void (*connected)(void *arg);
	void *arg;
	bool connecting;		/* `connect` is in flight: its callback will come */
	bool done;
};

static struct gw_bget *bget_from(void *data)
{
	struct gw_bget *g = data;
	if (g == NULL || g->magic != GW_BGET_MAGIC)
		abort();
	return g;
}

static void maybe_free(struct gw_bget *g)
{
	if (!g->done || g->connecting)
		return;
	g->magic = 0;
	free(g);
}

/* Close the connection and forget the request; no callback. */
static void close_get(struct gw_bget *g)
{
	g->done = true;
	gw_http_finish(&g->resp);
	backend_conn_close(&g->bc);
	if (g->req.data != NULL)
		explicit_bzero(g->req.data, g->req.len);
	gw_buf_finish(&g->req);
	maybe_free(g);
}

static void finish(struct gw_bget *g, enum gw_bget_result r, const char *detail)
{
	if (g->done)
		return;
	const struct gw_msg *m = &g->resp.msg;
	struct gw_bget_answer a = { .result = r, .detail = detail ? detail : "" };
	if (r == GW_BGET_ANSWERED) {
		a.status = m->status;
		a.body = g->max_body ? m->body.data : NULL;
		a.body_len = g->max_body ? m->body.len : 0;
	}
	g->cb(g->arg, &a);
	close_get(g);
}

void gw__bget_cancel(struct gw_bget *g)
{
	if (!g->done)
		close_get(g);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct gw_bget *g = bget_from(backend_conn_from(h)->owner);
	(void)suggested;
	buf->base = g->srv->readbuf;
	buf->len = sizeof(g->srv->readbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	if (nread == 0)
		return;
	struct gw_bget *g = bget_from(backend_conn_from((uv_handle_t *)s)->owner);
	enum gw_http_event ev = GW_HTTP_MORE;
	if (nread < 0) {
		ev = nread == UV_EOF ? gw_http_eof(&g->resp) : GW_HTTP_ERROR;
		if (ev != GW_HTTP_DONE)
			finish(g, GW_BGET_FAILED, nread == UV_EOF ? "connection closed before a response"
								 : uv_strerror((int)nread));
		else
			finish(g, GW_BGET_ANSWERED, NULL);
		return;
	}
	/* The head stops the parser once; the body follows in the same read. */
	for (size_t at = 0, used; at < (size_t)nread; at += used) {
		ev = gw_http_parse(&g->resp, buf->base + at, (size_t)nread - at, &used);
		if (ev == GW_HTTP_HEAD && g->max_body == 0)
			break;	/* all it asked for: the body is never read */
		if (ev == GW_HTTP_DONE || ev == GW_HTTP_ERROR || (ev == GW_HTTP_MORE && used == 0))
			break;
	}
	if (ev == GW_HTTP_ERROR)
		finish(g, GW_BGET_FAILED, g->resp.error_detail ? g->resp.error_detail : "bad response");
	else if (ev == GW_HTTP_DONE || (ev == GW_HTTP_HEAD && g->max_body == 0))
		finish(g, GW_BGET_ANSWERED, NULL);
}

static int discard_body(void *ctx, const char *at, size_t len)
{
	(void)ctx;
	(void)at;
	(void)len;
	return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
	struct gw_bget *g = bget_from(req->data);
	g->connecting = false;
	if (g->done) {
		maybe_free(g);
		return;
	}
	if (status < 0) {
		finish(g, GW_BGET_REFUSED, uv_strerror(status));
		return;
	}
	if (g->connected != NULL)
		g->connected(g->arg);
	uv_tcp_nodelay(&g->bc->tcp, 1);
	/* One write: the request fits any socket buffer. */
	int rc = backend_conn_use(g->bc, g, on_alloc, on_read);
	if (rc == 0) {
		uv_buf_t ub = uv_buf_init(g->req.data, (unsigned)g->req.len);
		int n = uv_try_write((uv_stream_t *)&g->bc->tcp, &ub, 1);
		rc = n == (int)g->req.len ? 0 : n < 0 ? n : UV_EAGAIN;
	}
	explicit_bzero(g->req.data, g->req.len);
	if (rc < 0)
		finish(g, GW_BGET_FAILED, uv_strerror(rc));
}

int gw__bget_start(struct gw_server *srv, struct backend *b, const struct gw_bget_req *req,
		   struct gw_bget **out)
{
	struct gw_bget *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return UV_ENOMEM;
	const struct conf_pool *cp = b->pool->cfg;
	*g = (struct gw_bget){ .magic = GW_BGET_MAGIC, .srv = srv, .req = GW_BUF_INIT, .max_body = req->max_body,
			       .cb = req->cb, .connected = req->connected, .arg = req->arg,
			       .limits = { .max_body_bytes = req->max_body, .max_header_bytes = 8192,
					   .max_headers = 64 } };
	int rc = gw_buf_appendf(&g->req, "GET %s HTTP/1.1\r\nhost: %s\r\nuser-agent: %s\r\naccept: %s\r\n"
				"connection: close\r\n", req->path, b->name, req->user_agent, req->accept);
	if (cp->upstream_bearer != NULL) {
		/* Not through a format (its scratch copy on the stack is not
		 * wiped), and with room for the end first: once the credential
		 * is in, the buffer must not move. */
		static const char field[] = "authorization: Bearer ";
		rc |= gw_buf_reserve(&g->req, sizeof(field) + strlen(cp->upstream_bearer) + 4);
		rc |= gw_buf_append(&g->req, field, sizeof(field) - 1);
		rc |= gw_buf_appends(&g->req, cp->upstream_bearer);
		rc |= gw_buf_appends(&g->req, "\r\n");
	}
	rc |= gw_buf_appends(&g->req, "\r\n");
	gw_http_init(&g->resp, HTTP_RESPONSE, &g->limits, req->max_body ? NULL : discard_body, g);
	if (rc == 0)
		rc = backend_conn_create(srv->loop, b, &g->bc);
	else
		rc = UV_ENOMEM;
	if (rc == 0) {
		g->connect.data = g;
		rc = uv_tcp_connect(&g->connect, &g->bc->tcp, (const struct sockaddr *)&b->sa, on_connect);
		g->connecting = rc == 0;
	}
	if (rc < 0) {
		close_get(g);
		return rc;
	}
	*out = g;
	return 0;
}
