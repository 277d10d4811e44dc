/*
 * test_ids.c - a request's identity: x-request-id kept or made, W3C
 * traceparent joined or started.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "gateway/http.h"
#include "gateway/ids.h"

static const struct gw_http_limits limits = { .max_body_bytes = 4096, .max_header_bytes = 4096, .max_headers = 16 };

/* Parse one request head. */
static void parse(struct gw_http *h, const char *text)
{
	size_t used, off = 0;
	enum gw_http_event ev;
	gw_http_init(h, HTTP_REQUEST, &limits, NULL, NULL);
	do {
		ev = gw_http_parse(h, text + off, strlen(text) - off, &used);
		off += used;
	} while (ev == GW_HTTP_HEAD);
	cr_assert_eq(ev, GW_HTTP_DONE, "%s", text);
}

Test(ids, request_id_kept_when_printable_and_made_otherwise, .timeout = 5)
{
	struct gw_ids g;
	struct gw_http h;
	char a[GW_REQUEST_ID_SIZE], b[GW_REQUEST_ID_SIZE];
	gw_ids_init(&g);
	parse(&h, "GET / HTTP/1.1\r\nx-request-id: abc-123\r\n\r\n");
	gw_ids_request_id(&g, &h.msg, a);
	cr_assert_str_eq(a, "abc-123");
	gw_http_finish(&h);
	parse(&h, "GET / HTTP/1.1\r\nx-request-id: has space\r\n\r\n");
	gw_ids_request_id(&g, &h.msg, a);
	gw_ids_request_id(&g, &h.msg, b);
	cr_assert_eq(strlen(a), 24);
	cr_assert_str_neq(a, b, "made ids are unique");
	gw_http_finish(&h);
}

Test(ids, traceparent_joins_a_valid_trace_and_starts_one_otherwise, .timeout = 5)
{
	struct gw_ids g;
	struct gw_http h;
	char tp[GW_TRACEPARENT_SIZE];
	gw_ids_init(&g);
	parse(&h, "GET / HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n");
	gw_ids_traceparent(&g, &h.msg, tp);
	cr_assert_eq(strncmp(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36), 0, "%s: the client's trace", tp);
	cr_assert_neq(strncmp(tp + 36, "00f067aa0ba902b7", 16), 0, "%s: our hop has its own parent id", tp);
	cr_assert_str_eq(tp + 52, "-01");
	gw_http_finish(&h);
	parse(&h, "GET / HTTP/1.1\r\ntraceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n\r\n");
	gw_ids_traceparent(&g, &h.msg, tp);
	cr_assert_eq(strlen(tp), 55);
	cr_assert_neq(strncmp(tp + 3, "00000000000000000000000000000000", 32), 0, "an all-zero trace id is invalid");
	gw_http_finish(&h);
}
