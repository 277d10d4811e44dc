/*
 * http.c - HTTP/1.1 message parsing with limits; see http.h.
 *
 * llhttp drives a set of callbacks.  We pause it (by returning HPE_PAUSED
 * from a callback, never by calling llhttp_pause() inside one) at two
 * points of every message: after the header section and after the message.
 * The position llhttp stopped at tells the caller how much input was used.
 *
 * `in` remembers which token the previous data callback was appending to,
 * because llhttp may split a name, a value or the URL across callbacks and
 * across reads.  The *_complete callbacks close a token so that a field with
 * an empty value followed by another field never merges the two names.
 *
 * Limits are checked while bytes arrive, never after buffering them:
 *  - head bytes (start line and fields) against max_header_bytes, counting
 *    every byte consumed before the head completes, so that whitespace
 *    llhttp skips cannot be used to grow a head without bound;
 *  - the number of fields against max_headers;
 *  - a buffered body against max_body_bytes (a declared Content-Length over
 *    the limit is refused as soon as the head is complete).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/errors.h"
#include "gateway/http.h"

#define GW_HTTP_MAGIC 0x48545450u	/* "HTTP" */

enum { IN_NONE = 0, IN_START, IN_NAME, IN_VALUE };

static struct gw_http *from_parser(llhttp_t *p)
{
	struct gw_http *h = p->data;
	if (h == NULL || h->magic != GW_HTTP_MAGIC)
		abort();
	return h;
}

static int fail(struct gw_http *h, enum gw_reason r, const char *detail)
{
	h->error = (int)r;
	h->error_detail = detail;
	return -1;
}

/* Append a piece of the current token to the head buffer, within the limit. */
static int head_append(struct gw_http *h, const char *at, size_t len)
{
	struct gw_msg *m = &h->msg;
	if (m->head.len + len > h->limits->max_header_bytes)
		return fail(h, GW_R_HEADERS_TOO_LARGE, "request header section is too large");
	if (gw_buf_append(&m->head, at, len) < 0)
		return fail(h, GW_R_INTERNAL, "out of memory");
	return 0;
}

static int on_message_begin(llhttp_t *p)
{
	struct gw_http *h = from_parser(p);
	h->started = true;
	h->in = IN_NONE;
	return 0;
}

static int on_start_token(llhttp_t *p, const char *at, size_t len)
{
	struct gw_http *h = from_parser(p);
	if (h->in != IN_START) {
		h->in = IN_START;
		h->msg.start_off = (uint32_t)h->msg.head.len;
	}
	h->msg.start_len += (uint32_t)len;
	return head_append(h, at, len);
}

static int on_token_complete(llhttp_t *p)
{
	from_parser(p)->in = IN_NONE;
	return 0;
}

/*
 * A chunked body's trailer section.  Its fields are read and dropped: they
 * never authenticate, classify or route a request, and are never forwarded
 * (the body is re-framed with a Content-Length), so nothing that looks only
 * at the header section can be bypassed through them.  Their bytes still
 * count against the header bound.
 */
static int trailer_bytes(struct gw_http *h, size_t len)
{
	h->trailer_len += (uint32_t)len;
	if (h->trailer_len > h->limits->max_header_bytes)
		return fail(h, GW_R_HEADERS_TOO_LARGE, "trailer section is too large");
	return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct gw_http *h = from_parser(p);
	struct gw_msg *m = &h->msg;
	if (h->head_done)
		return trailer_bytes(h, len);
	if (h->in != IN_NAME) {
		if (m->nfields >= h->limits->max_headers)
			return fail(h, GW_R_TOO_MANY_HEADERS, "request has too many header fields");
		if (m->nfields == m->fields_cap) {
			uint32_t cap = m->fields_cap ? m->fields_cap * 2 : 16;
			struct gw_field *f = realloc(m->fields, cap * sizeof(*f));
			if (f == NULL)
				return fail(h, GW_R_INTERNAL, "out of memory");
			m->fields = f;
			m->fields_cap = cap;
		}
		struct gw_field *f = &m->fields[m->nfields++];
		f->hop = false;
		h->named = false;
		f->name_off = f->value_off = (uint32_t)m->head.len;
		f->name_len = f->value_len = 0;
		h->in = IN_NAME;
	}
	m->fields[m->nfields - 1].name_len += (uint32_t)len;
	return head_append(h, at, len);
}

