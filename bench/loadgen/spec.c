/*
 * spec.c - parse --stream field=value lists and HOST:PORT targets.
 *
 * The spec is copied once and cut in place: each ',' and the first '=' of a
 * pair become NULs, so every string field points into c->spec and the conf
 * owns exactly one allocation.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/loadgen/spec.h"

int lg_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int lg_parse_double(const char *s, double *out)
{
	if (s == NULL || *s == '\0')
		return -EINVAL;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v))
		return -EINVAL;
	*out = v;
	return 0;
}

int lg_target_split(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon, *h = s;
	size_t hlen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -EINVAL;
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen) != NULL)	/* bare IPv6 needs brackets */
			return -EINVAL;
	}
	unsigned long p;
	if (lg_parse_uint(colon + 1, 65535, &p) < 0 || p == 0)
		return -EINVAL;
	if (hlen == 0) {
		h = "127.0.0.1";
		hlen = strlen(h);
	}
	if (hlen >= hostlen)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (int)p;
	return 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Sets one field; returns 0 or -EINVAL with err set. */
static int set_field(struct lg_stream_conf *c, const char *k, const char *v, char *err,
		     size_t errlen)
{
	unsigned long u;
	if (strcmp(k, "name") == 0) {
		if (*v == '\0' || strlen(v) > 64)
			return fail(err, errlen, "name must be 1 to 64 characters");
		c->name = v;
	} else if (strcmp(k, "rate") == 0) {
		if (lg_parse_double(v, &c->rate) < 0 || !(c->rate > 0) || c->rate > 10e6)
			return fail(err, errlen, "rate must be a number of requests/s in (0, 1e7]");
	} else if (strcmp(k, "concurrency") == 0) {
		if (lg_parse_uint(v, LG_CONCURRENCY_MAX, &u) < 0 || u == 0)
			return fail(err, errlen, "concurrency must be an integer in 1..%d",
				    LG_CONCURRENCY_MAX);
		c->concurrency = (unsigned)u;
	} else if (strcmp(k, "arrival") == 0) {
		if (strcmp(v, "poisson") == 0)
			c->arrival = LG_ARRIVAL_POISSON;
		else if (strcmp(v, "fixed") == 0)
			c->arrival = LG_ARRIVAL_FIXED;
		else
			return fail(err, errlen, "arrival must be poisson or fixed");
	} else if (strcmp(k, "target") == 0) {
		char host[256];
		int port;
		if (lg_target_split(v, host, sizeof(host), &port) < 0)
			return fail(err, errlen, "target must be HOST:PORT");
		c->target = v;
	} else if (strcmp(k, "path") == 0) {
		if (v[0] != '/' || strpbrk(v, " \r\n") != NULL)
			return fail(err, errlen, "path must start with / and hold no spaces");
		c->path = v;
	} else if (strcmp(k, "key") == 0 || strcmp(k, "class") == 0 || strcmp(k, "model") == 0) {
		/* These go into a header field or a JSON string verbatim. */
		if (*v == '\0' || strpbrk(v, "\r\n\"\\") != NULL)
			return fail(err, errlen, "%s must be non-empty, without quotes or newlines", k);
		if (k[0] == 'k')
			c->key = v;
		else if (k[0] == 'c')
			c->cls = v;
		else
			c->model = v;
	} else if (strcmp(k, "header") == 0) {
		char *colon = strchr(v, ':');
		if (colon == NULL || colon == v || strpbrk(v, "\r\n") != NULL)
			return fail(err, errlen, "header must be NAME:VALUE");
		if (c->nheaders == LG_HEADERS_MAX)
			return fail(err, errlen, "at most %d header fields", LG_HEADERS_MAX);
		*colon = '\0';
		const char *value = colon + 1;
		while (*value == ' ')
			value++;
		c->headers[c->nheaders++] = (struct lg_header){.name = v, .value = value};
	} else if (strcmp(k, "max_tokens") == 0 && strchr(v, '-') != NULL) {
		char *dash = strchr(v, '-');
		unsigned long hi;
		*dash = '\0';
		if (lg_parse_uint(v, LG_TOKENS_MAX, &u) < 0 || u == 0 ||
		    lg_parse_uint(dash + 1, LG_TOKENS_MAX, &hi) < 0 || hi < u)
			return fail(err, errlen, "max_tokens must be N or N-M, integers in 1..%d, N <= M",
				    LG_TOKENS_MAX);
		c->max_tokens = (unsigned)u;
		c->max_tokens_hi = (unsigned)hi;
	} else if (strcmp(k, "prompt_tokens") == 0 || strcmp(k, "max_tokens") == 0) {
		if (lg_parse_uint(v, LG_TOKENS_MAX, &u) < 0 || u == 0)
			return fail(err, errlen, "%s must be an integer in 1..%d", k, LG_TOKENS_MAX);
		if (k[0] == 'p')
			c->prompt_tokens = (unsigned)u;
		else
			c->max_tokens = (unsigned)u, c->max_tokens_hi = 0;
	} else if (strcmp(k, "stream") == 0) {
		if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
			return fail(err, errlen, "stream must be 0 or 1");
		c->stream = v[0] == '1';
	} else if (strcmp(k, "deadline_ms") == 0) {
		if (lg_parse_uint(v, 86400000, &u) < 0)
			return fail(err, errlen, "deadline_ms must be an integer in 0..86400000");
		c->deadline_ms = (long)u;
	} else if (strcmp(k, "max_conns") == 0) {
		if (lg_parse_uint(v, 1000000, &u) < 0 || u == 0)
			return fail(err, errlen, "max_conns must be an integer in 1..1000000");
		c->max_conns = (unsigned)u;
	} else {
		return fail(err, errlen, "unknown field '%s'", k);
	}
	return 0;
}

