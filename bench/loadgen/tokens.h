/*
 * tokens.h - count a completion's output tokens from its body as it streams.
 *
 * The body is fed piece by piece, as llhttp hands it over, and never stored.
 * The scanner looks for `"completion_tokens":N` (the OpenAI usage object, in
 * a JSON body or in the usage chunk of an SSE stream, which loadgen asks for
 * with stream_options.include_usage) and keeps the largest N seen.  For SSE
 * it also counts `data:` lines, apart from `data: [DONE]`, as the fallback
 * when a server sends no usage: one event per token, as OpenAI-compatible
 * servers stream them.
 */
#ifndef SLUICE_BENCH_LOADGEN_TOKENS_H
#define SLUICE_BENCH_LOADGEN_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lg_tokscan {
	uint64_t usage;		/* largest completion_tokens value seen */
	uint64_t number;	/* digits of the value being read */
	uint64_t events;	/* data: lines, [DONE] excluded */
	uint8_t key_pos;	/* bytes of the usage key matched */
	uint8_t line_pos;	/* bytes of "data:" matched at the start of a line */
	uint8_t done_pos;	/* bytes of "[DONE]" matched after "data:" */
	bool has_usage;
	bool in_number;		/* between the key and the end of its digits */
	bool digits;		/* ...and at least one digit was read */
	bool at_line_start;
	bool after_data;	/* inside a data: line, before its payload starts */
};

void lg_tokscan_init(struct lg_tokscan *t);

void lg_tokscan_feed(struct lg_tokscan *t, const char *p, size_t n);

/*
 * Output tokens: the usage figure when one was seen, else the SSE data
 * events (0 for a JSON body without usage).  `sse` says which the body was.
 */
uint64_t lg_tokscan_tokens(const struct lg_tokscan *t, bool sse);

#endif
