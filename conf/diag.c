/*
 * diag.c - the loader's error messages, from discovery to the caller.
 *
 * The loader reports every problem it finds and carries on, so that one run
 * shows the operator many mistakes instead of one per edit.  It finds them
 * section by section (pools before classes, whatever the file's order), but
 * they are handed over in line order, as a compiler would, so the operator
 * can fix them top to bottom.  Errors are therefore kept here, each with its
 * line and its discovery order, and sorted once at the end.
 *
 * Invariants: every report counts, even one that is not kept; at most
 * PENDING_MAX messages are kept, which bounds the memory a broken file can
 * cost; an allocation failure is reported once, as "out of memory", and
 * leaves `nomem` set so that the load ends in -ENOMEM rather than -EINVAL.
 *
 * Ownership: the pending array belongs to the struct conf__diags and is freed
 * by conf__diags_finish(); the caller's struct conf_diag is only written.
 */
#include "conf/diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Errors kept for sorting; past this a broken file is only counted. */
#define PENDING_MAX 1024

/* An error kept until the end of the load, when errors are sorted. */
struct conf__pending {
	size_t line;			/* 0: about the whole file */
	size_t seq;			/* discovery order, to keep the sort stable */
	char msg[sizeof ((struct conf_diag *)0)->msg[0]];
};

void conf__diags_init(struct conf__diags *d, const char *name, struct conf_diag *out)
{
	*d = (struct conf__diags){ .name = name, .out = out };
	if (out) {
		out->count = 0;
		out->msg[0][0] = '\0';
		out->nwarn = 0;
		out->warn[0][0] = '\0';
	}
}

void conf__diags_warn(struct conf__diags *d, size_t line, const char *fmt, ...)
{
	va_list ap;

	if (!d->out)
		return;
	/* Found in the order of the walk; kept in the order of the file
	 * (after those of the same line). */
	if (d->out->nwarn < CONF_DIAG_MAX) {
		size_t at = d->out->nwarn;

		while (at > 0 && d->warn_line[at - 1] > line)
			at--;
		memmove(&d->out->warn[at + 1], &d->out->warn[at], (d->out->nwarn - at) * sizeof d->out->warn[0]);
		memmove(&d->warn_line[at + 1], &d->warn_line[at], (d->out->nwarn - at) * sizeof d->warn_line[0]);
		d->warn_line[at] = line;

		char *m = d->out->warn[at];
		size_t size = sizeof d->out->warn[0];
		int n = snprintf(m, size, "%s:%zu: ", d->name, line);

		va_start(ap, fmt);
		if (n >= 0 && (size_t)n < size)
			vsnprintf(m + n, size - (size_t)n, fmt, ap);
		va_end(ap);
	}
	d->out->nwarn++;
}

void conf__diags_vadd(struct conf__diags *d, size_t line, const char *fmt, va_list ap)
{
	struct conf__pending *pe;
	size_t size = sizeof pe->msg;
	int n;

	d->nerr++;
	if (d->npend == d->pendcap) {
		size_t cap = d->pendcap ? d->pendcap * 2 : 16;

		if (cap > PENDING_MAX)
			return;
		if (!(pe = realloc(d->pend, cap * sizeof *pe))) {
			/* Counted, not kept; the caller still learns -ENOMEM. */
			d->nomem = true;
			return;
		}
		d->pend = pe;
		d->pendcap = cap;
	}
	pe = &d->pend[d->npend];
	pe->line = line;
	pe->seq = d->npend++;
	if (line)
		n = snprintf(pe->msg, size, "%s:%zu: ", d->name, line);
	else
		n = snprintf(pe->msg, size, "%s: ", d->name);
	if (n >= 0 && (size_t)n < size)
		vsnprintf(pe->msg + n, size - (size_t)n, fmt, ap);
}

void conf__diags_add(struct conf__diags *d, size_t line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf__diags_vadd(d, line, fmt, ap);
	va_end(ap);
}

void conf__diags_nomem(struct conf__diags *d)
{
	if (!d->nomem)
		conf__diags_add(d, 0, "out of memory");
	d->nomem = true;
}

static int pending_cmp(const void *a, const void *b)
{
	const struct conf__pending *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

void conf__diags_finish(struct conf__diags *d)
{
	size_t i;

	if (d->npend)
		qsort(d->pend, d->npend, sizeof *d->pend, pending_cmp);
	if (d->out) {
		d->out->count = d->nerr;
		for (i = 0; i < d->npend && i < CONF_DIAG_MAX; i++)
			memcpy(d->out->msg[i], d->pend[i].msg, sizeof d->out->msg[i]);
	}
	free(d->pend);
	d->pend = NULL;
	d->npend = d->pendcap = 0;
}

char *conf__diags_scratch(struct conf__diags *d)
{
	return d->show[d->nshow++ % CONF__SHOW_NBUF];
}

const char *conf__diags_quote(struct conf__diags *d, const char *s, size_t len)
{
	char *b = conf__diags_scratch(d);
	size_t max = CONF__SHOW_LEN - 4, i;

	for (i = 0; i < len && i < max; i++) {
		unsigned char ch = (unsigned char)s[i];
		b[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	if (i < len)
		memcpy(b + max - 3, "...", 3);
	b[i] = '\0';
	return b;
}