int lg_stream_conf_parse(struct lg_stream_conf *c, const char *spec, char *err, size_t errlen)
{
	*c = (struct lg_stream_conf){
		.path = "/v1/completions",
		.arrival = LG_ARRIVAL_POISSON,
		.prompt_tokens = 16,
		.max_tokens = 16,
		.deadline_ms = -1,
		.max_conns = LG_MAX_CONNS_DEFAULT,
	};
	c->spec = strdup(spec);
	if (c->spec == NULL)
		return -ENOMEM;
	bool has_arrival = false, has_max_conns = false;
	char *save = NULL;
	for (char *pair = strtok_r(c->spec, ",", &save); pair != NULL;
	     pair = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(pair, '=');
		if (eq == NULL) {
			fail(err, errlen, "'%s' is not field=value", pair);
			goto bad;
		}
		*eq = '\0';
		has_arrival |= strcmp(pair, "arrival") == 0;
		has_max_conns |= strcmp(pair, "max_conns") == 0;
		char field_err[160];
		if (set_field(c, pair, eq + 1, field_err, sizeof(field_err)) < 0) {
			if (strncmp(field_err, "unknown field", 13) == 0)
				snprintf(err, errlen, "%s", field_err);
			else
				snprintf(err, errlen, "%s: %s", pair, field_err);
			goto bad;
		}
	}
	if ((c->rate > 0) == (c->concurrency > 0)) {
		fail(err, errlen, "give exactly one of rate=R (open loop) and concurrency=N (closed loop)");
		goto bad;
	}
	if (c->concurrency > 0 && (has_arrival || has_max_conns)) {
		fail(err, errlen, "%s applies to open-loop (rate=) streams only",
		     has_arrival ? "arrival" : "max_conns");
		goto bad;
	}
	return 0;
bad:
	free(c->spec);
	c->spec = NULL;
	return -EINVAL;
}

void lg_stream_conf_finish(struct lg_stream_conf *c)
{
	free(c->spec);
	c->spec = NULL;
}
