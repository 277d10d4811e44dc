/*
 * errors.c - reason table and the JSON error responses.
 *
 * The body is built with jansson so that messages carrying user-controlled
 * text (a path, a header name) are always escaped correctly.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/errors.h"

static const struct gw_reason_info reasons[GW_R_COUNT] = {
	[GW_R_BAD_REQUEST]		= { 400, "bad_request", "invalid_request_error" },
	[GW_R_BODY_TOO_LARGE]		= { 413, "body_too_large", "invalid_request_error" },
	[GW_R_HEADERS_TOO_LARGE]	= { 431, "headers_too_large", "invalid_request_error" },
	[GW_R_TOO_MANY_HEADERS]		= { 431, "too_many_headers", "invalid_request_error" },
	[GW_R_REQUEST_TIMEOUT]		= { 408, "request_timeout", "invalid_request_error" },
	[GW_R_MISSING_KEY]		= { 401, "missing_api_key", "invalid_request_error" },
	[GW_R_INVALID_KEY]		= { 401, "invalid_api_key", "invalid_request_error" },
	[GW_R_NOT_FOUND]		= { 404, "not_found", "invalid_request_error" },
	[GW_R_METHOD_NOT_ALLOWED]	= { 405, "method_not_allowed", "invalid_request_error" },
	[GW_R_RATE_LIMITED]		= { 429, "rate_limit_exceeded", "requests" },
	[GW_R_TOKENS_EXCEEDED]		= { 429, "tokens_exceeded", "tokens" },
	[GW_R_QUEUE_FULL]		= { 429, "queue_full", "requests" },
	[GW_R_DEADLINE_UNMEETABLE]	= { 429, "deadline_unmeetable", "requests" },
	[GW_R_QUEUE_TIMEOUT]		= { 429, "queue_timeout", "requests" },
	[GW_R_TTFT_UNMEETABLE]		= { 429, "ttft_unmeetable", "requests" },
	[GW_R_NO_BACKEND]		= { 503, "no_backend", "server_error" },
	[GW_R_SHUTTING_DOWN]		= { 503, "shutting_down", "server_error" },
	[GW_R_UPSTREAM_CONNECT_FAILED]	= { 502, "upstream_connect_failed", "server_error" },
	[GW_R_UPSTREAM_CONNECT_TIMEOUT]	= { 504, "upstream_connect_timeout", "timeout" },
	[GW_R_UPSTREAM_ERROR]		= { 502, "upstream_error", "server_error" },
	[GW_R_UPSTREAM_TIMEOUT]		= { 504, "upstream_timeout", "timeout" },
	[GW_R_INTERNAL]			= { 500, "internal_error", "server_error" },
	[GW_R_UNSUPPORTED_CODING]	= { 501, "unsupported_transfer_coding", "invalid_request_error" },
	/* OpenAI's own answer to a model it does not serve, word for word. */
	[GW_R_MODEL_NOT_FOUND]		= { 404, "model_not_found", "invalid_request_error", "model" },
	[GW_R_PREEMPTED]		= { 503, "preempted", "server_error" },
};

_Static_assert(GW_ERROR_MSG_MAX > CONF_MODEL_MAX + 64, "a model_not_found message must hold any model name");

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
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

