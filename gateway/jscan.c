/*
 * jscan.c - the incremental JSON scanner; see jscan.h for why it exists.
 *
 * Shape.  One state byte says what the next byte may be (a value, a member
 * name, a colon, a comma or a closing bracket, or a position inside a
 * string, escape, number or literal); a bit per open container says whether
 * it is an object or an array.  Every state survives the end of a read, so
 * a body is scanned with any split, one byte at a time included, and each
 * byte is looked at once.
 *
 * Speed.  Prompts are mostly string contents.  Inside a string, sixteen
 * bytes at a time (SSE2; eight with word arithmetic elsewhere) are checked
 * for anything that needs attention (a quote, a backslash, a control byte,
 * a non-ASCII byte), and plain runs are skipped (and counted) without a
 * branch per byte.  A
 * non-ASCII sequence or an escape whose bytes are all in this read is
 * decoded in place; only one cut by the end of a read goes through the
 * byte-at-a-time states.  Nothing is copied but captured values (bounded).
 *
 * Reporting.  A value at depth d (1 for members of the top value) is
 * reported when d <= max_depth and no enclosing container was skipped
 * (`quiet` holds the depth of a skipped container until it closes).
 */
#include <errno.h>
#include <math.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/jscan.h"

enum {
	ST_VALUE = 0,		/* a value */
	ST_ARRAY_FIRST,		/* a value or ']' */
	ST_OBJECT_FIRST,	/* a member name or '}' */
	ST_KEY,			/* a member name */
	ST_COLON,
	ST_AFTER,		/* ',' or the container's close (or the end) */
	ST_STRING,
	ST_ESCAPE,		/* after a backslash */
	ST_UNICODE,		/* \u and `sub` hex digits read */
	ST_LOW_BACKSLASH,	/* a high surrogate read: '\' of its pair next */
	ST_LOW_U,		/* ...then 'u' */
	ST_NUMBER,
	ST_LITERAL,
	ST_DONE,		/* the top value is complete */
};