static int on_header_field_complete(llhttp_t *p)
{
	struct gw_http *h = from_parser(p);
	h->in = IN_NONE;
	h->named = true;
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct gw_http *h = from_parser(p);
	if (h->head_done)
		return trailer_bytes(h, len);
	if (h->in != IN_VALUE && !h->named)
		return fail(h, GW_R_BAD_REQUEST, "a header field has an empty name");
	h->named = false;
	struct gw_field *f = &h->msg.fields[h->msg.nfields - 1];
	if (h->in != IN_VALUE) {
		f->value_off = (uint32_t)h->msg.head.len;
		h->in = IN_VALUE;
	}
	f->value_len += (uint32_t)len;
	return head_append(h, at, len);
}

static void mark_hops(struct gw_msg *m);

/* The authority of an absolute-form target ("http://HOST/..."), or NULL. */
static const char *target_authority(const struct gw_msg *m, size_t *len)
{
	const char *u = gw_msg_start(m);
	size_t n = m->start_len, skip;
	if (n > 7 && strncasecmp(u, "http://", 7) == 0)
		skip = 7;
	else if (n > 8 && strncasecmp(u, "https://", 8) == 0)
		skip = 8;
	else
		return NULL;
	const char *a = u + skip;
	size_t alen = 0;
	while (skip + alen < n && a[alen] != '/' && a[alen] != '?')
		alen++;
	*len = alen;
	return a;
}

const char *gw_msg_origin_form(const struct gw_msg *m, size_t *len)
{
	size_t alen;
	const char *a = target_authority(m, &alen);
	if (a == NULL) {
		*len = m->start_len;
		return gw_msg_start(m);
	}
	const char *path = a + alen, *end = gw_msg_start(m) + m->start_len;
	if (path == end) {
		*len = 1;
		return "/";
	}
	*len = (size_t)(end - path);
	return path;
}

/*
 * RFC 9112 strictness that llhttp leaves to its user: field names are never
 * empty; a request has at most one Host, and an absolute-form target names
 * the same host; the only transfer coding is chunked (sluice would
 * otherwise forward a body it cannot decode).  A response's bad field is
 * the backend's fault: the exchange answers it 502.
 */
