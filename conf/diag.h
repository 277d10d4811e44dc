/*
 * diag.h - collecting the loader's "FILE:LINE: message" errors (internal to
 * conf/).
 *
 * A struct conf__diags lives for one conf_load() or conf_parse() call.  The
 * loader reports into it as it finds problems, in whatever order the schema
 * walk meets them; conf__diags_finish() sorts them by line and hands the
 * first CONF_DIAG_MAX to the caller's struct conf_diag.  Nothing here knows
 * about YAML: lines are plain numbers.
 */
#ifndef SLUICE_CONF_DIAG_H
#define SLUICE_CONF_DIAG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"

/* Quoted user text is cut to fit this, "..." included. */
#define CONF__SHOW_LEN 96
#define CONF__SHOW_NBUF 4

struct conf__pending;

struct conf__diags {
	const char *name;		/* file name as given, for messages; not owned */
	struct conf_diag *out;		/* the caller's; may be NULL */
	size_t nerr;			/* errors found, kept or not */
	bool nomem;			/* an allocation failed: the load ends in -ENOMEM */
	struct conf__pending *pend;	/* kept errors, unsorted until finish */
	size_t npend;
	size_t pendcap;
	char show[CONF__SHOW_NBUF][CONF__SHOW_LEN];	/* rotating buffers for message pieces */
	unsigned nshow;
	size_t warn_line[CONF_DIAG_MAX];	/* line of each of out->warn, which is kept sorted */
};

/*
 * Start collecting for file `name` (borrowed: it must outlive d).  Empties
 * `out` (count 0, first message "") when it is not NULL, so a caller sees no
 * stale messages whatever happens next.
 */
void conf__diags_init(struct conf__diags *d, const char *name, struct conf_diag *out);

/*
 * Record one error at `line` (1-based; 0 means the whole file, printed as
 * "FILE: message").  Always counted; the text is kept for the first 1024
 * errors and cut to the size of one conf_diag message.
 */
__attribute__((format(printf, 3, 4)))
void conf__diags_add(struct conf__diags *d, size_t line, const char *fmt, ...);
void conf__diags_vadd(struct conf__diags *d, size_t line, const char *fmt, va_list ap);

/* Record a warning at `line`: counted, and kept in the caller's
 * conf_diag (when there is one), in line order, up to CONF_DIAG_MAX (the
 * first found). Not an error. */
__attribute__((format(printf, 3, 4)))
void conf__diags_warn(struct conf__diags *d, size_t line, const char *fmt, ...);

/* Record that an allocation failed: one "out of memory" error, however
 * often it is called, and d->nomem set. */
void conf__diags_nomem(struct conf__diags *d);

/*
 * Sort the errors by line (ties keep the order they were found in), copy the
 * count and the first CONF_DIAG_MAX messages to `out`, and free what d
 * holds.  d may be reused only after conf__diags_init().
 */
void conf__diags_finish(struct conf__diags *d);

/*
 * Return a scratch buffer of CONF__SHOW_LEN bytes for building a piece of a
 * message.  The buffers rotate: a piece stays valid until CONF__SHOW_NBUF
 * more have been asked for, which is enough for every argument of one
 * message.
 */
char *conf__diags_scratch(struct conf__diags *d);

/*
 * Copy user text `s` (len bytes, need not be NUL-terminated) into a scratch
 * buffer fit for a message: control bytes become '?', since they would
 * garble a terminal, and text too long is cut and ends in "...".
 */
const char *conf__diags_quote(struct conf__diags *d, const char *s, size_t len);

#endif
