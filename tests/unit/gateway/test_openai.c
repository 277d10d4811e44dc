/*
 * test_openai.c - the OpenAI fields sluice reads and writes: what a
 * client's SDK sends, parsed for real.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http.h"
#include "gateway/openai.h"

static const struct gw_http_limits limits = { .max_body_bytes = 4096, .max_header_bytes = 4096, .max_headers = 16 };

/* Parse one complete request. */
static void parse(struct gw_http *h, const char *text)
{
	size_t used;
	gw_http_init(h, HTTP_REQUEST, &limits, NULL, NULL);
	enum gw_http_event ev;
	size_t off = 0;
	do {
		ev = gw_http_parse(h, text + off, strlen(text) - off, &used);
		off += used;
	} while (ev == GW_HTTP_HEAD);
	cr_assert_eq(ev, GW_HTTP_DONE, "%s", text);
}

static void key_is(const char *req, const char *want)
{
	struct gw_http h;
	size_t len = 0;
	parse(&h, req);
	const char *k = gw_openai_api_key(&h.msg, &len);
	if (want == NULL)
		cr_assert_null(k, "%s", req);
	else
		cr_assert(k != NULL && len == strlen(want) && memcmp(k, want, len) == 0, "%s", req);
	gw_http_finish(&h);
}

Test(openai, api_key_from_bearer_or_x_api_key, .timeout = 5)
{
	key_is("GET / HTTP/1.1\r\nAuthorization: Bearer sk-1\r\n\r\n", "sk-1");
	key_is("GET / HTTP/1.1\r\nauthorization: bearer sk-2\r\n\r\n", "sk-2");
	key_is("GET / HTTP/1.1\r\nx-api-key: sk-3\r\n\r\n", "sk-3");
	key_is("GET / HTTP/1.1\r\nAuthorization: Basic Zm9v\r\nx-api-key: sk-4\r\n\r\n", "sk-4");
	key_is("GET / HTTP/1.1\r\nAuthorization: Bearer \r\n\r\n", NULL);
	key_is("GET / HTTP/1.1\r\n\r\n", NULL);
}

/* Scan `len` bytes of `json` whole, and again one byte at a time; both
 * must give the same fields. */
static struct gw_openai_body scan_n(const char *json, size_t len)
{
	static struct gw_openai_scan sc;
	struct gw_openai_body whole, bytewise;
	gw_openai_scan_init(&sc);
	gw_openai_scan_feed(&sc, json, len);
	gw_openai_scan_finish(&sc, &whole);
	gw_openai_scan_init(&sc);
	for (size_t i = 0; i < len; i++)
		gw_openai_scan_feed(&sc, json + i, 1);
	gw_openai_scan_finish(&sc, &bytewise);
	cr_assert(memcmp(&whole, &bytewise, sizeof(whole)) == 0, "fed byte by byte, %.60s... differs", json);
	return whole;
}

static struct gw_openai_body scan(const char *json)
{
	return scan_n(json, strlen(json));
}

Test(openai, body_fields_admission_reads, .timeout = 5)
{
	struct gw_openai_body b = scan("{\"model\":\"llama-3.1-8b\",\"service_tier\":\"flex\",\"max_tokens\":64,"
				       "\"stream\":true,\"n\":2}");
	cr_assert(b.valid);
	cr_assert_eq(b.model_len, 12);
	cr_assert(memcmp(b.model, "llama-3.1-8b", 12) == 0);
	cr_assert_eq(b.tier_len, 4);
	cr_assert(memcmp(b.tier, "flex", 4) == 0);
	cr_assert_eq(b.max_tokens, 64);
	cr_assert_eq(b.stream, 1);
	cr_assert_eq(b.n, 2);
	cr_assert_float_eq(gw_openai_output_tokens(&b), 128, 1e-9, "n choices of max_tokens each");
	b = scan("{\"max_tokens\":64,\"max_completion_tokens\":10}");
	cr_assert_eq(b.max_tokens, 10, "max_completion_tokens wins, as in the OpenAI API");
	b = scan("{\"max_tokens\":5,\"max_tokens\":7}");
	cr_assert_eq(b.max_tokens, 7, "duplicate keys: the last wins");
	b = scan("{\"max_tokens\":5,\"max_tokens\":\"7\"}");
	cr_assert_eq(b.max_tokens, -1, "...even when the last is not a number");
	b = scan("{\"service_tier\":\"a-tier-name-far-too-long\",\"stream\":null}");
	cr_assert_eq(b.tier_len, 0, "a tier that fits no class is ignored");
	cr_assert_eq(b.stream, -1);
	b = scan("{\"m\\u0061x_tokens\":3,\"model\":\"caf\\u00e9 \\ud83d\\ude00\"}");
	cr_assert_eq(b.max_tokens, 3, "escapes in keys are decoded before they are compared");
	cr_assert_eq(b.model_len, 10);
	cr_assert(memcmp(b.model, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10) == 0, "\\u escapes and surrogate pairs decode to UTF-8");
}

