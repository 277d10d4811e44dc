/*
 * sse.c - the token counter of sse.h.
 *
 * Why by hand and not with jscan.h: the scanner runs over every byte of
 * every streamed response, and all it needs is one bit per event ("did a
 * non-empty text or content string go by?").  A JSON parse of each event
 * would cost a tokenizer with a depth stack and callbacks per value, a few
 * dozen instructions a byte.  This looks only at colons: a key is a string
 * followed by ':', and a string cannot hold an unescaped quote, so the
 * bytes `"text":` or `"content":` can only be those keys (inside a string
 * value they would read `\"text\":`).  memchr (vectorised) jumps from colon
 * to colon and from line to line; after the content of an event is found,
 * the rest of it is skipped.  It is deliberately loose: it does not
 * validate the JSON, it counts such a key anywhere in a data line, and it
 * does not allow a space between a key and its colon (no OpenAI-compatible
 * server writes one).
 *
 * States, per line:
 *   BOL     at a line start; matching "data:" (prefix counts the bytes)
 *   SKIP    a line that is not a data line, or the rest of one after its
 *           content was found: ignored up to its end
 *   DATA    in a data line, from colon to colon; back[] keeps the line's
 *           last bytes of the previous piece, to see a key split by a read
 *   VALUE   after `"text":` or `"content":`: a '"' opens the value
 *   FIRST   just inside that value: any byte but '"' is content
 *   OFF     not a stream: the body began with '{' or '[' (JSON), so the
 *           rest is not looked at (a non-streamed response costs one byte)
 * A blank line ends the event.  CR, LF and CRLF each end a line (the LF
 * that follows a CR is part of its line break, not a blank line).
 */
#include <stddef.h>
#include <string.h>

#include "gateway/sse.h"

enum { BOL, SKIP, DATA, VALUE, FIRST, OFF };

void gw_sse_init(struct gw_sse *s)
{
	memset(s, 0, sizeof(*s));
	s->state = BOL;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t';
}

/* The end of the line that starts at p: the first CR or LF, or `end`. */
static const char *line_end(const char *p, const char *end)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	const char *stop = lf ? lf : end;
	const char *cr = memchr(p, '\r', (size_t)(stop - p));
	return cr ? cr : stop;
}

/* Do the bytes before the colon at q, back to `from` and then back[],
 * end with `"text"` or `"content"`? */
static bool key_before(const struct gw_sse *s, const char *from, const char *q)
{
	char w[GW_SSE_BACK];
	size_t have = (size_t)(q - from);
	size_t n = have < GW_SSE_BACK ? have : GW_SSE_BACK;
	size_t m = GW_SSE_BACK - n < s->back_len ? GW_SSE_BACK - n : s->back_len;
	memcpy(w + GW_SSE_BACK - n, q - n, n);
	memcpy(w + GW_SSE_BACK - n - m, s->back + s->back_len - m, m);
	size_t len = n + m;
	const char *e = w + GW_SSE_BACK;
	return (len >= 6 && memcmp(e - 6, "\"text\"", 6) == 0) ||
	       (len >= 9 && memcmp(e - 9, "\"content\"", 9) == 0);
}

/* As key_before(), for a colon with a whole key's bytes before it in
 * this piece. */
static bool key_in_place(const char *q)
{
	return memcmp(q - 6, "\"text\"", 6) == 0 || memcmp(q - 9, "\"content\"", 9) == 0;
}

/* Keep the last bytes of a data line that continues in the next piece. */
static void keep_back(struct gw_sse *s, const char *from, const char *to)
{
	size_t n = (size_t)(to - from);
	if (n >= GW_SSE_BACK) {
		memcpy(s->back, to - GW_SSE_BACK, GW_SSE_BACK);
		s->back_len = GW_SSE_BACK;
		return;
	}
	if (s->back_len + n > GW_SSE_BACK) {
		size_t drop = s->back_len + n - GW_SSE_BACK;
		memmove(s->back, s->back + drop, s->back_len - drop);
		s->back_len -= drop;
	}
	memcpy(s->back + s->back_len, from, n);
	s->back_len += n;
}

unsigned gw_sse_feed(struct gw_sse *s, const char *data, size_t len)
{
	static const char prefix[] = "data:";
	unsigned found = 0;
	if (s->state == OFF || len == 0)
		return 0;
	if (!s->started) {
		s->started = true;
		if (data[0] == '{' || data[0] == '[') {
			s->state = OFF;
			return 0;
		}
	}
	const char *p = data, *end = data + len;
	while (p < end) {
		/* The bytes up to the line's end (in this piece), then the
		 * line break if it is here. */
		const char *eol = line_end(p, end);
		const char *from = p;	/* this piece's part of the line */
		while (p < eol) {
			char c;
			switch (s->state) {
			case SKIP:
				p = eol;
				break;
			case DATA: {
				const char *q = memchr(p, ':', (size_t)(eol - p));
				if (q == NULL) {
					p = eol;
					break;
				}
				/* Both keys end with `t"`: most colons are
				 * rejected on the two bytes before them.  A key
				 * wholly in this piece is compared in place. */
				size_t have = (size_t)(q - from);
				if (have >= GW_SSE_BACK ? q[-1] == '"' && q[-2] == 't' && key_in_place(q)
				    : (have < 2 || (q[-1] == '"' && q[-2] == 't')) && key_before(s, from, q))
					s->state = VALUE;
				p = q + 1;
				break;
			}
			case BOL:
				/* The whole prefix at once, the usual case. */
				if (s->prefix == 0 && eol - p >= (ptrdiff_t)sizeof(prefix) - 1 &&
				    memcmp(p, prefix, sizeof(prefix) - 1) == 0) {
					p += sizeof(prefix) - 1;
					s->state = s->event_counted ? SKIP : DATA;
					s->data_lines = true;
					s->back_len = 0;
					from = p;
					break;
				}
				c = *p++;
				if (c != prefix[s->prefix]) {
					s->state = SKIP;
				} else if (++s->prefix == sizeof(prefix) - 1) {
					s->state = s->event_counted ? SKIP : DATA;
					s->data_lines = true;
					s->back_len = 0;
					from = p;
				}
				break;
			case VALUE:
				c = *p++;
				if (!is_ws(c))
					s->state = c == '"' ? FIRST : DATA;
				break;
			case FIRST:
				if (*p++ == '"') {
					s->state = DATA;	/* "": empty, go on looking */
					break;
				}
				found++;
				s->events++;
				s->event_counted = true;
				s->state = SKIP;
				break;
			default:
				p = eol;
				break;
			}
		}
		if (p == end) {
			/* The line goes on in the next piece. */
			if (s->state == DATA || s->state == VALUE || s->state == FIRST)
				keep_back(s, from, end);
			break;
		}
		/* A line that ends with nothing on it (prefix 0 at BOL) is
		 * blank: the event is over, except for the LF of a CRLF. */
		char c = *p++;
		if (s->state == BOL && s->prefix == 0 && !(c == '\n' && s->crlf))
			s->event_counted = false;
		s->crlf = c == '\r';
		s->state = BOL;
		s->prefix = 0;
	}
	return found;
}
