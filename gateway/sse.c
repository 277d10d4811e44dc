/*
 * sse.c - the token counter of sse.h.
 *
 * Why by hand and not with jscan.h: the scanner runs over every byte of
 * every streamed response, and all it needs is one bit per event ("did a
 * non-empty text or content string go by?").  A JSON parse of each event
 * would cost a tokenizer with a depth stack and callbacks per value; this
 * is a loop with a switch over six states and no calls, which keeps the
 * cost out of the measurable (bench/RESULTS.md).  It is deliberately loose:
 * it does not validate the JSON, and a "text" key anywhere in a data line
 * (a tool call's arguments are strings, so their keys are escaped and
 * never seen as keys) counts.
 *
 * States, per line:
 *   BOL     at a line start; matching "data:" (prefix counts the bytes)
 *   SKIP    a line that is not a data line, or the rest of one after its
 *           content was found: ignored up to its end
 *   DATA    in a data line, between JSON tokens
 *   STR     inside a string (key[] keeps its first bytes)
 *   ESC     after a backslash inside a string
 *   AFTER   after a string: a ':' makes it a key
 *   VALUE   after `"text":` or `"content":`: a '"' opens the value
 *   FIRST   just inside that value: any byte but '"' is content
 *   OFF     not a stream: the body began with '{' or '[' (JSON), so the
 *           rest is not looked at (a non-streamed response costs one byte)
 * A blank line ends the event.  CR and LF both end a line (a CRLF is then
 * an empty line followed by nothing, which only resets the event flag that
 * the next blank line would reset anyway: the LF of a CRLF pair is skipped).
 */
#include <string.h>

#include "gateway/sse.h"

enum { BOL, SKIP, DATA, STR, ESC, AFTER, VALUE, FIRST, OFF };

void gw_sse_init(struct gw_sse *s)
{
	memset(s, 0, sizeof(*s));
	s->state = BOL;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t';
}

unsigned gw_sse_feed(struct gw_sse *s, const char *data, size_t len)
{
	static const char prefix[] = "data:";
	unsigned found = 0;
	if (s->state == OFF)
		return 0;
	if (len > 0 && !s->started) {
		s->started = true;
		if (data[0] == '{' || data[0] == '[') {
			s->state = OFF;
			return 0;
		}
	}
	for (size_t i = 0; i < len; i++) {
		if (s->state == SKIP) {
			/* Most bytes of a stream are skipped: find the line's
			 * end with memchr (vectorised) rather than byte by byte. */
			const char *lf = memchr(data + i, '\n', len - i);
			size_t end = lf ? (size_t)(lf - data) : len;
			const char *cr = memchr(data + i, '\r', end - i);
			i = cr ? (size_t)(cr - data) : end;
			if (i == len)
				break;
		}
		char c = data[i];
		if (c == '\n' || c == '\r') {
			/* A line that ends with nothing on it (prefix 0 at BOL)
			 * is blank: the event is over.  The LF of a CRLF comes
			 * with prefix 0xff, set below, and is not a blank line. */
			if (s->state == BOL && s->prefix == 0)
				s->event_counted = false;
			s->state = BOL;
			s->prefix = c == '\r' ? 0xff : 0;
			continue;
		}
		switch (s->state) {
		case BOL:
			if (s->prefix == 0xff)
				s->prefix = 0;
			if (c == prefix[s->prefix]) {
				if (++s->prefix == sizeof(prefix) - 1) {
					s->state = s->event_counted ? SKIP : DATA;
					s->data_lines = true;
				}
			} else {
				s->state = SKIP;
			}
			break;
		case SKIP:
			break;
		case DATA:
			if (c == '"') {
				s->state = STR;
				s->key_len = 0;
			}
			break;
		case STR:
			if (c == '\\') {
				s->state = ESC;
			} else if (c == '"') {
				s->key_match = (s->key_len == 4 && memcmp(s->key, "text", 4) == 0) ||
					       (s->key_len == 7 && memcmp(s->key, "content", 7) == 0);
				s->state = AFTER;
			} else if (s->key_len < GW_SSE_KEY_MAX) {
				s->key[s->key_len++] = c;
			}
			break;
		case ESC:
			/* An escaped byte spoils the key for our purpose. */
			s->key_len = GW_SSE_KEY_MAX;
			s->state = STR;
			break;
		case AFTER:
			if (is_ws(c))
				break;
			s->state = c == ':' && s->key_match ? VALUE : DATA;
			if (c == '"') {
				s->state = STR;
				s->key_len = 0;
			}
			break;
		case VALUE:
			if (is_ws(c))
				break;
			s->state = c == '"' ? FIRST : DATA;
			break;
		case FIRST:
			if (c == '"') {
				s->state = DATA;	/* "": empty, go on looking */
				break;
			}
			found++;
			s->events++;
			s->event_counted = true;
			s->state = SKIP;
			break;
		}
	}
	return found;
}