Test(openai, service_tier_maps_to_a_class, .timeout = 5)
{
	static const struct { const char *json; int want; } cases[] = {
		{ "{\"service_tier\":\"priority\"}", CONF_CLASS_INTERACTIVE },
		{ "{\"service_tier\":\"default\"}", CONF_CLASS_STANDARD },
		{ "{\"service_tier\":\"auto\"}", CONF_CLASS_STANDARD },
		{ "{\"service_tier\":\"flex\"}", CONF_CLASS_OPPORTUNISTIC },
		{ "{\"service_tier\":\"scale\"}", -1 },
		{ "{\"service_tier\":\"Priority\"}", -1 },
		{ "{}", -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gw_openai_body b = scan(cases[i].json);
		cr_assert_eq(gw_openai_tier_class(&b), cases[i].want, "%s", cases[i].json);
	}
}

Test(openai, max_tokens_only_as_a_whole_non_negative_integer, .timeout = 5)
{
	static const struct { const char *json; int64_t want; bool valid; } cases[] = {
		{ "{\"max_tokens\":1000}", 1000, true },
		{ "{\"max_tokens\":0}", 0, true },
		{ "{\"max_tokens\":-0}", 0, true },
		{ "{\"max_tokens\":1e3}", -1, true },	/* a real, as JSON parsers read it */
		{ "{\"max_tokens\":-1}", -1, true },
		{ "{\"max_tokens\":1.5}", -1, true },
		{ "{\"max_tokens\":\"5\"}", -1, true },
		{ "{\"max_tokens\":9223372036854775807}", INT64_MAX, true },
		{ "{\"max_tokens\":18446744073709551616}", -1, false },	/* 2^64: no integer, no valid body */
		{ "{\"max_tokens\":1e400}", -1, false },			/* a real that overflows */
		{ "{\"max_tokens\":1e-400}", -1, true },			/* ...one that underflows is 0.0 */
		{ "{\"max_tokens\":012}", -1, false },
		/* just past the overflow threshold, and just under it, in more
		 * digits than a double holds */
		{ "{\"a\":1797693134862315807937289714054e278,\"max_tokens\":1}", -1, false },
		{ "{\"a\":1797693134862315807937289714053e278,\"max_tokens\":1}", 1, true },
		{ "{\"max_tokens\":1.}", -1, false },
		{ "{\"max_tokens\":-}", -1, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gw_openai_body b = scan(cases[i].json);
		cr_assert_eq(b.valid, cases[i].valid, "%s", cases[i].json);
		cr_assert_eq(b.max_tokens, cases[i].want, "%s: %lld", cases[i].json, (long long)b.max_tokens);
	}
}

Test(openai, only_top_level_fields_count, .timeout = 5)
{
	struct gw_openai_body b = scan("{\"metadata\":{\"max_tokens\":9,\"model\":\"x\",\"messages\":[{\"content\":\"zz\"}]},"
				       "\"tools\":[{\"max_tokens\":8}],\"max_tokens\":3}");
	cr_assert_eq(b.max_tokens, 3, "a nested max_tokens is not the request's");
	cr_assert_eq(b.model_len, 0);
	cr_assert_eq(b.messages, 0);
	cr_assert_eq(b.text_bytes, 0);
}

Test(openai, invalid_and_non_object_bodies_have_no_fields, .timeout = 5)
{
	static const char *const bad[] = {
		"", "   ", "[1,2]", "\"max_tokens\"", "5", "{\"max_tokens\":5", "{\"max_tokens\":5}}",
		"{\"max_tokens\":5} x", "{\"max_tokens\":5,}", "{'max_tokens':5}", "{\"a\":tru}",
		"{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}",
		"{\"a\":\"\\u0000\"}", "{\"a\":\"\x01\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xed\xa0\x80\"}",
		"{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":[}", "{\"a\":1]", "{\"a\" 1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gw_openai_body b = scan(bad[i]);
		cr_assert_not(b.valid, "%s", bad[i]);
		cr_assert_eq(b.max_tokens, -1);
		cr_assert_float_eq(gw_openai_prompt_tokens(&b, 400), 100, 1e-9, "an opaque body costs its size");
	}
	/* \u0000 in the middle: invalid as a whole even though max_tokens came first */
	struct gw_openai_body b = scan_n("{\"max_tokens\":5,\"a\":\"\0\"}", 24);
	cr_assert_not(b.valid);
}

Test(openai, deep_nesting_costs_nothing_and_has_a_bound, .timeout = 10)
{
	/* 100,000 levels: the scan keeps a bit per level up to 2048 (as
	 * jansson) and calls anything deeper invalid, without recursing. */
	size_t depth = 100000, len = 2 * depth + 32;
	char *json = malloc(len);
	size_t n = (size_t)sprintf(json, "{\"max_tokens\":2,\"a\":");
	memset(json + n, '[', depth);
	memset(json + n + depth, ']', depth);
	n += 2 * depth;
	json[n++] = '}';
	struct gw_openai_body b = scan_n(json, n);
	cr_assert_not(b.valid, "deeper than jansson's limit");
	n = (size_t)sprintf(json, "{\"a\":");
	memset(json + n, '[', 2000);
	memset(json + n + 2000, ']', 2000);
	n += 4000;
	n += (size_t)sprintf(json + n, ",\"max_tokens\":2}");
	b = scan_n(json, n);
	cr_assert(b.valid);
	cr_assert_eq(b.max_tokens, 2, "a field after 2,000 levels of nesting");
	free(json);
}

/* A chat body with `size` bytes of message text, then `tail`. */
static char *big_chat(size_t size, const char *tail, size_t *len)
{
	char *json = malloc(size + 256);
	size_t n = (size_t)sprintf(json, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"");
	for (size_t i = 0; i < size; i++)
		json[n + i] = (char)('a' + i % 26);
	n += size;
	n += (size_t)sprintf(json + n, "\"}]%s}", tail);
	*len = n;
	return json;
}

Test(openai, fields_after_a_1MiB_messages_array_are_honoured, .timeout = 10)
{
	size_t len;
	char *json = big_chat(1 << 20, ",\"service_tier\":\"priority\",\"max_tokens\":12", &len);
	struct gw_openai_body b = scan_n(json, len);
	cr_assert(b.valid);
	cr_assert_eq(b.tier_len, 8);
	cr_assert_eq(b.max_tokens, 12);
	cr_assert_eq(b.text_bytes, 1 << 20);
	cr_assert_eq(b.messages, 1);
	free(json);
}

Test(openai, prompt_tokens_come_from_the_text_the_model_reads, .timeout = 5)
{
	/* 42 bytes of text in two messages: 11 tokens, plus 4 per message. */
	struct gw_openai_body b = scan("{\"messages\":[{\"role\":\"system\",\"content\":\"0123456789abcdefghij\"},"
				       "{\"role\":\"user\",\"name\":\"a-long-name-that-is-not-text\","
				       "\"content\":[{\"type\":\"text\",\"text\":\"0123456789\"},"
				       "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}},"
				       "{\"type\":\"text\",\"text\":\"\\n\\t\\\"\\\\\\u00e9 56789\"}]}]}");
	cr_assert_eq(b.messages, 2);
	cr_assert_eq(b.text_bytes, 20 + 10 + 12, "escapes count as the bytes they stand for (\\u00e9: 2)");
	cr_assert_float_eq(gw_openai_prompt_tokens(&b, 1000), ceil(42.0 / 4) + 8, 1e-9);
	b = scan("{\"prompt\":[\"abcd\",\"efgh\"],\"max_tokens\":1}");
	cr_assert_float_eq(gw_openai_prompt_tokens(&b, 1000), 2, 1e-9, "a list of prompts");
	b = scan("{\"prompt\":[[1,2,3],[4,5]]}");
	cr_assert_eq(b.token_ids, 5, "token ids count one each");
	b = scan("{\"input\":[1,2,3],\"prompt\":\"abcdabcd\"}");
	cr_assert_float_eq(gw_openai_prompt_tokens(&b, 1000), 3 + 2, 1e-9, "embeddings input and a prompt");
	b = scan("{\"messages\":[{\"content\":\"aaaaaaaa\",\"content\":\"bbbb\"}]}");
	cr_assert_eq(b.text_bytes, 4, "a duplicate content replaces the first");
}

Test(openai, usage_from_the_end_of_a_response, .timeout = 5)
{
	const char *json = "{\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}";
	cr_assert_float_eq(gw_openai_usage_tokens(json, strlen(json)), 12, 1e-9);
	const char *sse = "data: {\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"total_tokens\":30}}\n\n"
			  "data: [DONE]\n\n";
	cr_assert_float_eq(gw_openai_usage_tokens(sse, strlen(sse)), 30, 1e-9, "the last usage block counts");
	const char *none = "{\"choices\":[]}";
	cr_assert_float_eq(gw_openai_usage_tokens(none, strlen(none)), -1, 1e-9);
}

Test(openai, completion_tokens_from_the_same_usage_block, .timeout = 5)
{
	double out;
	const char *json = "{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12,"
			   "\"prompt_tokens_details\":{\"cached_tokens\":3}}}";
	cr_assert_float_eq(gw_openai_usage(json, strlen(json), &out), 12, 1e-9);
	cr_assert_float_eq(out, 7, 1e-9);
	const char *total_only = "{\"usage\":{\"total_tokens\":30}}";
	cr_assert_float_eq(gw_openai_usage(total_only, strlen(total_only), &out), 30, 1e-9);
	cr_assert_float_eq(out, -1, 1e-9, "no completion_tokens");
}

Test(openai, a_model_name_too_long_to_keep_is_flagged, .timeout = 5)
{
	char json[1024];
	char name[GW_OPENAI_MODEL_MAX + 1];
	memset(name, 'm', sizeof(name) - 1);
	name[GW_OPENAI_MODEL_MAX - 1] = '\0';	/* 255 bytes: kept */
	snprintf(json, sizeof(json), "{\"model\":\"%s\"}", name);
	struct gw_openai_body b = scan(json);
	cr_assert_eq(b.model_len, GW_OPENAI_MODEL_MAX - 1);
	cr_assert_not(b.model_long);
	name[GW_OPENAI_MODEL_MAX - 1] = 'm';
	name[GW_OPENAI_MODEL_MAX] = '\0';	/* 256 bytes: too long */
	snprintf(json, sizeof(json), "{\"model\":\"%s\"}", name);
	b = scan(json);
	cr_assert_eq(b.model_len, 0);
	cr_assert(b.model_long, "routing must not read it as no model at all");
	snprintf(json, sizeof(json), "{\"model\":\"%s\",\"model\":\"short\"}", name);
	b = scan(json);
	cr_assert_eq(b.model_len, 5, "the last duplicate wins");
	cr_assert_not(b.model_long);
	b = scan("{\"model\":42}");
	cr_assert_eq(b.model_len, 0);
	cr_assert_not(b.model_long, "not a string: no model");
}

static void duration_is(uint64_t ms, const char *want)
{
	struct gw_buf b = GW_BUF_INIT;
	cr_assert_eq(gw_openai_append_duration(&b, ms), 0);
	cr_assert(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0, "%llu ms: got '%.*s', want '%s'",
		  (unsigned long long)ms, (int)b.len, b.data, want);
	gw_buf_finish(&b);
}

/* x-ratelimit-reset-* as OpenAI sends them (Go durations). */
Test(openai, reset_durations_in_openais_form, .timeout = 5)
{
	duration_is(0, "0s");
	duration_is(1, "1ms");
	duration_is(20, "20ms");
	duration_is(398, "398ms");
	duration_is(999, "999ms");
	duration_is(1000, "1s");
	duration_is(1500, "1.5s");
	duration_is(1250, "1.25s");
	duration_is(1005, "1.005s");
	duration_is(59999, "59.999s");
	duration_is(60000, "1m0s");
	duration_is(90000, "1m30s");
	duration_is(360000, "6m0s");
	duration_is(3600000, "1h0m0s");
	duration_is(2 * 3600000 + 3 * 60000 + 4000, "2h3m4s");
	duration_is(3600000 + 500, "1h0m0.5s");
	duration_is(100ull * 3600000, "100h0m0s");
}
