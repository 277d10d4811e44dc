/*
 * openai.c - reading and writing the OpenAI API's few fields; see openai.h.
 */
#include <jansson.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "gateway/openai.h"

const char *gw_openai_api_key(const struct gw_msg *m, size_t *len)
{
	const struct gw_field *f = gw_msg_field(m, "authorization");
	if (f != NULL && f->value_len > 7 && strncasecmp(gw_field_value(m, f), "bearer ", 7) == 0) {
		*len = f->value_len - 7;
		return gw_field_value(m, f) + 7;
	}
	f = gw_msg_field(m, "x-api-key");
	if (f != NULL && f->value_len > 0) {
		*len = f->value_len;
		return gw_field_value(m, f);
	}
	return NULL;
}

void gw_openai_read_body(const char *body, size_t len, struct gw_openai_body *out)
{
	out->tier_len = 0;
	out->max_tokens = -1;
	size_t i = 0;
	while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
		i++;
	if (i == len || body[i] != '{')
		return;
	json_t *root = json_loadb(body, len, 0, NULL);
	if (root == NULL)
		return;
	const char *tier = json_string_value(json_object_get(root, "service_tier"));
	if (tier != NULL && strlen(tier) < sizeof(out->tier)) {
		out->tier_len = strlen(tier);
		memcpy(out->tier, tier, out->tier_len);
	}
	json_t *mt = json_object_get(root, "max_completion_tokens");
	if (!json_is_integer(mt))
		mt = json_object_get(root, "max_tokens");
	if (json_is_integer(mt) && json_integer_value(mt) >= 0)
		out->max_tokens = json_integer_value(mt);
	json_decref(root);
}

double gw_openai_usage_tokens(const char *tail, size_t len)
{
	static const char key[] = "\"usage\"";
	const char *end = tail + len;
	const char *u = NULL;
	for (const char *p = tail; (p = memmem(p, (size_t)(end - p), key, sizeof(key) - 1)) != NULL; p++)
		u = p;
	if (u == NULL)
		return -1;
	u += sizeof(key) - 1;
	while (u < end && (*u == ' ' || *u == ':' || *u == '\t' || *u == '\n'))
		u++;
	if (u == end || *u != '{')
		return -1;
	json_t *usage = json_loadb(u, (size_t)(end - u), JSON_DISABLE_EOF_CHECK, NULL);
	double used = -1;
	json_t *total = json_object_get(usage, "total_tokens");
	if (json_is_integer(total))
		used = (double)json_integer_value(total);
	json_decref(usage);
	return used;
}

/* A bucket figure as a whole number (levels in debt show as 0). */
static uint64_t whole(double v)
{
	return v > 0 ? (uint64_t)floor(v + 0.5) : 0;
}

/* One bucket's three headers; `limit` is what the tenant was promised.
 * Sent on every response, so formatted without printf. */
static int bucket_headers(struct gw_buf *out, const char *what, double limit, struct queue_bucket *b,
			  uint64_t now_ms)
{
	if (queue_bucket_unlimited(b))
		return 0;
	double level = queue_bucket_level(b, now_ms);
	int rc = gw_buf_appends(out, "x-ratelimit-limit-");
	rc |= gw_buf_appends(out, what);
	rc |= gw_buf_append(out, ": ", 2);
	rc |= gw_buf_append_u64(out, whole(limit));
	rc |= gw_buf_appends(out, "\r\nx-ratelimit-remaining-");
	rc |= gw_buf_appends(out, what);
	rc |= gw_buf_append(out, ": ", 2);
	rc |= gw_buf_append_u64(out, level > 0 ? (uint64_t)floor(level) : 0);
	rc |= gw_buf_appends(out, "\r\nx-ratelimit-reset-");
	rc |= gw_buf_appends(out, what);
	rc |= gw_buf_append(out, ": ", 2);
	rc |= gw_buf_append_u64(out, queue_bucket_full_in(b, now_ms));
	rc |= gw_buf_appends(out, "ms\r\n");
	return rc;
}

int gw_openai_ratelimit_headers(struct queue_tenant *t, uint64_t now_ms, struct gw_buf *out)
{
	return bucket_headers(out, "requests", t->cfg->burst, &t->requests, now_ms) |
	       bucket_headers(out, "tokens", t->cfg->tokens_per_min, &t->tokens, now_ms);
}