enum gw_reason gw_error_refusal(const struct queue_verdict *v, const struct queue_tenant *t, char *msg,
				size_t len)
{
	const char *k = conf_class_name(v->klass);
	const char *name = t->cfg->name;
	unsigned long long retry = v->retry_ms;
	switch (v->reason) {
	case QUEUE_R_MODEL_NOT_FOUND:
		/* The name is the client's: jansson escapes it in the body, and
		 * the log line escapes it too (conn.c). */
		if (v->model_len > CONF_MODEL_MAX)
			snprintf(msg, len, "The model named in the request (over %d bytes) does not exist "
				 "or you do not have access to it.", CONF_MODEL_MAX);
		else
			snprintf(msg, len, "The model `%.*s` does not exist or you do not have access to it.",
				 (int)v->model_len, v->model);
		return GW_R_MODEL_NOT_FOUND;
	case QUEUE_R_NO_BACKEND:
		snprintf(msg, len, "no healthy backend in any pool of class '%s'", k);
		return GW_R_NO_BACKEND;
	case QUEUE_R_RATE_LIMITED:
		snprintf(msg, len, "tenant '%s' exceeded %g requests/s (burst %g); retry in %llu ms", name,
			 t->cfg->requests_per_s, t->cfg->burst, retry);
		return GW_R_RATE_LIMITED;
	case QUEUE_R_TOKENS_EXCEEDED:
		snprintf(msg, len, "tenant '%s' exceeded %g tokens/min (this request: ~%.0f); retry in %llu ms",
			 name, t->cfg->tokens_per_min, v->tokens, retry);
		return GW_R_TOKENS_EXCEEDED;
	case QUEUE_R_TOKENS_NEVER:
		snprintf(msg, len, "this request needs ~%.0f tokens, more than tenant '%s' may use in a minute "
			 "(tokens_per_min %g); send a smaller prompt or max_tokens", v->tokens, name,
			 t->cfg->tokens_per_min);
		return GW_R_TOKENS_EXCEEDED;
	case QUEUE_R_QUEUE_FULL:
		snprintf(msg, len, "class '%s' queue is full (%u requests queued); retry in %llu ms", k, v->queued,
			 retry);
		return GW_R_QUEUE_FULL;
	case QUEUE_R_DEADLINE_UNMEETABLE:
		snprintf(msg, len, "class '%s' cannot start this request within its deadline (%llu ms; "
			 "predicted wait %llu ms); retry in %llu ms", k, (unsigned long long)v->budget_ms,
			 (unsigned long long)v->predicted_ms, retry);
		return GW_R_DEADLINE_UNMEETABLE;
	case QUEUE_R_TTFT_UNMEETABLE:
		snprintf(msg, len, "class '%s' would not give this request its first token within its objective "
			 "(%llu ms; predicted %llu ms: a wait of %llu ms, then %llu ms to first token recently); "
			 "retry in %llu ms", k, (unsigned long long)v->budget_ms, (unsigned long long)v->predicted_ms,
			 (unsigned long long)(v->predicted_ms - v->ttft_ms), (unsigned long long)v->ttft_ms, retry);
		return GW_R_TTFT_UNMEETABLE;
	case QUEUE_R_EVICTED:
		snprintf(msg, len, "class '%s' queue is full and tenant '%s' holds the most of it; retry in %llu ms",
			 k, name, retry);
		return GW_R_QUEUE_FULL;
	case QUEUE_R_QUEUE_TIMEOUT:
		snprintf(msg, len, "no slot for class '%s' within the deadline (%llu ms)", k,
			 (unsigned long long)v->budget_ms);
		return GW_R_QUEUE_TIMEOUT;
	case QUEUE_R_NONE:
	case QUEUE_R_NO_MEMORY:
		break;
	}
	snprintf(msg, len, "out of memory");
	return GW_R_INTERNAL;
}

char *gw_error_json(enum gw_reason r, const struct gw_reject *rj)
{
	const struct gw_reason_info *ri = &reasons[r];
	json_t *err = json_pack("{s:s, s:s, s:o, s:s}", "message", rj->message, "type", ri->type,
				"param", ri->param ? json_string(ri->param) : json_null(), "code", ri->code);
	if (err != NULL && rj->tenant != NULL)
		json_object_set_new(err, "tenant", json_string(rj->tenant));
	if (err != NULL && rj->klass != NULL)
		json_object_set_new(err, "class", json_string(rj->klass));
	if (err != NULL && rj->retry_ms > 0)
		json_object_set_new(err, "retry_after_ms", json_integer((json_int_t)rj->retry_ms));
	json_t *body = err ? json_pack("{s:o}", "error", err) : NULL;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	return text;
}

int gw_error_render(struct gw_buf *out, enum gw_reason r, const struct gw_reject *rj, int keep_alive)
{
	const struct gw_reason_info *ri = &reasons[r];
	char *text = gw_error_json(r, rj);
	if (text == NULL)
		return -1;
	int rc = gw_buf_appendf(out,
		"HTTP/1.1 %d %s\r\n"
		"content-type: application/json\r\n"
		"content-length: %zu\r\n"
		"x-sluice-reject-reason: %s\r\n",
		ri->status, gw_status_text(ri->status), strlen(text) + 1, ri->code);
	/* retry-after is whole seconds, rounded up so that a client that
	 * honours only it never comes back early. */
	rc |= gw_buf_appends(out, rj->should_retry ? "x-should-retry: true\r\n" : "x-should-retry: false\r\n");
	if (rj->retry_ms > 0)
		rc |= gw_buf_appendf(out, "retry-after: %llu\r\nretry-after-ms: %llu\r\n",
				     (unsigned long long)((rj->retry_ms + 999) / 1000),
				     (unsigned long long)rj->retry_ms);
	if (ri->status == 401)
		rc |= gw_buf_appends(out, "www-authenticate: Bearer\r\n");
	if (rj->request_id != NULL && rj->request_id[0] != '\0')
		rc |= gw_buf_appendf(out, "x-request-id: %s\r\n", rj->request_id);
	if (rj->klass != NULL)
		rc |= gw_buf_appendf(out, "x-sluice-class: %s\r\n", rj->klass);
	rc |= gw_buf_appendf(out, "%s%s\r\n%s\n", keep_alive ? "" : "connection: close\r\n",
			     rj->extra_headers ? rj->extra_headers : "", text);
	free(text);
	return rc;
}
