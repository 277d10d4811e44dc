/*
 * test_sse.c - the token counter of streamed responses.
 *
 * Every stream is also fed split at every byte boundary, and one byte at a
 * time: the count must not depend on how the bytes arrive.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "gateway/sse.h"

static uint64_t count_whole(const char *s)
{
	struct gw_sse sc;
	gw_sse_init(&sc);
	unsigned n = gw_sse_feed(&sc, s, strlen(s));
	cr_assert_eq(n, sc.events);
	return sc.events;
}

/* The count of `s`, checked to be the same however `s` is split. */
static uint64_t count(const char *s)
{
	size_t len = strlen(s);
	uint64_t whole = count_whole(s);
	for (size_t cut = 0; cut <= len; cut++) {
		struct gw_sse sc;
		gw_sse_init(&sc);
		unsigned n = gw_sse_feed(&sc, s, cut);
		n += gw_sse_feed(&sc, s + cut, len - cut);
		cr_assert_eq(sc.events, whole, "split at %zu: %llu, whole: %llu", cut,
			     (unsigned long long)sc.events, (unsigned long long)whole);
		cr_assert_eq(n, whole);
	}
	struct gw_sse sc;
	gw_sse_init(&sc);
	for (size_t i = 0; i < len; i++)
		gw_sse_feed(&sc, s + i, 1);
	cr_assert_eq(sc.events, whole, "byte at a time");
	return whole;
}

#define CHAT_ROLE "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}"
#define CHAT_TOK(t) "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" t "\"},\"finish_reason\":null}]}"
#define TEXT_TOK(t) "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"text\":\"" t "\",\"finish_reason\":null}]}"
#define USAGE "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}"
#define DONE "data: [DONE]"

Test(sse, chat_role_only_first_chunk_not_counted, .timeout = 10)
{
	cr_assert_eq(count(CHAT_ROLE "\n\n" CHAT_TOK("Hi") "\n\n" CHAT_TOK(" there") "\n\n" USAGE "\n\n" DONE "\n\n"), 2);
	/* A role chunk with no content key, and one with a null content. */
	cr_assert_eq(count("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
			   "data: {\"choices\":[{\"delta\":{\"content\":null}}]}\n\n" CHAT_TOK("x") "\n\n"), 1);
}

Test(sse, done_and_usage_not_counted, .timeout = 10)
{
	cr_assert_eq(count(USAGE "\n\n" DONE "\n\n"), 0);
	cr_assert_eq(count(DONE "\n\n"), 0);
}

Test(sse, text_completions, .timeout = 10)
{
	cr_assert_eq(count(TEXT_TOK("tok0") "\n\n" TEXT_TOK(" tok1") "\n\n" TEXT_TOK("") "\n\n" TEXT_TOK(" tok2")
			   "\n\n" USAGE "\n\n" DONE "\n\n"), 3);
}

Test(sse, crlf_and_lf, .timeout = 10)
{
	cr_assert_eq(count(CHAT_ROLE "\r\n\r\n" CHAT_TOK("a") "\r\n\r\n" CHAT_TOK("b") "\r\n\r\n" DONE "\r\n\r\n"), 2);
	cr_assert_eq(count(CHAT_ROLE "\r\r" CHAT_TOK("a") "\r\r" DONE "\r\r"), 1);
	cr_assert_eq(count(CHAT_TOK("a") "\n\n" CHAT_TOK("b") "\r\n\r\n" CHAT_TOK("c") "\n\n"), 3);
}

Test(sse, escapes_and_lookalikes, .timeout = 10)
{
	/* A content that is an escape counts; "content" as a value or escaped
	 * inside a string is not a key. */
	cr_assert_eq(count(CHAT_TOK("\\n") "\n\n"), 1);
	cr_assert_eq(count("data: {\"delta\":{\"role\":\"content\",\"x\":\"\\\"content\\\":\\\"y\"}}\n\n"), 0);
	/* Not a data line. */
	cr_assert_eq(count(": keep-alive \"content\":\"x\"\n\nevent: x\n" CHAT_TOK("a") "\n\n"), 1);
	cr_assert_eq(count("dat: {\"content\":\"x\"}\n\n"), 0);
	/* Whitespace after the colon, and no space after data:. */
	cr_assert_eq(count("data:{\"content\": \"x\"}\n\n"), 1);
	/* Keys that end like ours, and colons inside values. */
	cr_assert_eq(count("data: {\"subtext\":\"x\",\"xcontent\":\"y\",\"id\":\"a:b\"}\n\n"), 0);
}

Test(sse, one_event_counts_once, .timeout = 10)
{
	/* Two data lines of one event, both with content: one event. */
	cr_assert_eq(count(CHAT_TOK("a") "\n" CHAT_TOK("b") "\n\n" CHAT_TOK("c") "\n\n"), 2);
	/* Two choices in one chunk: one event. */
	cr_assert_eq(count("data: {\"choices\":[{\"text\":\"a\"},{\"text\":\"b\"}]}\n\n"), 1);
}

Test(sse, a_json_body_is_not_a_stream, .timeout = 10)
{
	const char *json = "{\"choices\":[{\"text\":\"a\"}]}\ndata: {\"text\":\"b\"}\n\n";
	struct gw_sse sc;
	gw_sse_init(&sc);
	cr_assert_eq(gw_sse_feed(&sc, json, strlen(json)), 0);
	cr_assert_not(sc.data_lines);
	gw_sse_init(&sc);
	gw_sse_feed(&sc, DONE "\n\n", strlen(DONE) + 2);
	cr_assert(sc.data_lines, "a stream, though without content");
}
