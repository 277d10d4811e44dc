/*
 * http.h - HTTP/1.1 message parsing on top of llhttp, with limits.
 *
 * One `struct gw_http` parses a stream of messages (requests on a client
 * connection, responses on an upstream one).  It knows nothing of sockets:
 * the caller feeds bytes with gw_http_parse() and gets back an event:
 *
 *   GW_HTTP_MORE   every byte was consumed; feed more.
 *   GW_HTTP_HEAD   the header section is complete (the message's start line
 *                  and fields are readable); parsing stopped right after it
 *                  so that the caller can answer `Expect: 100-continue`,
 *                  refuse early, or write a response head, before the body.
 *   GW_HTTP_DONE   the message is complete; parsing stopped right after it.
 *                  Bytes after it belong to the next (pipelined) message and
 *                  are not consumed.  Call gw_http_next() before feeding them.
 *   GW_HTTP_ERROR  the input is invalid or over a limit; `error` says why
 *                  (an enum gw_reason) and `error_detail` in words.  The
 *                  stream cannot continue.
 *
 * `*consumed` always says how many input bytes were used, so the caller
 * keeps the rest.  llhttp may hand a token over in pieces; names, values and
 * the URL are accumulated into `msg.head`, one buffer owned by the message,
 * and referred to by offsets so that growth never leaves a dangling pointer.
 *
 * Bodies are either buffered in `msg.body` (requests: bounded by
 * max_body_bytes) or handed piece by piece to `body_cb` (responses: streamed
 * to the client, never buffered whole).
 */
#ifndef SLUICE_GATEWAY_HTTP_H
#define SLUICE_GATEWAY_HTTP_H

#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "gateway/buf.h"

enum gw_http_event { GW_HTTP_MORE = 0, GW_HTTP_HEAD, GW_HTTP_DONE, GW_HTTP_ERROR };

struct gw_http_limits {
	uint64_t max_body_bytes;	/* 0: no body may be buffered beyond this */
	uint32_t max_header_bytes;	/* start line plus header section */
	uint32_t max_headers;
};

struct gw_field {
	uint32_t name_off, name_len;
	uint32_t value_off, value_len;
	bool hop;			/* hop-by-hop: set when the head completes */
};

struct gw_msg {
	uint8_t method;			/* llhttp_method_t, requests */
	uint16_t status;		/* responses */
	uint8_t http_major, http_minor;
	bool keep_alive;		/* valid from GW_HTTP_DONE */
	bool expect_continue;		/* request carried Expect: 100-continue */
	bool chunked;			/* Transfer-Encoding: chunked */
	bool has_length;		/* Content-Length present */
	uint64_t content_length;
	uint32_t start_off, start_len;	/* URL (request) or reason phrase (response) in head */
	struct gw_field *fields;
	uint32_t nfields, fields_cap;
	struct gw_buf head;		/* bytes of URL, names and values */
	struct gw_buf body;		/* buffered body when there is no body_cb */
};

/* Called with body bytes as they are parsed; return 0, or -1 to stop with an error. */
typedef int (*gw_http_body_cb)(void *ctx, const char *at, size_t len);

struct gw_http {
	uint32_t magic;
	llhttp_t parser;
	const struct gw_http_limits *limits;
	gw_http_body_cb body_cb;
	void *body_ctx;
	gw_http_body_cb observe_cb;	/* sees a buffered body as it arrives */
	void *observe_ctx;
	struct gw_msg msg;
	uint32_t head_seen;		/* bytes consumed before the head completed */
	uint32_t trailer_len;		/* bytes of a (dropped) trailer section */
	uint8_t in;			/* which token the last data callback appended to */
	bool named;			/* a field name is complete and awaits its value */
	bool head_done;			/* callbacks saw the end of the head */
	bool head_reported;		/* ...and GW_HTTP_HEAD was returned */
	bool done;			/* callbacks saw the end of the message */
	bool skip_body;			/* response to HEAD: no body whatever the fields say */
	bool started;			/* at least one byte of this message was consumed */
	int error;			/* enum gw_reason when GW_HTTP_ERROR */
	const char *error_detail;
};

