/*
 * test_openai.c - the OpenAI fields sluice reads and writes: what a
 * client's SDK sends, parsed for real.
 */
#include <criterion/criterion.h>
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

static struct gw_openai_body body(const char *json)
{
	struct gw_openai_body b;
	gw_openai_read_body(json, strlen(json), &b);
	return b;
}

Test(openai, body_fields_admission_reads, .timeout = 5)
{
	struct gw_openai_body b = body("{\"model\":\"m\",\"service_tier\":\"flex\",\"max_tokens\":64}");
	cr_assert_eq(b.tier_len, 4);
	cr_assert(memcmp(b.tier, "flex", 4) == 0);
	cr_assert_eq(b.max_tokens, 64);
	b = body("{\"max_tokens\":64,\"max_completion_tokens\":10}");
	cr_assert_eq(b.max_tokens, 10, "max_completion_tokens wins, as in the OpenAI API");
	b = body("{\"max_tokens\":-5,\"service_tier\":\"a-tier-name-far-too-long\"}");
	cr_assert_eq(b.max_tokens, -1, "a negative count is no count");
	cr_assert_eq(b.tier_len, 0, "a tier that fits no class is ignored");
	b = body("[1,2]");
	cr_assert_eq(b.max_tokens, -1);
	b = body("{\"max_tokens\":");
	cr_assert_eq(b.max_tokens, -1, "invalid JSON: the backend answers it");
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
