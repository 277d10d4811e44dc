/*
 * env.c - ${VAR} and ${VAR:-default} in a config's text; see env.h.
 *
 * One pass, line by line, appending to a growing buffer.  A line is read
 * with a small amount of YAML sense so that prose in comments is left
 * alone: a quote where a scalar starts opens a string until its close on
 * the same line, and a
 * '#' outside strings at the start of a line or after a blank starts a
 * comment.  Substitution happens inside quoted strings too, as in
 * docker-compose files, since that is where a URL or a token often sits.
 * Every problem is reported and the pass carries on, so one run shows
 * every unset variable.
 */
#include "conf/env.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct out {
	char *p;
	size_t len, cap;
	bool nomem;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->nomem || n == 0)
		return;
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (cap < o->len + n)
			cap *= 2;
		char *p = realloc(o->p, cap);
		if (!p) {
			o->nomem = true;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static bool name_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

/*
 * Expand the reference at text[i] == '$', text[i+1] == '{'; returns the
 * index just past it.  Names longer than this are refused: no environment
 * variable that a config means is that long.
 */
#define NAME_MAX_LEN 255

static size_t reference(struct conf__diags *d, struct out *o, const char *t, size_t i, size_t end,
			size_t line)
{
	size_t s = i + 2, e = s;
	while (e < end && name_char(t[e]))
		e++;
	size_t nlen = e - s;
	if (nlen == 0 || !name_start(t[s]) || nlen > NAME_MAX_LEN || e == end ||
	    (t[e] != '}' && !(t[e] == ':' && e + 1 < end && t[e + 1] == '-'))) {
		conf__diags_add(d, line, "bad variable reference '%s': write ${NAME} or ${NAME:-default}",
				conf__diags_quote(d, t + i, (e < end ? e + 1 : end) - i));
		return e < end ? e + 1 : end;
	}
	const char *def = NULL;
	size_t dlen = 0, close = e;
	if (t[e] == ':') {
		def = t + e + 2;
		close = e + 2;
		while (close < end && t[close] != '}')
			close++;
		if (close == end) {
			conf__diags_add(d, line, "bad variable reference '%s': no closing '}'",
					conf__diags_quote(d, t + i, end - i));
			return end;
		}
		dlen = (size_t)(t + close - def);
	}
	char name[NAME_MAX_LEN + 1];
	memcpy(name, t + s, nlen);
	name[nlen] = '\0';
	const char *v = getenv(name);
	if (def && (!v || !*v)) {
		put(o, def, dlen);
	} else if (!v) {
		conf__diags_add(d, line, "${%s} is not set", name);
	} else if (strpbrk(v, "\r\n")) {
		/* It would move every later line away from the line numbers that
		 * errors name. */
		conf__diags_add(d, line, "${%s} holds a line break, which a config value cannot", name);
	} else {
		put(o, v, strlen(v));
	}
	return close + 1;
}

int conf__env_expand(struct conf__diags *d, const char *text, size_t len, char **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	if (!memchr(text, '$', len))
		return 0;

	struct out o = { NULL, 0, 0, false };
	size_t nerr = d->nerr, line = 1, i = 0;
	while (i < len) {
		size_t eol = i;
		while (eol < len && text[eol] != '\n')
			eol++;
		char quote = 0;
		size_t run = i;	/* start of text not yet copied */
		for (size_t j = i; j < eol;) {
			char c = text[j];
			if (quote) {
				/* '' inside a single-quoted string is a quote, not the end. */
				if (c == quote && !(quote == '\'' && j + 1 < eol && text[j + 1] == '\''))
					quote = 0;
				else if (c == '\\' && quote == '"' && j + 1 < eol && text[j + 1] != '$')
					j++;
				else if (quote == '\'' && c == '\'')
					j++;
			} else if ((c == '\'' || c == '"') &&
				   (j == i || strchr(" \t[{,", text[j - 1]) != NULL)) {
				/* A quote opens a string only where a scalar starts:
				 * in a plain scalar such as don't it is a letter. */
				quote = c;
			} else if (c == '#' && (j == i || text[j - 1] == ' ' || text[j - 1] == '\t')) {
				break;	/* a comment: the rest of the line is copied as is */
			}
			if (c == '$' && j + 1 < eol && (text[j + 1] == '$' || text[j + 1] == '{')) {
				put(&o, text + run, j - run);
				if (text[j + 1] == '$') {
					put(&o, "$", 1);
					j += 2;
				} else {
					j = reference(d, &o, text, j, eol, line);
				}
				run = j;
				continue;
			}
			j++;
		}
		put(&o, text + run, eol - run);
		if (eol < len)
			put(&o, "\n", 1);
		i = eol + 1;
		line++;
	}
	if (o.nomem) {
		free(o.p);
		conf__diags_nomem(d);
		return -ENOMEM;
	}
	if (d->nerr != nerr) {
		free(o.p);
		return -EINVAL;
	}
	if (!o.p) {
		o.p = malloc(1);	/* everything expanded to nothing */
		if (!o.p) {
			conf__diags_nomem(d);
			return -ENOMEM;
		}
	}
	*out = o.p;
	*outlen = o.len;
	return 0;
}
