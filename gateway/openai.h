/*
 * openai.h - what sluice knows of the OpenAI API, in one place.
 *
 * Clients speak the OpenAI HTTP API (official SDKs, vLLM, TGI).  sluice
 * reads a little of it and writes a little of it:
 *   - the API key: `Authorization: Bearer KEY`, or `x-api-key: KEY`;
 *   - from a JSON request body: `service_tier` (the class a request asks
 *     for) and `max_completion_tokens` / `max_tokens` (its output);
 *   - from the end of a response: the `usage` block's `total_tokens`,
 *     which OpenAI-compatible servers put last (in the JSON, or in the
 *     final server-sent event before [DONE]);
 *   - on answers: the `x-ratelimit-*` headers that SDKs read.
 * Everything else passes through untouched.
 */
#ifndef SLUICE_GATEWAY_OPENAI_H
#define SLUICE_GATEWAY_OPENAI_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/buf.h"
#include "gateway/http.h"
#include "queue/tenant.h"

/* The key the request presents, or NULL; *len is its length. */
const char *gw_openai_api_key(const struct gw_msg *m, size_t *len);

/* What admission reads from a request body. */
struct gw_openai_body {
	char tier[16];			/* service_tier, when it fits */
	size_t tier_len;		/* 0: none */
	int64_t max_tokens;		/* -1 when absent */
};

/* Read the fields above from a JSON body; a body that is not a JSON object
 * leaves them unset (the backend answers it in its own words). */
void gw_openai_read_body(const char *body, size_t len, struct gw_openai_body *out);

/* total_tokens of the last `"usage": {...}` in the tail of a response body,
 * or -1 when there is none. */
double gw_openai_usage_tokens(const char *tail, size_t len);

/* Append the x-ratelimit-* headers of t's limited buckets, as of now_ms. */
int gw_openai_ratelimit_headers(struct queue_tenant *t, uint64_t now_ms, struct gw_buf *out);

#endif