/* Number grammar positions (`sub` in ST_NUMBER). */
enum { N_SIGN, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

static const char *const literals[] = { "true", "false", "null" };

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static bool is_object(const struct gw_jscan *s)
{
	uint32_t d = s->depth - 1;
	return (s->kinds[d / 8] >> (d % 8)) & 1;
}

static bool reporting(const struct gw_jscan *s, uint32_t depth)
{
	return depth <= s->max_depth && s->quiet == 0;
}

static void fail(struct gw_jscan *s)
{
	s->bad = true;
}

/* --- values: start and end ----------------------------------------------- */

/* A value of `type` starts, enclosed by s->depth containers. */
static void value_start(struct gw_jscan *s, enum gw_jscan_type type)
{
	uint32_t d = s->depth;
	s->want = GW_JSCAN_SKIP;
	if (d == 0) {
		s->top = (uint8_t)type;
	} else if (reporting(s, d)) {
		bool named = is_object(s) && !s->key_over;
		s->want = (uint8_t)s->ops->value(s->ctx, d, named ? s->key : NULL, named ? s->key_len : 0, type);
	}
	s->cap_len = 0;
	s->cap_over = false;
	s->count = 0;
	s->utf8_left = 0;
	s->u_high = 0;
}

/* The current scalar ended: report it, and expect what follows a value. */
static void scalar_end(struct gw_jscan *s, enum gw_jscan_type type)
{
	if (s->want != GW_JSCAN_SKIP) {
		bool kept = s->want == GW_JSCAN_CAPTURE && !s->cap_over;
		s->ops->value_end(s->ctx, s->depth, type, kept ? s->cap : NULL, kept ? s->cap_len : 0, s->cap_over,
				  s->count);
	}
	s->state = s->depth == 0 ? ST_DONE : ST_AFTER;
	s->top_done = s->depth == 0;
}

static void open_container(struct gw_jscan *s, bool object)
{
	if (s->depth >= GW_JSCAN_DEPTH_MAX) {
		fail(s);
		return;
	}
	uint32_t d = s->depth;
	value_start(s, object ? GW_JSCAN_OBJECT : GW_JSCAN_ARRAY);
	if (d >= 1 && s->want == GW_JSCAN_SKIP && reporting(s, d))
		s->quiet = d;	/* nothing inside is reported */
	s->depth++;
	if (object)
		s->kinds[d / 8] |= (uint8_t)(1u << (d % 8));
	else
		s->kinds[d / 8] &= (uint8_t)~(1u << (d % 8));
	s->state = object ? ST_OBJECT_FIRST : ST_ARRAY_FIRST;
}

static void close_container(struct gw_jscan *s, bool object)
{
	if (s->depth == 0 || is_object(s) != object) {
		fail(s);
		return;
	}
	uint32_t d = --s->depth;	/* the container's own depth, as a value */
	if (d >= 1 && s->quiet == d)
		s->quiet = 0;
	else if (d >= 1 && reporting(s, d))
		s->ops->value_end(s->ctx, d, object ? GW_JSCAN_OBJECT : GW_JSCAN_ARRAY, NULL, 0, false, 0);
	s->state = d == 0 ? ST_DONE : ST_AFTER;
	s->top_done = d == 0;
}

/* --- strings ----------------------------------------------------------------- */

/* Keep decoded bytes of the current string (a key, or a captured value). */
static void keep(struct gw_jscan *s, const char *p, size_t n)
{
	s->count += n;
	if (s->in_key) {
		if (s->key_over || s->key_len + n > GW_JSCAN_KEY_MAX) {
			s->key_over = true;
			return;
		}
		memcpy(s->key + s->key_len, p, n);
		s->key_len = (uint8_t)(s->key_len + n);
	} else if (s->want == GW_JSCAN_CAPTURE) {
		if (s->cap_over || s->cap_len + n > GW_JSCAN_CAPTURE_MAX) {
			s->cap_over = true;
			return;
		}
		memcpy(s->cap + s->cap_len, p, n);
		s->cap_len = (uint16_t)(s->cap_len + n);
	}
}

/* Does this string need its bytes kept (not only counted)? */
static bool keeping(const struct gw_jscan *s)
{
	return s->in_key || s->want == GW_JSCAN_CAPTURE;
}

/* Bytes that need no attention inside a string: not '"', '\\', a control
 * byte or a non-ASCII byte. */
static const uint8_t plain[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	/* 0x80-0xff: 0 */
};

/*
 * Length of the run of plain bytes at p.  With SSE2 (every x86-64 has it)
 * sixteen bytes are checked at a time: compared as signed bytes, anything
 * below 0x20 is a control byte or a non-ASCII one, and quotes and
 * backslashes are compared for; the first flagged byte is found with a
 * count of trailing zeros.  Elsewhere, eight bytes at a time with word
 * arithmetic (the lowest flag is exact; borrows only disturb the bytes
 * above it).
 */
static size_t plain_run(const unsigned char *p, size_t n)
{
	size_t i = 0;
#if defined(__SSE2__)
	const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		__m128i hit = _mm_or_si128(_mm_cmplt_epi8(v, space),
					   _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
		unsigned mask = (unsigned)_mm_movemask_epi8(hit);
		if (mask != 0)
			return i + (size_t)__builtin_ctz(mask);
	}
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
		uint64_t hit = (w | ((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w)) & highs;
		if (hit != 0)
			return i + ((size_t)__builtin_ctzll(hit) >> 3);
	}
#endif
	while (i < n && plain[p[i]])
		i++;
	return i;
}

/* A UTF-8 lead byte: how many continuation bytes follow, and the range of
 * the first (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF).
 * Returns false for a byte that cannot lead. */
static bool utf8_lead(unsigned char c, uint8_t *left, uint8_t *lo, uint8_t *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) {
		*left = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		*left = 2;
		if (c == 0xe0)
			*lo = 0xa0;
		else if (c == 0xed)
			*hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		*left = 3;
		if (c == 0xf0)
			*lo = 0x90;
		else if (c == 0xf4)
			*hi = 0x8f;
	} else {
		return false;
	}
	return true;
}

/* One byte of a multi-byte sequence after its lead. */
static void utf8_next(struct gw_jscan *s, unsigned char c)
{
	if (c < s->utf8_lo || c > s->utf8_hi) {
		fail(s);
		return;
	}
	s->utf8_left--;
	s->utf8_lo = 0x80;
	s->utf8_hi = 0xbf;
}

