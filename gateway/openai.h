/*
 * openai.h - what sluice knows of the OpenAI API, in one place.
 *
 * Clients speak the OpenAI HTTP API (official SDKs, vLLM, TGI).  sluice
 * reads a little of it and writes a little of it:
 *   - the API key: `Authorization: Bearer KEY`, or `x-api-key: KEY`;
 *   - the service_tier's meaning for sluice's classes;
 *   - from a JSON request body, scanned as it arrives (jscan.h), never
 *     built into a document: `model`, `service_tier` (the class a request
 *     asks for), `max_completion_tokens` / `max_tokens` and `n` (its
 *     output), `stream`, and the text the model reads (`prompt` or
 *     `input`: strings or token ids; `messages[].content`: a string or text
 *     parts), from which its prompt tokens are estimated;
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
#include "gateway/jscan.h"
#include "queue/tenant.h"

/* The key the request presents, or NULL; *len is its length. */
const char *gw_openai_api_key(const struct gw_msg *m, size_t *len);

#define GW_OPENAI_MODEL_MAX 256
#define GW_OPENAI_TIER_MAX 16
/* Prompt tokens are estimated as one per this many bytes of text, the usual
 * rule of thumb for English with GPT-style tokenizers, plus a few per chat
 * message for its role and framing. */
#define GW_OPENAI_BYTES_PER_TOKEN 4
#define GW_OPENAI_TOKENS_PER_MESSAGE 4

/* What admission reads from a request body.  Every field is absent unless
 * the whole body is one valid JSON object; duplicate keys: the last wins. */
struct gw_openai_body {
	bool valid;			/* a valid JSON object */
	char model[GW_OPENAI_MODEL_MAX];
	size_t model_len;		/* 0: absent, or too long (model_long) */
	bool model_long;		/* a string too long for `model` */
	char tier[GW_OPENAI_TIER_MAX];
	size_t tier_len;		/* 0: absent */
	int64_t max_tokens;		/* max_completion_tokens, else max_tokens; -1: absent */
	int64_t n;			/* choices asked for; -1: absent */
	int stream;			/* -1: absent, else 0 or 1 */
	uint64_t text_bytes;		/* decoded bytes of prompt and message text */
	uint64_t token_ids;		/* prompt tokens given as ids */
	uint32_t messages;		/* chat messages */
};

/* The scan of one body as it arrives (one per request with a body). */
struct gw_openai_scan {
	struct gw_jscan js;
	struct gw_openai_body body;
	int64_t max_tokens, max_completion_tokens;
	uint64_t prompt_bytes[2], token_ids[2];	/* of the last prompt [0] and input [1] */
	uint8_t which;			/* 0: reading prompt, 1: input */
	uint64_t message_bytes;		/* of the last messages array */
	uint64_t content_bytes;		/* of the chat message being read */
	uint64_t part_bytes;		/* of the content part being read */
	uint8_t field[8];		/* by depth: what the value being read is */
};

/* Start scanning a body. */
void gw_openai_scan_init(struct gw_openai_scan *sc);

/* The next bytes of the body, as they arrive. */
void gw_openai_scan_feed(struct gw_openai_scan *sc, const char *data, size_t len);

/* The same, shaped as a gw_http body observer (http.h); ctx is the scan. */
int gw_openai_scan_observe(void *ctx, const char *data, size_t len);

/* A body with no fields (no body at all, or not a JSON object). */
void gw_openai_body_absent(struct gw_openai_body *out);

/* The body is complete: its fields (all absent unless it was a valid JSON
 * object). */
void gw_openai_scan_finish(struct gw_openai_scan *sc, struct gw_openai_body *out);

/* The class an OpenAI service_tier asks for: priority -> interactive,
 * default and auto -> standard, flex -> opportunistic; -1 for anything
 * else (the tier of b, when it has one). */
int gw_openai_tier_class(const struct gw_openai_body *b);

/* Prompt tokens to charge for a body of `body_len` bytes whose scan gave b:
 * from its text when it is a valid object, else one per
 * GW_OPENAI_BYTES_PER_TOKEN bytes of the body. */
double gw_openai_prompt_tokens(const struct gw_openai_body *b, uint64_t body_len);

/* Output tokens it asks for (max_tokens x n), or -1 when it does not say. */
double gw_openai_output_tokens(const struct gw_openai_body *b);

/* total_tokens of the last `"usage": {...}` in the tail of a response body,
 * or -1 when there is none. */
double gw_openai_usage_tokens(const char *tail, size_t len);

/* The same, and in one pass the block's `completion_tokens` (the output
 * tokens) in *completion, or -1 there. */
double gw_openai_usage(const char *tail, size_t len, double *completion);

/* Append ms as OpenAI writes a reset time (Go's duration form): "398ms"
 * under a second, "0s" for none, else "1s", "1.5s", "1m30s", "6m0s",
 * "2h3m4s" (hours only when non-zero, then minutes and seconds always). */
int gw_openai_append_duration(struct gw_buf *out, uint64_t ms);

/* Append the x-ratelimit-* headers of t's limited buckets, as of now_ms:
 * limit-requests per minute (requests_per_s x 60), limit-tokens per minute,
 * remaining-* as whole units, reset-* (time to full) as above. */
int gw_openai_ratelimit_headers(struct queue_tenant *t, uint64_t now_ms, struct gw_buf *out);

#endif
