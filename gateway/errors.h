/*
 * errors.h - the reasons sluice answers a request itself.
 *
 * Every reason has one name (`code`) that appears identically in the JSON
 * body, the x-sluice-reject-reason header, the log line and the metric
 * label, so that an operator can grep for one string end to end.  The body
 * has the OpenAI error shape, which official SDKs understand:
 *
 *   {"error":{"message":"...","type":"...","param":null,"code":"queue_full"}}
 */
#ifndef SLUICE_GATEWAY_ERRORS_H
#define SLUICE_GATEWAY_ERRORS_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/buf.h"
#include "queue/admit.h"

enum gw_reason {
	GW_R_BAD_REQUEST = 0,		/* 400 malformed HTTP */
	GW_R_BODY_TOO_LARGE,		/* 413 body over limits.max_body_bytes */
	GW_R_HEADERS_TOO_LARGE,		/* 431 header section over limits.max_header_bytes */
	GW_R_TOO_MANY_HEADERS,		/* 431 more than limits.max_headers fields */
	GW_R_REQUEST_TIMEOUT,		/* 408 headers or body not received in time */
	GW_R_MISSING_KEY,		/* 401 no API key and no anonymous tenant */
	GW_R_INVALID_KEY,		/* 401 the key matches no tenant */
	GW_R_NOT_FOUND,			/* 404 admin path that does not exist */
	GW_R_METHOD_NOT_ALLOWED,	/* 405 CONNECT, or a non-GET admin request */
	GW_R_RATE_LIMITED,		/* 429 tenant's requests_per_s bucket is empty */
	GW_R_TOKENS_EXCEEDED,		/* 429 tenant's tokens_per_min bucket is empty */
	GW_R_QUEUE_FULL,		/* 429 the class queue is at max_queue (or a byte bound) */
	GW_R_DEADLINE_UNMEETABLE,	/* 429 the predicted wait already passes the deadline */
	GW_R_QUEUE_TIMEOUT,		/* 429 the deadline passed while queued */
	GW_R_NO_BACKEND,		/* 503 the class has no pool that can serve it */
	GW_R_SHUTTING_DOWN,		/* 503 draining: queued work not started in time */
	GW_R_UPSTREAM_CONNECT_FAILED,	/* 502 TCP connect to the backend failed */
	GW_R_UPSTREAM_CONNECT_TIMEOUT,	/* 504 TCP connect took over timeouts.connect_ms */
	GW_R_UPSTREAM_ERROR,		/* 502 backend closed or sent an invalid response */
	GW_R_UPSTREAM_TIMEOUT,		/* 504 backend silent for timeouts.upstream_ms */
	GW_R_INTERNAL,			/* 500 out of memory or a bug */
	GW_R_UNSUPPORTED_CODING,	/* 501 a transfer coding other than chunked */
	GW_R_MODEL_NOT_FOUND,		/* 404 no pool of the class serves the body's model */
	GW_R_TTFT_UNMEETABLE,		/* 429 predicted wait + recent TTFT pass ttft_objective_ms */
	GW_R_PREEMPTED,			/* 503 ended so that an interactive request met its deadline */
	GW_R_COUNT
};

struct gw_reason_info {
	int status;
	const char *code;		/* the one name of the reason */
	const char *type;		/* OpenAI error type */
	const char *param;		/* the request field at fault (OpenAI `param`), or NULL */
};

const struct gw_reason_info *gw_reason_info(enum gw_reason r);

/* "Too Many Requests" etc.; "Unknown" for codes it does not know. */
const char *gw_status_text(int status);

/*
 * The reason and the message (into msg, NUL-terminated) for a request the
 * admission policy refused, or the queues let go of unserved (v->reason:
 * evicted, timed out, model gone at a reload).  t is the request's tenant.
 * A model_not_found message repeats the model's name: give it
 * GW_ERROR_MSG_MAX bytes so that the name is never cut.
 */
enum gw_reason gw_error_refusal(const struct queue_verdict *v, const struct queue_tenant *t, char *msg,
				size_t len);

#define GW_ERROR_MSG_MAX 512

/* Retry hints at or above this are not sent (SDKs ignore them). */
#define GW_RETRY_HINT_MAX_MS 60000

/* What a rejection tells the client besides its reason. */
struct gw_reject {
	const char *message;
	const char *request_id;		/* "" before the request is read */
	const char *tenant;		/* NULL before the tenant is known */
	const char *klass;		/* NULL before the class is known */
	uint64_t retry_ms;		/* 0: no hint */
	bool should_retry;		/* x-should-retry: can a retry succeed soon? */
	const char *extra_headers;	/* CRLF-terminated lines (x-ratelimit-*), or NULL */
};

/*
 * Append a complete HTTP/1.1 response for `r` to `out`: status line,
 * x-sluice-reject-reason, x-should-retry (which official SDKs obey over
 * their own rules), retry-after and retry-after-ms when there is a hint, x-request-id and x-sluice-class when known, the extra headers, and
 * the JSON body.
 */
int gw_error_render(struct gw_buf *out, enum gw_reason r, const struct gw_reject *rj, int keep_alive);

/* The JSON body of that response alone, `{"error":{...}}`, NUL-terminated
 * and malloc'd (the caller frees it), or NULL when out of memory: what an
 * SSE `event: error` carries when the response had already started. */
char *gw_error_json(enum gw_reason r, const struct gw_reject *rj);

#endif
