/*
 * openai.c - reading and writing the OpenAI API's few fields; see openai.h.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
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

/*
 * The body scan.  What a value means depends on where it is; `field[d]`
 * records it for the value at depth d (1: a member of the top object), set
 * when the value starts and read when it (or a value inside it) ends.
 */
enum field {
	F_OTHER = 0,
	F_MODEL, F_TIER, F_MAX_TOKENS, F_MAX_COMPLETION_TOKENS, F_N, F_STREAM,
	F_PROMPT,		/* prompt or input: a string, or an array of them or of token ids */
	F_PROMPT_ITEM,		/* an element of that array */
	F_TOKEN_IDS,		/* an array of token ids inside it */
	F_MESSAGES,		/* the messages array */
	F_MESSAGE,		/* one message object */
	F_CONTENT,		/* its content: a string or an array of parts */
	F_PART,			/* a content part object */
	F_PART_TEXT,		/* its text */
};

/* Values deeper than this mean nothing to admission (a part's text is 5). */
#define SCAN_DEPTH 5

static bool key_is(const char *key, size_t len, const char *name)
{
	return key != NULL && len == strlen(name) && memcmp(key, name, len) == 0;
}

static enum field top_field(const char *key, size_t len)
{
	static const struct { const char *name; enum field f; } fields[] = {
		{ "model", F_MODEL }, { "service_tier", F_TIER }, { "max_tokens", F_MAX_TOKENS },
		{ "max_completion_tokens", F_MAX_COMPLETION_TOKENS }, { "n", F_N }, { "stream", F_STREAM },
		{ "prompt", F_PROMPT }, { "input", F_PROMPT }, { "messages", F_MESSAGES },
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (key_is(key, len, fields[i].name))
			return fields[i].f;
	return F_OTHER;
}

/* A top-level member starts: forget what an earlier member of the same name
 * said (the last one wins, as in JSON parsers). */
static void top_reset(struct gw_openai_scan *sc, enum field f)
{
	struct gw_openai_body *b = &sc->body;
	switch (f) {
	case F_MODEL: b->model_len = 0; b->model_long = false; break;
	case F_TIER: b->tier_len = 0; break;
	case F_MAX_TOKENS: sc->max_tokens = -1; break;
	case F_MAX_COMPLETION_TOKENS: sc->max_completion_tokens = -1; break;
	case F_N: b->n = -1; break;
	case F_STREAM: b->stream = -1; break;
	case F_PROMPT: sc->token_ids[sc->which] = 0; sc->prompt_bytes[sc->which] = 0; break;
	case F_MESSAGES: b->messages = 0; sc->message_bytes = 0; break;
	default: break;
	}
}

/* What the value at depth d (of `type`, named `key` in an object) is. */
static enum field classify(struct gw_openai_scan *sc, uint32_t d, const char *key, size_t len,
			   enum gw_jscan_type type)
{
	bool object = type == GW_JSCAN_OBJECT;
	switch (d == 1 ? F_OTHER : sc->field[d - 1]) {
	case F_OTHER:
		return d == 1 ? top_field(key, len) : F_OTHER;
	case F_PROMPT:
		return F_PROMPT_ITEM;
	case F_PROMPT_ITEM:
		return F_TOKEN_IDS;
	case F_MESSAGES:
		return object ? F_MESSAGE : F_OTHER;
	case F_MESSAGE:
		return key_is(key, len, "content") ? F_CONTENT : F_OTHER;
	case F_CONTENT:
		return object ? F_PART : F_OTHER;
	case F_PART:
		return key_is(key, len, "text") ? F_PART_TEXT : F_OTHER;
	default:
		return F_OTHER;
	}
}

static enum gw_jscan_want on_value(void *ctx, uint32_t d, const char *key, size_t len, enum gw_jscan_type type)
{
	struct gw_openai_scan *sc = ctx;
	enum field f = classify(sc, d, key, len, type);
	sc->field[d] = (uint8_t)f;
	/* A value replaces what an earlier one of the same name said, whatever
	 * its type (the last duplicate wins, as in JSON parsers). */
	if (d == 1) {
		sc->which = f == F_PROMPT && key_is(key, len, "input");
		top_reset(sc, f);
	} else if (f == F_CONTENT) {
		sc->content_bytes = 0;
	} else if (f == F_PART || f == F_PART_TEXT) {
		sc->part_bytes = 0;
	} else if (f == F_MESSAGE) {
		sc->body.messages++;
		sc->content_bytes = 0;
	}
	bool object = type == GW_JSCAN_OBJECT, array = type == GW_JSCAN_ARRAY;
	if (f == F_OTHER || (object && f != F_MESSAGE && f != F_PART) ||
	    (array && f != F_PROMPT && f != F_PROMPT_ITEM && f != F_MESSAGES && f != F_CONTENT))
		return GW_JSCAN_SKIP;	/* containers are followed only where members mean something */
	if (type == GW_JSCAN_STRING)
		return f == F_MODEL || f == F_TIER ? GW_JSCAN_CAPTURE : GW_JSCAN_COUNT;
	if (f == F_PART_TEXT)
		return GW_JSCAN_SKIP;	/* a text that is not a string is no text */
	if (f == F_PROMPT_ITEM || f == F_TOKEN_IDS)
		return GW_JSCAN_COUNT;	/* a token id: its type is all that counts */
	return GW_JSCAN_CAPTURE;	/* other scalars captured, containers followed */
}

/* A captured integer's value (it fits: the scanner checked), or -1 when it
 * is negative. */
static int64_t whole_number(const char *text, size_t len)
{
	char buf[24];
	if (text == NULL || len >= sizeof(buf))
		return -1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	long long v = strtoll(buf, NULL, 10);
	return v >= 0 ? v : -1;
}

static void top_end(struct gw_openai_scan *sc, enum field f, enum gw_jscan_type type, const char *text,
		    size_t len, uint64_t count)
{
	struct gw_openai_body *b = &sc->body;
	bool integer = type == GW_JSCAN_INTEGER;
	switch (f) {
	case F_MODEL:
		if (text != NULL && type == GW_JSCAN_STRING && len < sizeof(b->model)) {
			memcpy(b->model, text, len);
			b->model_len = len;
		} else if (type == GW_JSCAN_STRING) {
			b->model_long = true;	/* matches no configured name */
		}
		break;
	case F_TIER:
		if (text != NULL && type == GW_JSCAN_STRING && len < sizeof(b->tier)) {
			memcpy(b->tier, text, len);
			b->tier_len = len;
		}
		break;
	case F_MAX_TOKENS: sc->max_tokens = integer ? whole_number(text, len) : -1; break;
	case F_MAX_COMPLETION_TOKENS: sc->max_completion_tokens = integer ? whole_number(text, len) : -1; break;
	case F_N: b->n = integer ? whole_number(text, len) : -1; break;
	case F_STREAM: b->stream = type == GW_JSCAN_TRUE ? 1 : type == GW_JSCAN_FALSE ? 0 : -1; break;
	case F_PROMPT: if (type == GW_JSCAN_STRING) sc->prompt_bytes[sc->which] = count; break;
	default: break;
	}
}

static void on_value_end(void *ctx, uint32_t d, enum gw_jscan_type type, const char *text, size_t len,
			 bool overflow, uint64_t count)
{
	struct gw_openai_scan *sc = ctx;
	enum field f = (enum field)sc->field[d];
	if (d == 1) {
		top_end(sc, f, type, text, len, count);
		return;
	}
	switch (f) {
	case F_PROMPT_ITEM:
	case F_TOKEN_IDS:
		if (type == GW_JSCAN_STRING && f == F_PROMPT_ITEM)
			sc->prompt_bytes[sc->which] += count;
		else if (type == GW_JSCAN_INTEGER)
			sc->token_ids[sc->which]++;
		break;
	case F_CONTENT:
		if (type == GW_JSCAN_STRING)
			sc->content_bytes = count;
		break;
	case F_PART_TEXT:
		sc->part_bytes = count;	/* the last text of a part wins */
		break;
	case F_PART:
		sc->content_bytes += sc->part_bytes;
		break;
	case F_MESSAGE:
		sc->message_bytes += sc->content_bytes;
		sc->content_bytes = 0;
		break;
	default:
		break;
	}
}

static const struct gw_jscan_ops scan_ops = { on_value, on_value_end };

void gw_openai_scan_init(struct gw_openai_scan *sc)
{
	memset(&sc->body, 0, sizeof(sc->body));
	sc->body.n = sc->max_tokens = sc->max_completion_tokens = -1;
	sc->body.stream = -1;
	memset(sc->prompt_bytes, 0, sizeof(sc->prompt_bytes));
	memset(sc->token_ids, 0, sizeof(sc->token_ids));
	sc->message_bytes = sc->content_bytes = sc->part_bytes = 0;
	sc->which = 0;
	gw_jscan_init(&sc->js, &scan_ops, sc, SCAN_DEPTH);
}

void gw_openai_scan_feed(struct gw_openai_scan *sc, const char *data, size_t len)
{
	gw_jscan_feed(&sc->js, data, len);
}

int gw_openai_scan_observe(void *ctx, const char *data, size_t len)
{
	gw_jscan_feed(&((struct gw_openai_scan *)ctx)->js, data, len);
	return 0;
}

void gw_openai_body_absent(struct gw_openai_body *out)
{
	memset(out, 0, sizeof(*out));
	out->n = out->max_tokens = -1;
	out->stream = -1;
}

void gw_openai_scan_finish(struct gw_openai_scan *sc, struct gw_openai_body *out)
{
	if (!gw_jscan_finish(&sc->js) || sc->js.top != GW_JSCAN_OBJECT) {
		gw_openai_body_absent(out);
		return;
	}
	*out = sc->body;
	out->valid = true;
	out->text_bytes = sc->prompt_bytes[0] + sc->prompt_bytes[1] + sc->message_bytes;
	out->token_ids = sc->token_ids[0] + sc->token_ids[1];
	out->max_tokens = sc->max_completion_tokens >= 0 ? sc->max_completion_tokens : sc->max_tokens;
}

int gw_openai_tier_class(const struct gw_openai_body *b)
{
	static const struct {
		const char *tier;
		enum conf_class k;
	} tiers[] = {
		{ "priority", CONF_CLASS_INTERACTIVE },
		{ "default", CONF_CLASS_STANDARD },
		{ "auto", CONF_CLASS_STANDARD },
		{ "flex", CONF_CLASS_OPPORTUNISTIC },
	};
	for (size_t i = 0; i < sizeof(tiers) / sizeof(tiers[0]); i++)
		if (key_is(b->tier, b->tier_len, tiers[i].tier))
			return (int)tiers[i].k;
	return -1;
}

double gw_openai_prompt_tokens(const struct gw_openai_body *b, uint64_t body_len)
{
	if (!b->valid)
		return (double)body_len / GW_OPENAI_BYTES_PER_TOKEN;
	return ceil((double)b->text_bytes / GW_OPENAI_BYTES_PER_TOKEN) + (double)b->token_ids +
	       (double)b->messages * GW_OPENAI_TOKENS_PER_MESSAGE;
}

double gw_openai_output_tokens(const struct gw_openai_body *b)
{
	if (b->max_tokens < 0)
		return -1;
	return (double)b->max_tokens * (b->n > 1 ? (double)b->n : 1);
}

/* The usage object's scan: total_tokens and completion_tokens among its members. */
struct usage_scan {
	int64_t total, completion;
	int64_t *capturing;
};

static enum gw_jscan_want usage_value(void *ctx, uint32_t d, const char *key, size_t len, enum gw_jscan_type type)
{
	struct usage_scan *us = ctx;
	if (d != 1 || type != GW_JSCAN_INTEGER)
		return GW_JSCAN_SKIP;
	us->capturing = key_is(key, len, "total_tokens")	? &us->total
			: key_is(key, len, "completion_tokens") ? &us->completion
								: NULL;
	return us->capturing ? GW_JSCAN_CAPTURE : GW_JSCAN_SKIP;
}

static void usage_end(void *ctx, uint32_t d, enum gw_jscan_type type, const char *text, size_t len,
		      bool overflow, uint64_t count)
{
	struct usage_scan *us = ctx;
	/* Called for every member asked about, captured or not. */
	if (d == 1 && type == GW_JSCAN_INTEGER && text != NULL && us->capturing != NULL)
		*us->capturing = whole_number(text, len);
	us->capturing = NULL;
}

double gw_openai_usage(const char *tail, size_t len, double *completion)
{
	*completion = -1;
	static const char key[] = "\"usage\"";
	static const struct gw_jscan_ops ops = { usage_value, usage_end };
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
	/* The object is scanned up to its close; what follows it (the rest of
	 * the response) makes the scanner stop, which is fine once the object
	 * closed whole (depth back to 0). */
	struct usage_scan us = { -1, -1, NULL };
	struct gw_jscan js;
	gw_jscan_init(&js, &ops, &us, 1);
	gw_jscan_feed(&js, u, (size_t)(end - u));
	if (!js.top_done)
		return -1;
	if (us.completion >= 0)
		*completion = (double)us.completion;
	return us.total >= 0 ? (double)us.total : -1;
}

double gw_openai_usage_tokens(const char *tail, size_t len)
{
	double completion;
	return gw_openai_usage(tail, len, &completion);
}

/* A bucket figure as a whole number (levels in debt show as 0). */
static uint64_t whole(double v)
{
	return v > 0 ? (uint64_t)floor(v + 0.5) : 0;
}

int gw_openai_append_duration(struct gw_buf *out, uint64_t ms)
{
	if (ms < 1000) {
		int rc = gw_buf_append_u64(out, ms);
		return rc | gw_buf_appends(out, ms == 0 ? "s" : "ms");
	}
	uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
	int rc = 0;
	if (h > 0) {
		rc |= gw_buf_append_u64(out, h);
		rc |= gw_buf_append(out, "h", 1);
	}
	if (h > 0 || m > 0) {
		rc |= gw_buf_append_u64(out, m);
		rc |= gw_buf_append(out, "m", 1);
	}
	rc |= gw_buf_append_u64(out, s);
	if (frac > 0) {
		/* Three decimals, trailing zeros dropped: 1.5s, 1.25s, 1.005s. */
		char d[4] = { '.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10), (char)('0' + frac % 10) };
		size_t n = 4;
		while (d[n - 1] == '0')
			n--;
		rc |= gw_buf_append(out, d, n);
	}
	return rc | gw_buf_append(out, "s", 1);
}

/* One bucket's three headers; `limit` is what the tenant was promised, per
 * minute as OpenAI states it. Sent on every response, so formatted without
 * printf. */
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
	rc |= gw_openai_append_duration(out, queue_bucket_full_in(b, now_ms));
	rc |= gw_buf_append(out, "\r\n", 2);
	return rc;
}

int gw_openai_ratelimit_headers(struct queue_tenant *t, uint64_t now_ms, struct gw_buf *out)
{
	return bucket_headers(out, "requests", t->cfg->requests_per_s * 60, &t->requests, now_ms) |
	       bucket_headers(out, "tokens", t->cfg->tokens_per_min, &t->tokens, now_ms);
}