static int check_fields(struct gw_http *h)
{
	struct gw_msg *m = &h->msg;
	const struct gw_field *host = NULL;
	bool request = h->parser.type == HTTP_REQUEST;
	for (uint32_t i = 0; i < m->nfields; i++) {
		const struct gw_field *f = &m->fields[i];
		const char *name = gw_field_name(m, f);
		if (f->name_len == 0)
			return fail(h, GW_R_BAD_REQUEST, "a header field has an empty name");
		if (request && gw_token_eq(name, f->name_len, "host")) {
			if (host != NULL)
				return fail(h, GW_R_BAD_REQUEST, "more than one Host field");
			host = f;
		}
		if (gw_token_eq(name, f->name_len, "transfer-encoding") &&
		    !gw_token_eq(gw_field_value(m, f), f->value_len, "chunked"))
			return fail(h, GW_R_UNSUPPORTED_CODING, "only the chunked transfer coding is supported");
	}
	size_t alen;
	const char *authority = request ? target_authority(m, &alen) : NULL;
	if (authority != NULL && host != NULL &&
	    !(host->value_len == alen && strncasecmp(gw_field_value(m, host), authority, alen) == 0))
		return fail(h, GW_R_BAD_REQUEST, "the request target names another host than the Host field");
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct gw_http *h = from_parser(p);
	struct gw_msg *m = &h->msg;
	m->method = p->method;
	m->status = p->status_code;
	m->http_major = p->http_major;
	m->http_minor = p->http_minor;
	m->chunked = (p->flags & F_CHUNKED) != 0;
	m->has_length = (p->flags & F_CONTENT_LENGTH) != 0;
	m->content_length = m->has_length ? p->content_length : 0;
	mark_hops(m);
	if (check_fields(h) < 0)
		return -1;
	const struct gw_field *expect = gw_msg_field(m, "expect");
	m->expect_continue = expect != NULL &&
		gw_token_eq(gw_field_value(m, expect), expect->value_len, "100-continue");
	if (h->body_cb == NULL && m->has_length && m->content_length > h->limits->max_body_bytes)
		return fail(h, GW_R_BODY_TOO_LARGE, "request body is too large");
	/* A declared length is allocated once: no copies while it grows, and
	 * no slack held while the request waits in a queue. */
	if (h->body_cb == NULL && m->has_length && m->content_length > 0 &&
	    gw_buf_reserve_exact(&m->body, (size_t)m->content_length) < 0)
		return fail(h, GW_R_INTERNAL, "out of memory");
	h->head_done = true;
	/* A response to HEAD has no body whatever its fields say: tell llhttp
	 * (return 1) instead of pausing; the head event is reported anyway. */
	if (h->skip_body)
		return 1;
	return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct gw_http *h = from_parser(p);
	if (h->body_cb != NULL)
		return h->body_cb(h->body_ctx, at, len) == 0 ? 0 : fail(h, GW_R_INTERNAL, "body sink failed");
	if (h->msg.body.len + len > h->limits->max_body_bytes)
		return fail(h, GW_R_BODY_TOO_LARGE, "request body is too large");
	if (h->msg.body.data != NULL && at == h->msg.body.data + h->msg.body.len &&
	    h->msg.body.cap - h->msg.body.len >= len)
		h->msg.body.len += len;	/* read straight into the body (gw_http_body_room) */
	else if (gw_buf_append(&h->msg.body, at, len) < 0)
		return fail(h, GW_R_INTERNAL, "out of memory");
	if (h->observe_cb != NULL && h->observe_cb(h->observe_ctx, at, len) != 0)
		return fail(h, GW_R_INTERNAL, "body inspection failed");
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct gw_http *h = from_parser(p);
	h->msg.keep_alive = llhttp_should_keep_alive(p) != 0;
	h->done = true;
	return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_start_token,
	.on_status = on_start_token,
	.on_url_complete = on_token_complete,
	.on_status_complete = on_token_complete,
	.on_header_field = on_header_field,
	.on_header_field_complete = on_header_field_complete,
	.on_header_value = on_header_value,
	.on_header_value_complete = on_token_complete,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

void gw_http_init(struct gw_http *h, llhttp_type_t type, const struct gw_http_limits *limits,
		  gw_http_body_cb body_cb, void *body_ctx)
{
	memset(h, 0, sizeof(*h));
	h->magic = GW_HTTP_MAGIC;
	h->limits = limits;
	h->body_cb = body_cb;
	h->body_ctx = body_ctx;
	llhttp_init(&h->parser, type, &settings);
	h->parser.data = h;
}

static void msg_reset(struct gw_msg *m, bool release)
{
	if (release) {
		gw_buf_finish(&m->head);
		gw_buf_finish(&m->body);
		free(m->fields);
		m->fields = NULL;
		m->fields_cap = 0;
	}
	struct gw_msg keep = *m;
	memset(m, 0, sizeof(*m));
	m->head = keep.head;
	m->body = keep.body;
	m->fields = keep.fields;
	m->fields_cap = keep.fields_cap;
	m->head.len = 0;
	m->body.len = 0;
}

void gw_http_finish(struct gw_http *h)
{
	msg_reset(&h->msg, true);
	h->magic = 0;
}

void gw_http_next(struct gw_http *h, bool release)
{
	/* After a message that asked for an upgrade (never proxied as one),
	 * llhttp would treat what follows as the upgraded protocol's bytes and
	 * stop at once: start it afresh, so a pipelined request is parsed. */
	if (llhttp_get_upgrade(&h->parser))
		llhttp_reset(&h->parser);
	msg_reset(&h->msg, release);
	h->head_seen = 0;
	h->trailer_len = 0;
	h->in = IN_NONE;
	h->head_done = h->head_reported = h->done = h->started = h->skip_body = false;
	h->error = 0;
	h->error_detail = NULL;
	h->observe_cb = NULL;
	h->observe_ctx = NULL;
}

char *gw_http_body_room(struct gw_http *h, size_t *len)
{
	struct gw_msg *m = &h->msg;
	if (h->body_cb != NULL || !h->head_done || h->done || !m->has_length || m->body.len >= m->content_length)
		return NULL;
	size_t left = (size_t)(m->content_length - m->body.len);
	if (m->body.cap - m->body.len < left)
		return NULL;
	*len = left;
	return m->body.data + m->body.len;
}

void gw_http_observe_body(struct gw_http *h, gw_http_body_cb cb, void *ctx)
{
	h->observe_cb = cb;
	h->observe_ctx = ctx;
}

void gw_http_expect_no_body(struct gw_http *h)
{
	h->skip_body = true;
}

/* Events already decided by callbacks but not yet reported to the caller. */
static enum gw_http_event pending_event(struct gw_http *h)
{
	if (h->head_done && !h->head_reported) {
		h->head_reported = true;
		return GW_HTTP_HEAD;
	}
	if (h->done)
		return GW_HTTP_DONE;
	return GW_HTTP_MORE;
}

enum gw_http_event gw_http_parse(struct gw_http *h, const char *data, size_t len, size_t *consumed)
{
	*consumed = 0;
	if (h->error)
		return GW_HTTP_ERROR;
	enum gw_http_event ev = pending_event(h);
	if (ev != GW_HTTP_MORE)
		return ev;

	bool head_before = h->head_done;
	llhttp_errno_t err = llhttp_execute(&h->parser, data, len);
	size_t used = len;
	if (err != HPE_OK)
		used = (size_t)(llhttp_get_error_pos(&h->parser) - data);
	*consumed = used;

	if (!head_before) {
		h->head_seen += (uint32_t)(used > UINT32_MAX ? UINT32_MAX : used);
		if (h->error == 0 && h->head_seen > h->limits->max_header_bytes) {
			fail(h, GW_R_HEADERS_TOO_LARGE, "request header section is too large");
			return GW_HTTP_ERROR;
		}
	}

	switch (err) {
	case HPE_OK:
		return GW_HTTP_MORE;
	case HPE_PAUSED:
		llhttp_resume(&h->parser);
		return pending_event(h);
	case HPE_PAUSED_UPGRADE:
		/* Upgrade and CONNECT are not proxied: the message is treated as
		 * an ordinary one and its Upgrade field is dropped as hop-by-hop. */
		llhttp_resume_after_upgrade(&h->parser);
		return pending_event(h);
	default:
		if (h->error == 0) {
			h->error = GW_R_BAD_REQUEST;
			h->error_detail = llhttp_get_error_reason(&h->parser);
			if (h->error_detail == NULL)
				h->error_detail = llhttp_errno_name(err);
		}
		return GW_HTTP_ERROR;
	}
}

enum gw_http_event gw_http_eof(struct gw_http *h)
{
	if (h->error)
		return GW_HTTP_ERROR;
	if (h->done)
		return GW_HTTP_DONE;
	llhttp_errno_t err = llhttp_finish(&h->parser);
	if (err == HPE_PAUSED)
		llhttp_resume(&h->parser);
	if (h->done)
		return GW_HTTP_DONE;
	if (err == HPE_OK && !h->started)
		return GW_HTTP_MORE;
	if (h->error == 0) {
		h->error = GW_R_UPSTREAM_ERROR;
		h->error_detail = "connection closed before the message was complete";
	}
	return GW_HTTP_ERROR;
}

const struct gw_field *gw_msg_field(const struct gw_msg *m, const char *name)
{
	for (uint32_t i = 0; i < m->nfields; i++) {
		const struct gw_field *f = &m->fields[i];
		if (gw_token_eq(gw_field_name(m, f), f->name_len, name))
			return f;
	}
	return NULL;
}

/* Does the comma-separated list in `list` contain `tok` (case-insensitive)? */
static bool list_has(const char *list, size_t len, const char *tok, size_t toklen)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
			i++;
		size_t start = i;
		while (i < len && list[i] != ',')
			i++;
		size_t end = i;
		while (end > start && (list[end - 1] == ' ' || list[end - 1] == '\t'))
			end--;
		if (end - start == toklen && strncasecmp(list + start, tok, toklen) == 0)
			return true;
	}
	return false;
}

/* Mark the hop-by-hop fields of m (RFC 9110 7.6.1: the fixed ones, and
 * those a Connection field names), once per message: proxies ask for
 * every field. */
static void mark_hops(struct gw_msg *m)
{
	static const char *const hop[] = {
		"connection", "keep-alive", "proxy-connection", "te", "trailer",
		"transfer-encoding", "upgrade",
	};
	for (uint32_t i = 0; i < m->nfields; i++) {
		struct gw_field *f = &m->fields[i];
		const char *name = gw_field_name(m, f);
		f->hop = false;
		for (size_t j = 0; j < sizeof(hop) / sizeof(hop[0]) && !f->hop; j++)
			f->hop = gw_token_eq(name, f->name_len, hop[j]);
	}
	for (uint32_t i = 0; i < m->nfields; i++) {
		const struct gw_field *c = &m->fields[i];
		if (!gw_token_eq(gw_field_name(m, c), c->name_len, "connection"))
			continue;
		for (uint32_t j = 0; j < m->nfields; j++) {
			struct gw_field *f = &m->fields[j];
			f->hop = f->hop || list_has(gw_field_value(m, c), c->value_len, gw_field_name(m, f), f->name_len);
		}
	}
}