/*
 * Prepare a parser.  `type` is HTTP_REQUEST or HTTP_RESPONSE; `limits` must
 * outlive the parser.  With a body_cb the body is streamed, not buffered.
 */
void gw_http_init(struct gw_http *h, llhttp_type_t type, const struct gw_http_limits *limits,
		  gw_http_body_cb body_cb, void *body_ctx);

/* Free all memory; the parser can be gw_http_init()ed again. */
void gw_http_finish(struct gw_http *h);

/* Feed bytes; see the event list above. */
enum gw_http_event gw_http_parse(struct gw_http *h, const char *data, size_t len, size_t *consumed);

/*
 * The peer closed the stream: completes a message whose end is marked by the
 * close (a response without length); GW_HTTP_DONE, or GW_HTTP_ERROR when a
 * message was cut short, or GW_HTTP_MORE when no message was in progress.
 */
enum gw_http_event gw_http_eof(struct gw_http *h);

/*
 * After GW_HTTP_DONE: forget the message and get ready for the next one on the
 * same stream.  Buffers are kept for reuse unless `release` is set, in which
 * case their memory is freed (an idle keep-alive connection should hold as
 * little as possible).
 */
void gw_http_next(struct gw_http *h, bool release);

/*
 * While a buffered body of declared length arrives: where its remaining
 * bytes go, and how many are still due (*len), or NULL.  A reader may read
 * the socket straight into this room and feed the parser from there; the
 * parser then keeps the bytes where they are instead of copying them.
 */
char *gw_http_body_room(struct gw_http *h, size_t *len);

/* After GW_HTTP_HEAD: hand the buffered body's bytes to `cb` too, as they
 * are parsed (so a body can be inspected read by read, with no second
 * pass).  A non-zero return fails the message with an internal error.  Ends
 * with the message (gw_http_next()). */
void gw_http_observe_body(struct gw_http *h, gw_http_body_cb cb, void *ctx);

/* The response to a HEAD request has no body: tell the parser before feeding it. */
void gw_http_expect_no_body(struct gw_http *h);

/* Start line token (URL or reason phrase) and field access. */
/* (An empty head has no buffer: its tokens are "".) */
static inline const char *gw_msg_start(const struct gw_msg *m)
{ return m->head.data ? m->head.data + m->start_off : ""; }
static inline const char *gw_field_name(const struct gw_msg *m, const struct gw_field *f)
{ return m->head.data ? m->head.data + f->name_off : ""; }
static inline const char *gw_field_value(const struct gw_msg *m, const struct gw_field *f)
{ return m->head.data ? m->head.data + f->value_off : ""; }

/* The request target in origin form: an absolute-form target
 * ("http://host/path?q", its host already checked against Host) loses its
 * scheme and authority, as a proxy forwards it. */
const char *gw_msg_origin_form(const struct gw_msg *m, size_t *len);

/* First field called `name` (case-insensitive) or NULL. */
const struct gw_field *gw_msg_field(const struct gw_msg *m, const char *name);

/* Case-insensitive compare of a counted string with a C string. */
static inline bool gw_token_eq(const char *a, size_t alen, const char *lit)
{
	size_t n = strlen(lit);	/* inline, so a literal's length is a constant */
	return alen == n && strncasecmp(a, lit, n) == 0;
}

/*
 * Hop-by-hop fields (RFC 9110 7.6.1) that a proxy must not forward:
 * Connection and the fields it names, Keep-Alive, Proxy-Connection, TE,
 * Trailer, Transfer-Encoding, Upgrade.
 */
static inline bool gw_msg_field_is_hop(const struct gw_msg *m, const struct gw_field *f)
{
	(void)m;
	return f->hop;
}

#endif
