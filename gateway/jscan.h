/*
 * jscan.h - an incremental JSON scanner for request bodies.
 *
 * Admission needs a few shallow fields of a request body (openai.c says
 * which), and the body may be megabytes of prompt.  Building a document of
 * it (jansson parses about 85 MB/s here) kept the one event loop busy for
 * milliseconds per long-context request, which every interactive request
 * then waited for.  This scanner is fed the body as it arrives, read by
 * read, keeps a fixed amount of state whatever the body's size, never
 * recurses, and reports only what its user asks for:
 *
 *   - at the start of each value no deeper than `max_depth` it asks
 *     value() what to do with it: skip it, capture it (strings decoded,
 *     numbers as their text, up to GW_JSCAN_CAPTURE_MAX bytes), or count
 *     its decoded bytes (strings only);
 *   - at the end of such a value it calls value_end() with what it kept;
 *   - object keys at those depths are decoded and handed to value() with
 *     the value they name.
 *
 * It validates as it goes, as strictly as jansson's default (the parser the
 * gateway used before, and the fuzz target's reference): UTF-8, escapes and
 * surrogate pairs, no NUL (\u0000), no control characters in strings, the
 * number grammar, integers that fit 64 bits, reals that do not overflow,
 * nesting up to GW_JSCAN_DEPTH_MAX, nothing but whitespace after the top
 * value.  Its user learns at gw_jscan_finish() whether the whole body was
 * valid; what it reported before counts only then.
 *
 * Why our own code: no JSON library in Debian parses incrementally without
 * building values or calling back per token (jansson, json-c, yajl: yajl
 * streams, but calls back for every token and copies every string, which is
 * most of a prompt), and the speed target (over 1 GB/s on long prompts)
 * needs string contents skipped eight bytes at a time.
 */
#ifndef SLUICE_GATEWAY_JSCAN_H
#define SLUICE_GATEWAY_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_JSCAN_DEPTH_MAX 2048		/* as jansson's JSON_PARSER_MAX_DEPTH */
#define GW_JSCAN_CAPTURE_MAX 256	/* bytes of a captured string or number */
#define GW_JSCAN_KEY_MAX 32		/* bytes of a key handed to value() */
/* Significant digits of a number kept to tell, exactly as strtod() would,
 * whether it overflows: the overflow threshold (halfway above DBL_MAX) has
 * 309 of them; what lies beyond is kept as one "nonzero" flag. */
#define GW_JSCAN_SIG_MAX 320

enum gw_jscan_type {
	GW_JSCAN_OBJECT = 0,
	GW_JSCAN_ARRAY,
	GW_JSCAN_STRING,
	GW_JSCAN_INTEGER,		/* a number without fraction or exponent */
	GW_JSCAN_REAL,
	GW_JSCAN_TRUE,
	GW_JSCAN_FALSE,
	GW_JSCAN_NULL,
};

enum gw_jscan_want { GW_JSCAN_SKIP = 0, GW_JSCAN_CAPTURE, GW_JSCAN_COUNT };

struct gw_jscan_ops {
	/*
	 * A value starts at `depth` (1: a member of the top value).  `key` is
	 * the member's decoded name in an object (NULL in an array, or when the
	 * name is longer than GW_JSCAN_KEY_MAX).  `type` is what its first
	 * byte says (GW_JSCAN_INTEGER for any number).  Return what to keep.
	 */
	enum gw_jscan_want (*value)(void *ctx, uint32_t depth, const char *key, size_t key_len,
				    enum gw_jscan_type type);
	/*
	 * A value that value() asked about has ended: `text` is what was
	 * captured (NULL when skipped, counted, or longer than the capture;
	 * `overflow` says which), `count` the decoded bytes of a counted
	 * string.  Containers end here too (type OBJECT or ARRAY).
	 */
	void (*value_end)(void *ctx, uint32_t depth, enum gw_jscan_type type, const char *text, size_t len,
			  bool overflow, uint64_t count);
};

struct gw_jscan {
	const struct gw_jscan_ops *ops;
	void *ctx;
	uint32_t max_depth;		/* values deeper than this are not reported */
	uint32_t depth;			/* containers open */
	uint8_t state;			/* what the next byte may be (jscan.c) */
	uint8_t sub;			/* position inside a token */
	bool bad;			/* invalid; nothing more is read */
	bool in_key;			/* the string being read is a member name */
	uint8_t top;			/* enum gw_jscan_type of the top value, once it started */
	bool top_done;			/* the top value is complete (whatever follows it) */
	uint8_t want;			/* enum gw_jscan_want of the current scalar */
	uint8_t literal;		/* which literal is being read */
	uint32_t quiet;			/* depth of a skipped container, or 0 */
	uint8_t utf8_left;		/* continuation bytes still due */
	uint8_t utf8_lo, utf8_hi;	/* range of the next continuation byte */
	uint16_t u_high;		/* pending high surrogate of a \u pair, or 0 */
	uint32_t u_value;		/* \uXXXX being read */
	uint64_t count;			/* decoded bytes of the current string */
	/* The current number, kept short: its first significant digits and
	 * where the decimal point falls, enough to tell whether it fits. */
	bool num_real, num_neg;
	bool num_sticky;		/* a nonzero digit past those kept */
	uint16_t num_sig_len;
	char num_sig[GW_JSCAN_SIG_MAX];
	int32_t num_point;		/* decimal exponent of the first significant digit */
	int32_t num_exp;		/* the exponent part, saturated */
	bool num_exp_neg;
	uint32_t num_int_digits;	/* digits before the point */
	uint16_t cap_len;
	bool cap_over;
	uint8_t key_len;
	bool key_over;
	char key[GW_JSCAN_KEY_MAX];	/* the member name for the next value */
	char cap[GW_JSCAN_CAPTURE_MAX];
	uint8_t kinds[GW_JSCAN_DEPTH_MAX / 8 + 1];	/* bit per open container: 1 object */
};

/* Prepare to scan one body. */
void gw_jscan_init(struct gw_jscan *s, const struct gw_jscan_ops *ops, void *ctx, uint32_t max_depth);

/* Scan the next bytes of the body.  Cheap to call with any split. */
void gw_jscan_feed(struct gw_jscan *s, const char *data, size_t len);

/* The body is complete: was it one valid JSON value?  Then s->top is its
 * type. */
bool gw_jscan_finish(struct gw_jscan *s);

#endif
