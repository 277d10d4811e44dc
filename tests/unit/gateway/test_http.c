/*
 * test_http.c - the request/response parsing layer.
 *
 * Every input is fed whole, and again one byte at a time (llhttp hands
 * tokens over in pieces across reads), and both must give the same events,
 * start lines, fields and bodies.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "gateway/errors.h"
#include "gateway/http.h"

static const struct gw_http_limits limits = {
	.max_body_bytes = 1024,
	.max_header_bytes = 512,
	.max_headers = 8,
};

/* What a driver saw: events as letters (H head, D done, E error), and for
 * each complete message "URL|name=value;...|body" lines. */
struct seen {
	char events[64];
	char msgs[4096];
	int error;
	int continues;		/* heads that asked for 100-continue */
};

static void snapshot(struct gw_http *h, struct seen *s)
{
	const struct gw_msg *m = &h->msg;
	char line[1024];
	int n = snprintf(line, sizeof(line), "%.*s|", (int)m->start_len, gw_msg_start(m));
	for (uint32_t i = 0; i < m->nfields; i++) {
		const struct gw_field *f = &m->fields[i];
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%.*s=%.*s;", (int)f->name_len,
			      gw_field_name(m, f), (int)f->value_len, gw_field_value(m, f));
	}
	n += snprintf(line + n, sizeof(line) - (size_t)n, "|%.*s|%s\n", (int)m->body.len,
		      m->body.data ? m->body.data : "", m->keep_alive ? "ka" : "close");
	strncat(s->msgs, line, sizeof(s->msgs) - strlen(s->msgs) - 1);
}

static void add_event(struct seen *s, char e)
{
	size_t n = strlen(s->events);
	if (n + 1 < sizeof(s->events))
		s->events[n] = e;
}

/* Feed `in` in pieces of `step` bytes, as conn.c does. */
static void drive(const char *in, size_t len, size_t step, struct seen *s, llhttp_type_t type)
{
	struct gw_http h;
	memset(s, 0, sizeof(*s));
	gw_http_init(&h, type, &limits, NULL, NULL);
	bool stop = false;
	for (size_t pos = 0; pos < len && !stop; pos += step) {
		size_t n = len - pos < step ? len - pos : step;
		size_t off = 0;
		for (;;) {
			size_t used;
			enum gw_http_event ev = gw_http_parse(&h, in + pos + off, n - off, &used);
			off += used;
			if (ev == GW_HTTP_MORE)
				break;
			if (ev == GW_HTTP_HEAD) {
				add_event(s, 'H');
				s->continues += h.msg.expect_continue;
			} else if (ev == GW_HTTP_DONE) {
				add_event(s, 'D');
				snapshot(&h, s);
				gw_http_next(&h, false);
			} else {
				add_event(s, 'E');
				s->error = h.error;
				stop = true;
				break;
			}
		}
		if (!stop)
			cr_assert_eq(off, n, "bytes left unparsed without an event");
	}
	gw_http_finish(&h);
}

/* Drive whole and per byte; assert both agree; return the whole-feed view. */
static struct seen check(const char *in, llhttp_type_t type)
{
	struct seen whole, bytes;
	drive(in, strlen(in), strlen(in), &whole, type);
	drive(in, strlen(in), 1, &bytes, type);
	cr_assert_str_eq(bytes.events, whole.events, "per-byte events differ for: %s", in);
	cr_assert_str_eq(bytes.msgs, whole.msgs, "per-byte messages differ for: %s", in);
	cr_assert_eq(bytes.error, whole.error);
	return whole;
}

Test(http, get_without_body_completes, .timeout = 5)
{
	struct seen s = check("GET /v1/models HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nAccept: */*\r\n\r\n",
			      HTTP_REQUEST);
	cr_assert_str_eq(s.events, "HD");
	cr_assert_str_eq(s.msgs, "/v1/models|Host=a;X-Empty=;Accept=*/*;||ka\n");
}

Test(http, content_length_body, .timeout = 5)
{
	struct seen s = check("POST /v1/completions HTTP/1.1\r\nContent-Length: 11\r\n\r\n{\"a\":\"bcd\"}",
			      HTTP_REQUEST);
	cr_assert_str_eq(s.events, "HD");
	cr_assert_str_eq(s.msgs, "/v1/completions|Content-Length=11;|{\"a\":\"bcd\"}|ka\n");
}

