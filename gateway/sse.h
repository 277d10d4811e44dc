/*
 * sse.h - counting the tokens of a server-sent event stream as it passes.
 *
 * A streamed completion is a series of `data:` lines, one JSON object each
 * (OpenAI's chunks), ended by `data: [DONE]`.  sluice wants to know when
 * an event that carries generated text goes by, to time the first token
 * and the gaps between tokens, without holding the stream back or copying
 * it.  An event carries content when one of its data lines has a `"text"`
 * or `"content"` key whose value is a non-empty string: the role-only
 * first chunk of a chat stream (`"delta":{"role":"assistant","content":""}`),
 * the usage chunk (`"choices":[]`) and `[DONE]` do not.
 *
 * The scanner is fed the body bytes in whatever pieces they arrive (split
 * anywhere, even inside a key) and keeps a few bytes of state; it never
 * buffers the stream.
 */
#ifndef SLUICE_GATEWAY_SSE_H
#define SLUICE_GATEWAY_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_SSE_BACK 9			/* `"content"`: the longest key we look for, quoted */

struct gw_sse {
	uint8_t state;			/* enum in sse.c */
	uint8_t prefix;			/* bytes of "data:" matched at a line start */
	uint8_t back_len;		/* bytes in back[] */
	bool event_counted;		/* the current event was already counted */
	bool data_lines;		/* a data line was seen: the body is a stream */
	bool started;			/* the body's first byte was seen */
	bool crlf;			/* the last line break was a CR: an LF next is its pair */
	char back[GW_SSE_BACK];		/* last bytes of a data line from earlier pieces */
	uint64_t events;		/* content events seen */
};

/* Start scanning a stream. */
void gw_sse_init(struct gw_sse *s);

/*
 * The next bytes of the stream.  Returns how many content events began to
 * count in them (an event counts once, when its content is first seen),
 * also added to s->events.  A body whose first byte is '{' or '[' is
 * JSON, not a stream: nothing of it is counted, and data_lines stays false.
 */
unsigned gw_sse_feed(struct gw_sse *s, const char *data, size_t len);

#endif
