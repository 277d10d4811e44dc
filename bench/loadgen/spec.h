/*
 * spec.h - what one loadgen stream sends, parsed from a --stream argument.
 *
 * A spec is a comma-separated list of field=value pairs, for example
 *
 *   name=chat,rate=10,arrival=poisson,class=interactive,key=sk-chat,stream=1
 *
 * (values cannot contain commas).  Exactly one of rate (open loop, requests
 * per second) and concurrency (closed loop, requests in flight) is required;
 * lg_stream_conf_parse() lists every field and its default in
 * LG_STREAM_FIELDS_HELP.  A parsed conf owns one copy of the spec string and
 * its fields point into it: lg_stream_conf_finish() frees it.
 */
#ifndef SLUICE_BENCH_LOADGEN_SPEC_H
#define SLUICE_BENCH_LOADGEN_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/loadgen/schedule.h"

#define LG_HEADERS_MAX 16
#define LG_CONCURRENCY_MAX 100000
#define LG_MAX_CONNS_DEFAULT 1000
#define LG_TOKENS_MAX 4194304	/* a 16 MiB prompt */

#define LG_STREAM_FIELDS_HELP \
	"  name=NAME            label in the table and the JSON (stream1, stream2, ...)\n" \
	"  rate=R               open loop: R requests/s, sent on schedule whatever the replies\n" \
	"  concurrency=N        closed loop instead: N requests in flight, each sent when\n" \
	"                       the previous one on its connection finished\n" \
	"  arrival=poisson|fixed  open-loop arrival process (poisson)\n" \
	"  target=HOST:PORT     this stream's server (the run's --target)\n" \
	"  path=PATH            request path (/v1/completions); a path ending in\n" \
	"                       /chat/completions gets a \"messages\" body\n" \
	"  key=KEY              sent as Authorization: Bearer KEY\n" \
	"  class=CLASS          sent as x-sluice-class: CLASS\n" \
	"  deadline_ms=MS       sent as x-sluice-deadline-ms: MS\n" \
	"  header=NAME:VALUE    extra request header (repeatable, up to 16)\n" \
	"  model=MODEL          body \"model\" field (none)\n" \
	"  prompt_tokens=N      prompt of 4N characters, and \"prompt_tokens\":N (16)\n" \
	"  max_tokens=N         body \"max_tokens\" (16); N-M: drawn per request\n" \
	"                       from up to 16 values spread evenly over N..M\n" \
	"  stream=0|1           ask for an SSE response (0)\n" \
	"  max_conns=N          open loop: connection cap; a request due while all\n" \
	"                       are busy opens one more, beyond the cap it is dropped (1000)\n"

/* Request variants a stream draws from (a max_tokens range). */
#define LG_VARIANTS_MAX 16

struct lg_header {
	const char *name;
	const char *value;
};

struct lg_stream_conf {
	char *spec;			/* owned copy of the spec, cut into the fields below */
	const char *name;		/* NULL: the caller names it */
	const char *target;		/* NULL: the run's --target */
	const char *path;
	const char *key;		/* NULL: no Authorization */
	const char *cls;		/* NULL: no x-sluice-class */
	const char *model;		/* NULL: no "model" field */
	struct lg_header headers[LG_HEADERS_MAX];
	unsigned nheaders;
	double rate;			/* > 0: open loop */
	unsigned concurrency;		/* > 0: closed loop */
	enum lg_arrival arrival;
	unsigned prompt_tokens;
	unsigned max_tokens;
	unsigned max_tokens_hi;		/* > max_tokens: drawn per request from the range */
	bool stream;
	long deadline_ms;		/* < 0: none */
	unsigned max_conns;
};

/*
 * Parse `spec` into `c` (which need not be initialised).  Returns 0, or
 * -EINVAL with a message naming the field in `err` (c owns nothing then),
 * or -ENOMEM.
 */
int lg_stream_conf_parse(struct lg_stream_conf *c, const char *spec, char *err, size_t errlen);

/* Free what a successful parse allocated; a zeroed conf is fine too. */
void lg_stream_conf_finish(struct lg_stream_conf *c);

/*
 * Split "HOST:PORT", "[V6]:PORT" or ":PORT" (host 127.0.0.1) into `host`
 * (NUL-terminated, `hostlen` bytes at most) and `port`.  Returns 0 or -EINVAL.
 */
int lg_target_split(const char *s, char *host, size_t hostlen, int *port);

/* Strict number parsers: the whole string must be the number.  0 or -EINVAL. */
int lg_parse_uint(const char *s, unsigned long max, unsigned long *out);
int lg_parse_double(const char *s, double *out);

#endif