Test(http, chunked_body_is_dechunked, .timeout = 5)
{
	struct seen s = check("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "4\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer-A: 1\r\n\r\n", HTTP_REQUEST);
	cr_assert_str_eq(s.events, "HD");
	cr_assert(strstr(s.msgs, "|Wikipedia|") != NULL, "%s", s.msgs);
}

Test(http, trailers_never_join_the_header_section, .timeout = 5)
{
	struct seen s = check("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "4\r\nWiki\r\n0\r\nAuthorization: Bearer sk-trailer\r\nx-sluice-class: interactive\r\n\r\n",
			      HTTP_REQUEST);
	cr_assert_str_eq(s.events, "HD");
	cr_assert_str_eq(s.msgs, "/x|Host=a;Transfer-Encoding=chunked;|Wiki|ka\n",
			 "trailer fields are dropped: %s", s.msgs);
}

Test(http, a_trailer_section_is_bounded, .timeout = 5)
{
	char in[2048] = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n";
	for (int i = 0; i < 40; i++)
		strcat(in, "x-pad: 0123456789012345678901234567890123456789\r\n");
	strcat(in, "\r\n");
	struct seen s = check(in, HTTP_REQUEST);
	cr_assert_eq(s.error, GW_R_HEADERS_TOO_LARGE, "512 bytes of header section allowed, trailers included");
}

Test(http, strict_fields, .timeout = 5)
{
	struct seen s = check("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HTTP_REQUEST);
	cr_assert_str_eq(s.events, "E", "two Host fields");
	cr_assert_eq(s.error, GW_R_BAD_REQUEST);
	s = check("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", HTTP_REQUEST);
	cr_assert_eq(s.error, GW_R_UNSUPPORTED_CODING, "a coding sluice would drop silently");
	s = check("GET http://evil.example/x HTTP/1.1\r\nHost: good.example\r\n\r\n", HTTP_REQUEST);
	cr_assert_str_eq(s.events, "E", "absolute-form naming another host");
	s = check("GET http://Good.example/x?q=1 HTTP/1.1\r\nHost: good.example\r\n\r\n", HTTP_REQUEST);
	cr_assert_str_eq(s.events, "HD", "the same host, in any case");
	s = check("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n: v\r\n\r\n", HTTP_RESPONSE);
	cr_assert_str_eq(s.events, "E", "a response field with an empty name");
	s = check("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "4\r\nWikiXX5\r\npedia\r\n0\r\n\r\n", HTTP_REQUEST);
	cr_assert_str_eq(s.events, "HE", "chunk data not followed by CRLF");
	cr_assert_eq(s.error, GW_R_BAD_REQUEST);
	s = check("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n", HTTP_RESPONSE);
	cr_assert_str_eq(s.events, "HE", "a backend's chunk without CRLF is an error too");
}

Test(http, absolute_form_is_forwarded_in_origin_form, .timeout = 5)
{
	static const char *const in[] = { "GET http://h.example/a/b?q=1 HTTP/1.1\r\nHost: h.example\r\n\r\n",
					   "GET http://h.example HTTP/1.1\r\nHost: h.example\r\n\r\n",
					   "GET /plain HTTP/1.1\r\nHost: h.example\r\n\r\n" };
	static const char *const want[] = { "/a/b?q=1", "/", "/plain" };
	for (int i = 0; i < 3; i++) {
		struct gw_http h;
		size_t used, len;
		gw_http_init(&h, HTTP_REQUEST, &limits, NULL, NULL);
		while (gw_http_parse(&h, in[i], strlen(in[i]), &used) == GW_HTTP_HEAD)
			;
		const char *t = gw_msg_origin_form(&h.msg, &len);
		cr_assert(len == strlen(want[i]) && memcmp(t, want[i], len) == 0, "%s: %.*s", in[i], (int)len, t);
		gw_http_finish(&h);
	}
}

Test(http, pipelined_requests_in_order, .timeout = 5)
{
	struct seen s = check("GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
			      "GET /3 HTTP/1.1\r\nConnection: close\r\n\r\n", HTTP_REQUEST);
	cr_assert_str_eq(s.events, "HDHDHD");
	cr_assert_str_eq(s.msgs, "/1|||ka\n/2|Content-Length=2;|hi|ka\n/3|Connection=close;||close\n");
}

Test(http, http10_is_not_keep_alive, .timeout = 5)
{
	struct seen s = check("GET / HTTP/1.0\r\n\r\n", HTTP_REQUEST);
	cr_assert_str_eq(s.msgs, "/|||close\n");
}

Test(http, expect_continue_is_reported_at_head, .timeout = 5)
{
	struct seen s = check("POST /x HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\nabc",
			      HTTP_REQUEST);
	cr_assert_str_eq(s.events, "HD");
	cr_assert_eq(s.continues, 1);
}

Test(http, malformed_request_is_bad_request, .timeout = 5)
{
	struct seen s = check("GET / HTTP/1.1\r\nNo-Colon\r\n\r\n", HTTP_REQUEST);
	cr_assert_str_eq(s.events, "E");
	cr_assert_eq(s.error, GW_R_BAD_REQUEST);
	s = check("NOPE\r\n\r\n", HTTP_REQUEST);
	cr_assert_eq(s.error, GW_R_BAD_REQUEST);
	s = check("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", HTTP_REQUEST);
	cr_assert_eq(s.error, GW_R_BAD_REQUEST, "conflicting lengths must be refused");
	s = check("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", HTTP_REQUEST);
	cr_assert_eq(s.error, GW_R_BAD_REQUEST);
}

Test(http, oversized_header_section, .timeout = 5)
{
	char in[2048];
	memset(in, 0, sizeof(in));
	strcpy(in, "GET / HTTP/1.1\r\nX-Big: ");
	memset(in + strlen(in), 'a', 600);
	strcat(in, "\r\n\r\n");
	struct seen s = check(in, HTTP_REQUEST);
	cr_assert_str_eq(s.events, "E");
	cr_assert_eq(s.error, GW_R_HEADERS_TOO_LARGE);
}

Test(http, oversized_url, .timeout = 5)
{
	char in[2048] = "GET /";
	memset(in + 5, 'u', 700);
	strcat(in, " HTTP/1.1\r\n\r\n");
	struct seen s = check(in, HTTP_REQUEST);
	cr_assert_eq(s.error, GW_R_HEADERS_TOO_LARGE);
}

Test(http, too_many_headers, .timeout = 5)
{
	char in[1024] = "GET / HTTP/1.1\r\n";
	for (int i = 0; i < 9; i++)
		sprintf(in + strlen(in), "H%d: v\r\n", i);
	strcat(in, "\r\n");
	struct seen s = check(in, HTTP_REQUEST);
	cr_assert_eq(s.error, GW_R_TOO_MANY_HEADERS);
}

Test(http, declared_body_over_limit_refused_at_head, .timeout = 5)
{
	/* No body byte is sent: the refusal must come from the head alone. */
	struct seen s = check("POST / HTTP/1.1\r\nContent-Length: 4096\r\n\r\n", HTTP_REQUEST);
	cr_assert_str_eq(s.events, "E");
	cr_assert_eq(s.error, GW_R_BODY_TOO_LARGE);
}

Test(http, chunked_body_over_limit, .timeout = 5)
{
	char in[4096] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
	for (int i = 0; i < 5; i++) {
		strcat(in, "100\r\n");
		memset(in + strlen(in), 'b', 256);
		strcat(in, "\r\n");
	}
	strcat(in, "0\r\n\r\n");
	struct seen s = check(in, HTTP_REQUEST);
	cr_assert_str_eq(s.events, "HE");
	cr_assert_eq(s.error, GW_R_BODY_TOO_LARGE);
}

Test(http, whitespace_flood_in_head_is_bounded, .timeout = 5)
{
	/* Bytes that llhttp skips without a callback still count. */
	char in[4096] = "GET / HTTP/1.1\r\nX: a";
	memset(in + strlen(in), ' ', 1000);
	strcat(in, "b\r\n\r\n");
	struct seen s = check(in, HTTP_REQUEST);
	cr_assert_eq(s.error, GW_R_HEADERS_TOO_LARGE);
}

Test(http, hop_by_hop_fields, .timeout = 5)
{
	static const char in[] = "GET / HTTP/1.1\r\nConnection: keep-alive, X-Private\r\n"
				 "X-Private: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nAuthorization: b\r\n\r\n";
	struct gw_http h;
	size_t used;
	gw_http_init(&h, HTTP_REQUEST, &limits, NULL, NULL);
	cr_assert_eq(gw_http_parse(&h, in, strlen(in), &used), GW_HTTP_HEAD);
	char names[256] = "";
	for (uint32_t i = 0; i < h.msg.nfields; i++) {
		const struct gw_field *f = &h.msg.fields[i];
		if (gw_msg_field_is_hop(&h.msg, f))
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%.*s,",
				 (int)f->name_len, gw_field_name(&h.msg, f));
	}
	cr_assert_str_eq(names, "Connection,X-Private,Keep-Alive,TE,");
	gw_http_finish(&h);
}

struct sink {
	char body[256];
	int calls;
};

static int sink_body(void *ctx, const char *at, size_t len)
{
	struct sink *s = ctx;
	strncat(s->body, at, len);
	s->calls++;
	return 0;
}

Test(http, response_body_streams_to_callback, .timeout = 5)
{
	static const char in[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				 "5\r\ndata:\r\n3\r\n 1\n\r\n0\r\n\r\n";
	struct gw_http h;
	struct sink s = { "", 0 };
	gw_http_init(&h, HTTP_RESPONSE, &limits, sink_body, &s);
	size_t off = 0, used;
	enum gw_http_event ev;
	int heads = 0, dones = 0;
	/* one byte at a time, as a slow backend would send it */
	for (size_t i = 0; i < strlen(in); i++) {
		off = 0;
		while ((ev = gw_http_parse(&h, in + i + off, 1 - off, &used)) != GW_HTTP_MORE) {
			off += used;
			cr_assert_neq(ev, GW_HTTP_ERROR);
			heads += ev == GW_HTTP_HEAD;
			dones += ev == GW_HTTP_DONE;
			if (ev == GW_HTTP_DONE)
				break;
		}
	}
	cr_assert_eq(heads, 1);
	cr_assert_eq(dones, 1);
	cr_assert_str_eq(s.body, "data: 1\n");
	cr_assert_eq(h.msg.body.len, 0, "a streamed body must not be buffered");
	cr_assert_eq(h.msg.status, 200);
	gw_http_finish(&h);
}

Test(http, response_ended_by_close, .timeout = 5)
{
	static const char in[] = "HTTP/1.1 200 OK\r\n\r\npartial";
	struct gw_http h;
	struct sink s = { "", 0 };
	size_t used;
	gw_http_init(&h, HTTP_RESPONSE, &limits, sink_body, &s);
	cr_assert_eq(gw_http_parse(&h, in, strlen(in), &used), GW_HTTP_HEAD);
	cr_assert_eq(gw_http_parse(&h, in + used, strlen(in) - used, &used), GW_HTTP_MORE);
	cr_assert_eq(gw_http_eof(&h), GW_HTTP_DONE);
	cr_assert_str_eq(s.body, "partial");
	gw_http_finish(&h);
}

Test(http, response_cut_short_is_an_error, .timeout = 5)
{
	static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort";
	struct gw_http h;
	struct sink s = { "", 0 };
	size_t used, off = 0;
	gw_http_init(&h, HTTP_RESPONSE, &limits, sink_body, &s);
	cr_assert_eq(gw_http_parse(&h, in, strlen(in), &used), GW_HTTP_HEAD);
	off += used;
	cr_assert_eq(gw_http_parse(&h, in + off, strlen(in) - off, &used), GW_HTTP_MORE);
	cr_assert_eq(gw_http_eof(&h), GW_HTTP_ERROR);
	gw_http_finish(&h);
}

Test(http, response_to_head_has_no_body, .timeout = 5)
{
	static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
	struct gw_http h;
	size_t used;
	gw_http_init(&h, HTTP_RESPONSE, &limits, sink_body, NULL);
	gw_http_expect_no_body(&h);
	cr_assert_eq(gw_http_parse(&h, in, strlen(in), &used), GW_HTTP_HEAD);
	cr_assert_eq(used, strlen(in));
	cr_assert_eq(gw_http_parse(&h, in + used, 0, &used), GW_HTTP_DONE);
	gw_http_finish(&h);
}
