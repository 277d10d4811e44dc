/*
 * errors.c - reason table and the JSON error responses.
 *
 * The body is built with jansson so that messages carrying user-controlled
 * text (a path, a header name) are always escaped correctly.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/errors.h"

static const struct gw_reason_info reasons[GW_R_COUNT] = {
	[GW_R_BAD_REQUEST]		= { 400, "bad_request", "invalid_request_error" },
	[GW_R_BODY_TOO_LARGE]		= { 413, "body_too_large", "invalid_request_error" },
	[GW_R_HEADERS_TOO_LARGE]	= { 431, "headers_too_large", "invalid_request_error" },
	[GW_R_TOO_MANY_HEADERS]		= { 431, "too_many_headers", "invalid_request_error" },
	[GW_R_REQUEST_TIMEOUT]		= { 408, "request_timeout", "invalid_request_error" },
	[GW_R_NOT_FOUND]		= { 404, "not_found", "invalid_request_error" },
	[GW_R_METHOD_NOT_ALLOWED]	= { 405, "method_not_allowed", "invalid_request_error" },
	[GW_R_QUEUE_FULL]		= { 429, "queue_full", "requests" },
	[GW_R_QUEUE_TIMEOUT]		= { 429, "queue_timeout", "requests" },
	[GW_R_NO_BACKEND]		= { 503, "no_backend", "server_error" },
	[GW_R_SHUTTING_DOWN]		= { 503, "shutting_down", "server_error" },
	[GW_R_UPSTREAM_CONNECT_FAILED]	= { 502, "upstream_connect_failed", "server_error" },
	[GW_R_UPSTREAM_CONNECT_TIMEOUT]	= { 504, "upstream_connect_timeout", "timeout" },
	[GW_R_UPSTREAM_ERROR]		= { 502, "upstream_error", "server_error" },
	[GW_R_UPSTREAM_TIMEOUT]		= { 504, "upstream_timeout", "timeout" },
	[GW_R_INTERNAL]			= { 500, "internal_error", "server_error" },
};

const struct gw_reason_info *gw_reason_info(enum gw_reason r)
{
	return &reasons[r];
}

const char *gw_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

int gw_error_render(struct gw_buf *out, enum gw_reason r, const char *message,
		    const char *extra_headers, int keep_alive)
{
	const struct gw_reason_info *ri = &reasons[r];
	json_t *body = json_pack("{s:{s:s, s:s, s:n, s:s}}", "error",
				 "message", message, "type", ri->type, "param",
				 "code", ri->code);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (text == NULL)
		return -1;
	int rc = gw_buf_appendf(out,
		"HTTP/1.1 %d %s\r\n"
		"content-type: application/json\r\n"
		"content-length: %zu\r\n"
		"x-sluice-reject-reason: %s\r\n"
		"%s%s"
		"\r\n%s\n",
		ri->status, gw_status_text(ri->status), strlen(text) + 1, ri->code,
		keep_alive ? "" : "connection: close\r\n",
		extra_headers ? extra_headers : "", text);
	free(text);
	return rc;
}