/* Decoded byte of a one-character escape (\n etc.), 0 for anything else. */
static const char unescaped[256] = {
	['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b', ['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t',
};

static void take(struct gw_jscan *s, const unsigned char *p, size_t n)
{
	if (keeping(s))
		keep(s, (const char *)p, n);
	else
		s->count += n;
}

/* Append code point cp (valid, not a surrogate) as UTF-8. */
static void keep_code_point(struct gw_jscan *s, uint32_t cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	take(s, (const unsigned char *)u, n);
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The four hex digits of a \u escape are read (in s->u_value). */
static void unicode_done(struct gw_jscan *s)
{
	uint32_t v = s->u_value;
	if (s->u_high != 0) {
		if (v < 0xdc00 || v > 0xdfff) {
			fail(s);	/* a high surrogate needs a low one */
			return;
		}
		keep_code_point(s, 0x10000 + (((uint32_t)s->u_high - 0xd800) << 10) + (v - 0xdc00));
		s->u_high = 0;
		s->state = ST_STRING;
		return;
	}
	if (v == 0 || (v >= 0xdc00 && v <= 0xdfff)) {
		fail(s);	/* NUL, or a lone low surrogate */
		return;
	}
	if (v >= 0xd800 && v <= 0xdbff) {
		s->u_high = (uint16_t)v;
		s->state = ST_LOW_BACKSLASH;
		return;
	}
	keep_code_point(s, v);
	s->state = ST_STRING;
}

/* \uXXXX with its four digits at p, all in this buffer: decoded here when
 * it is a whole character (not half of a surrogate pair, not NUL). */
static bool unicode_inline(struct gw_jscan *s, const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hex_value(p[i]);
		if (h < 0)
			return false;
		v = v * 16 + (uint32_t)h;
	}
	if (v == 0 || (v >= 0xd800 && v <= 0xdfff))
		return false;	/* the byte-at-a-time path decides */
	keep_code_point(s, v);
	return true;
}

/* The byte after a backslash. */
static void escape(struct gw_jscan *s, unsigned char c)
{
	if (c == 'u') {
		s->state = ST_UNICODE;
		s->sub = 0;
		s->u_value = 0;
		return;
	}
	if (unescaped[c] == 0) {
		fail(s);
		return;
	}
	take(s, (const unsigned char *)&unescaped[c], 1);
	s->state = ST_STRING;
}

static void string_end(struct gw_jscan *s)
{
	if (s->in_key) {
		s->in_key = false;
		s->state = ST_COLON;
		return;
	}
	scalar_end(s, GW_JSCAN_STRING);
}

/* A UTF-8 sequence led by p[0] (>= 0x80): its length when it is valid and
 * whole in [p, end); 0 when it is invalid; -1 when the buffer ends first. */
static int utf8_seq(const unsigned char *p, const unsigned char *end)
{
	uint8_t left, lo, hi;
	if (!utf8_lead(p[0], &left, &lo, &hi))
		return 0;
	if (end - p <= left)
		return -1;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (uint8_t i = 2; i <= left; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return left + 1;
}

/* The UTF-8 length of the character a \uXXXX escape (digits at p) stands
 * for, or 0 when it is half of a surrogate pair, NUL, or not hex. */
static int unicode_length(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hex_value(p[i]);
		if (h < 0)
			return 0;
		v = v * 16 + (uint32_t)h;
	}
	if (v == 0 || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	return v < 0x80 ? 1 : v < 0x800 ? 2 : 3;
}

/*
 * Inside a string that is only counted or skipped (most of a prompt): the
 * decoded length is the bytes consumed less what escapes save, so plain runs
 * and UTF-8 sequences are passed over without bookkeeping.  Stops at the end
 * of the string, or at anything the general path must handle.
 */
static const unsigned char *pass_string(struct gw_jscan *s, const unsigned char *p, const unsigned char *end)
{
	const unsigned char *from = p;
	uint64_t saved = 0;
	while (p < end) {
		p += plain_run(p, (size_t)(end - p));
		if (p == end)
			break;
		unsigned char c = *p;
		if (c == '\\' && end - p >= 2 && unescaped[p[1]] != 0) {
			p += 2;
			saved++;
		} else if (c == '\\' && end - p >= 6 && p[1] == 'u') {
			int n = unicode_length(p + 2);
			if (n == 0)
				break;	/* a surrogate, NUL or bad hex: the general path */
			p += 6;
			saved += (uint64_t)(6 - n);
		} else if (c >= 0x80) {
			/* Runs of non-ASCII text (CJK, say) stay in this loop. */
			int n;
			while (p < end && *p >= 0x80 && (n = utf8_seq(p, end)) > 0)
				p += n;
			if (p < end && *p >= 0x80)
				break;	/* invalid, or cut by the read */
		} else {
			break;
		}
	}
	s->count += (uint64_t)(p - from) - saved;
	return p;
}

/*
 * Inside a string: consume as much of [p, end) as possible.  Plain runs go
 * eight bytes at a time; escapes and UTF-8 sequences wholly in the buffer
 * are handled here; anything cut by the end of the buffer leaves the state
 * for the byte-at-a-time path.  Returns where it stopped.
 */
static const unsigned char *string_bytes(struct gw_jscan *s, const unsigned char *p, const unsigned char *end)
{
	bool counted_only = !keeping(s);
	while (p < end) {
		if (counted_only) {
			p = pass_string(s, p, end);
			if (p == end)
				break;
		}
		unsigned char c = *p;
		if (c >= 0x80) {
			int n = utf8_seq(p, end);
			if (n > 0) {
				take(s, p, (size_t)n);
				p += n;
				continue;
			}
			if (n == 0) {
				fail(s);
				return p;
			}
			utf8_lead(c, &s->utf8_left, &s->utf8_lo, &s->utf8_hi);
			take(s, p, 1);	/* the sequence goes on in the next read */
			return p + 1;
		}
		if (c == '"') {
			string_end(s);
			return p + 1;
		}
		if (c == '\\') {
			if (end - p >= 2 && unescaped[p[1]] != 0) {
				take(s, (const unsigned char *)&unescaped[p[1]], 1);
				p += 2;
				continue;
			}
			if (end - p >= 6 && p[1] == 'u' && unicode_inline(s, p + 2)) {
				p += 6;
				continue;
			}
			s->state = ST_ESCAPE;	/* cut by the read, a surrogate, or invalid */
			return p + 1;
		}
		if (c < 0x20) {
			fail(s);	/* a control byte */
			return p;
		}
		size_t run = plain_run(p, (size_t)(end - p));
		take(s, p, run);
		p += run;
	}
	return p;
}

/* --- numbers and literals -------------------------------------------------- */

static void number_start(struct gw_jscan *s, unsigned char c)
{
	value_start(s, GW_JSCAN_INTEGER);
	s->state = ST_NUMBER;
	s->sub = N_SIGN;
	s->num_real = s->num_exp_neg = s->num_sticky = false;
	s->num_neg = c == '-';
	s->num_sig_len = 0;
	s->num_point = 0;
	s->num_exp = 0;
	s->num_int_digits = 0;
}

/* A digit of the integer or fraction part.  The number is kept as
 * 0.SIG x 10^point: leading zeros move the point, not SIG. */
static void number_digit(struct gw_jscan *s, unsigned char c, bool fraction)
{
	if (!fraction)
		s->num_int_digits++;
	if (s->num_sig_len == 0 && c == '0') {
		if (fraction)
			s->num_point--;
		return;
	}
	if (!fraction)
		s->num_point++;
	if (s->num_sig_len < sizeof(s->num_sig))
		s->num_sig[s->num_sig_len++] = (char)c;
	else if (c != '0')
		s->num_sticky = true;
}

/* Does the number fit, as jansson requires: an integer in 64 bits, a real
 * without overflow? */
static bool number_fits(const struct gw_jscan *s)
{
	if (!s->num_real) {
		if (s->num_int_digits < 19)
			return true;
		if (s->num_int_digits > 19)
			return false;
		const char *limit = s->num_neg ? "9223372036854775808" : "9223372036854775807";
		return memcmp(s->num_sig, limit, 19) <= 0;
	}
	if (s->num_sig_len == 0)
		return true;	/* zero */
	int64_t e = (int64_t)s->num_point + (s->num_exp_neg ? -(int64_t)s->num_exp : s->num_exp);
	if (e > 400)
		return false;
	if (e < -400)
		return true;	/* underflows to zero, which jansson accepts */
	/* 0.SIG[1]eE: a dropped nonzero tail stands as a final 1, which rounds
	 * the same way as the whole tail would (the threshold has fewer
	 * digits than are kept). */
	char buf[GW_JSCAN_SIG_MAX + 16];
	memcpy(buf, "0.", 2);
	memcpy(buf + 2, s->num_sig, s->num_sig_len);
	size_t n = 2 + s->num_sig_len;
	if (s->num_sticky)
		buf[n++] = '1';
	buf[n++] = 'e';
	int64_t a = e < 0 ? -e : e;
	if (e < 0)
		buf[n++] = '-';
	char digits[8];
	size_t nd = 0;
	do {
		digits[nd++] = (char)('0' + a % 10);
		a /= 10;
	} while (a > 0);
	while (nd > 0)
		buf[n++] = digits[--nd];
	buf[n] = '\0';
	errno = 0;
	double v = strtod(buf, NULL);
	return !(errno == ERANGE && isinf(v));	/* underflow (to 0 or a subnormal) is fine */
}

static void number_end(struct gw_jscan *s)
{
	if (s->sub == N_SIGN || s->sub == N_DOT || s->sub == N_E || s->sub == N_ESIGN || !number_fits(s)) {
		fail(s);	/* "-", "1.", "1e", "1e+", or too big */
		return;
	}
	scalar_end(s, s->num_real ? GW_JSCAN_REAL : GW_JSCAN_INTEGER);
}

/* One byte of a number.  Returns false when c is not part of it (the
 * number has ended before c, which the caller then reads afresh). */
static bool number_step(struct gw_jscan *s, unsigned char c)
{
	bool digit = c >= '0' && c <= '9';
	switch (s->sub) {
	case N_SIGN:
		if (!digit)
			break;
		number_digit(s, c, false);
		s->sub = c == '0' ? N_ZERO : N_INT;
		return true;
	case N_ZERO:
	case N_INT:
		if (digit) {
			if (s->sub == N_ZERO)
				break;	/* a leading zero */
			number_digit(s, c, false);
			return true;
		}
		if (c != '.' && c != 'e' && c != 'E')
			return false;
		s->num_real = true;
		s->sub = c == '.' ? N_DOT : N_E;
		return true;
	case N_DOT:
	case N_FRAC:
		if (digit) {
			number_digit(s, c, true);
			s->sub = N_FRAC;
			return true;
		}
		if (s->sub == N_DOT)
			break;
		if (c != 'e' && c != 'E')
			return false;
		s->sub = N_E;
		return true;
	case N_E:
		if (c == '+' || c == '-') {
			s->num_exp_neg = c == '-';
			s->sub = N_ESIGN;
			return true;
		}
		/* fall through */
	case N_ESIGN:
	case N_EXP:
		if (!digit) {
			if (s->sub != N_EXP)
				break;
			return false;
		}
		if (s->num_exp < 100000)
			s->num_exp = s->num_exp * 10 + (c - '0');
		s->sub = N_EXP;
		return true;
	}
	fail(s);
	return true;
}

static void literal_step(struct gw_jscan *s, unsigned char c)
{
	const char *lit = literals[s->literal];
	if (c != (unsigned char)lit[s->sub]) {
		fail(s);
		return;
	}
	if (lit[++s->sub] == '\0')
		scalar_end(s, s->literal == 0 ? GW_JSCAN_TRUE : s->literal == 1 ? GW_JSCAN_FALSE : GW_JSCAN_NULL);
}

/* --- the byte-at-a-time states ------------------------------------------------ */

/* A value starts with c (state ST_VALUE or ST_ARRAY_FIRST). */
static void value_byte(struct gw_jscan *s, unsigned char c)
{
	if (c == '{' || c == '[') {
		open_container(s, c == '{');
	} else if (c == '"') {
		value_start(s, GW_JSCAN_STRING);
		s->in_key = false;
		s->state = ST_STRING;
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		number_start(s, c);
		if (s->want == GW_JSCAN_CAPTURE)
			keep(s, (const char *)&c, 1);
		if (c != '-')
			number_step(s, c);
	} else if (c == 't' || c == 'f' || c == 'n') {
		s->literal = c == 't' ? 0 : c == 'f' ? 1 : 2;
		value_start(s, s->literal == 0 ? GW_JSCAN_TRUE : s->literal == 1 ? GW_JSCAN_FALSE : GW_JSCAN_NULL);
		s->sub = 1;
		s->state = ST_LITERAL;
	} else {
		fail(s);
	}
}

static void key_start(struct gw_jscan *s)
{
	s->in_key = true;
	s->key_len = 0;
	s->key_over = false;
	s->utf8_left = 0;
	s->u_high = 0;
	s->state = ST_STRING;
}

/* States that are inside a token and take any byte, whitespace included. */
static bool mid_token(uint8_t state)
{
	return state == ST_ESCAPE || state == ST_UNICODE || state == ST_LOW_BACKSLASH || state == ST_LOW_U ||
	       state == ST_LITERAL;
}

/* A structural byte (outside strings, numbers and literals). */
static void structural(struct gw_jscan *s, unsigned char c)
{
	switch (s->state) {
	case ST_VALUE:
		value_byte(s, c);
		break;
	case ST_ARRAY_FIRST:
		if (c == ']')
			close_container(s, false);
		else
			value_byte(s, c);
		break;
	case ST_OBJECT_FIRST:
	case ST_KEY:
		if (c == '"')
			key_start(s);
		else if (c == '}' && s->state == ST_OBJECT_FIRST)
			close_container(s, true);
		else
			fail(s);
		break;
	case ST_COLON:
		if (c == ':')
			s->state = ST_VALUE;
		else
			fail(s);
		break;
	case ST_AFTER:
		if (c == ',')
			s->state = is_object(s) ? ST_KEY : ST_VALUE;
		else if (c == '}' || c == ']')
			close_container(s, c == '}');
		else
			fail(s);
		break;
	default:
		fail(s);	/* ST_DONE: something after the top value */
		break;
	}
}

/* One byte in a state that spans bytes (a cut escape, UTF-8 sequence,
 * number or literal). */
static void inside(struct gw_jscan *s, unsigned char c)
{
	switch (s->state) {
	case ST_ESCAPE:
		escape(s, c);
		break;
	case ST_UNICODE: {
		int h = hex_value(c);
		if (h < 0) {
			fail(s);
			break;
		}
		s->u_value = s->u_value * 16 + (uint32_t)h;
		if (++s->sub == 4)
			unicode_done(s);
		break;
	}
	case ST_LOW_BACKSLASH:
		if (c == '\\')
			s->state = ST_LOW_U;
		else
			fail(s);
		break;
	case ST_LOW_U:
		if (c == 'u') {
			s->state = ST_UNICODE;
			s->sub = 0;
			s->u_value = 0;
		} else {
			fail(s);
		}
		break;
	case ST_LITERAL:
		literal_step(s, c);
		break;
	default:
		fail(s);
		break;
	}
}

void gw_jscan_init(struct gw_jscan *s, const struct gw_jscan_ops *ops, void *ctx, uint32_t max_depth)
{
	memset(s, 0, offsetof(struct gw_jscan, key));
	s->ops = ops;
	s->ctx = ctx;
	s->max_depth = max_depth;
	s->state = ST_VALUE;
}

void gw_jscan_feed(struct gw_jscan *s, const char *data, size_t len)
{
	const unsigned char *p = (const unsigned char *)data, *end = p + len;
	while (p < end && !s->bad) {
		unsigned char c = *p;
		if (s->state == ST_STRING) {
			if (s->utf8_left > 0) {
				utf8_next(s, c);
				take(s, p, 1);
				p++;
				continue;
			}
			p = string_bytes(s, p, end);
			continue;
		}
		if (s->state == ST_NUMBER) {
			if (s->sub == N_INT && s->want != GW_JSCAN_CAPTURE) {
				/* the digits of an integer part, in a tight loop */
				const unsigned char *q = p;
				while (q < end && *q >= '0' && *q <= '9')
					number_digit(s, *q++, false);
				if (q > p) {
					p = q;
					continue;
				}
			}
			if (number_step(s, c)) {
				if (s->want == GW_JSCAN_CAPTURE)
					keep(s, (const char *)p, 1);
				p++;
				continue;
			}
			number_end(s);
			continue;	/* c is read afresh in the state after the number */
		}
		if (mid_token(s->state)) {
			inside(s, c);
			p++;
			continue;
		}
		if (is_ws(c)) {
			p++;
			continue;
		}
		structural(s, c);
		p++;
	}
}

bool gw_jscan_finish(struct gw_jscan *s)
{
	if (!s->bad && s->state == ST_NUMBER && s->depth == 0)
		number_end(s);	/* a bare number ends with the body */
	return !s->bad && s->state == ST_DONE;
}
