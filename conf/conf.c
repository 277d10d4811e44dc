/*
 * conf.c - from a YAML file to an immutable struct conf.
 *
 * Loading is three steps.  libyaml's document API first turns the whole file
 * into a node tree; every node remembers where it started, which is how each
 * error below can name FILE:LINE.  A syntax error stops there, with the
 * parser's own line.
 *
 * Second, one linear pass over every mapping in the document looks for
 * duplicate keys.  YAML forbids them but libyaml keeps both, and a silently
 * ignored second `max_inflight:` is exactly the kind of mistake an operator
 * never finds.  Walking the node array rather than the tree visits each node
 * once, so aliases can neither loop nor multiply the work.  Later
 * occurrences are then skipped by the schema walk.
 *
 * Third, the tree is walked against the schema: pools before classes (classes
 * name pools), classes before tenants (tenants name classes).  Every function
 * that finds a problem reports it and carries on with a harmless default, so
 * one run shows up to CONF_DIAG_MAX problems, sorted by line, instead of one
 * per edit.  Any
 * error at all means the half-built snapshot is destroyed and the caller gets
 * -EINVAL and the messages; a snapshot that reaches the caller is complete,
 * valid, and never written again.
 *
 * Ownership: the struct loader and the libyaml document live only for one
 * conf_parse() call.  Every string in the snapshot is copied out of the
 * document, so the snapshot owns all it points to and conf_destroy() frees it.
 *
 * API keys never pass through here, only their SHA-256; even so, a sha256
 * value that fails to parse is never echoed, because the usual mistake is
 * pasting the raw key itself.
 */
#include "conf/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

/* Pool and tenant names end up in metric labels, JSON bodies and response
 * headers; keeping them to a safe alphabet means no layer has to escape. */
#define NAME_MAX_LEN 64

/* A config is a few KiB; anything this large is a wrong path. */
#define FILE_MAX_BYTES (16u << 20)

/* Longest duration accepted (a year).  It keeps `now + timeout` far from
 * overflow anywhere it is computed, and no real timeout comes close. */
#define MS_MAX (366ull * 24 * 3600 * 1000)

/* Far above any inference server's batch size, yet small enough that a
 * typo cannot make the backends or queues size a table of billions. */
#define INFLIGHT_MAX (1u << 20)
#define QUEUE_MAX (1u << 24)

#define NSHOW 4

/* Errors kept for sorting; past this a broken file is only counted. */
#define PENDING_MAX 1024

/* The sha256 of one tenant key, remembered with where it came from so that
 * duplicates across tenants can be reported after all tenants are read. */
struct keyref {
	const uint8_t *sha256;
	size_t tenant;
	size_t line;
};

/* An error kept until the end of the load, when errors are sorted. */
struct pending {
	size_t line;			/* 0: about the whole file */
	size_t seq;			/* discovery order, to keep the sort stable */
	char msg[sizeof ((struct conf_diag *)0)->msg[0]];
};

struct loader {
	const char *name;		/* file name as given, for messages */
	struct conf_diag *diag;		/* may be NULL */
	size_t nerr;			/* errors found, kept or not */
	struct pending *pend;
	size_t npend;
	size_t pendcap;
	bool nomem;
	yaml_document_t *doc;
	struct conf *c;
	struct keyref *refs;
	size_t nrefs;
	size_t refcap;
	const yaml_node_t **dups;	/* key nodes that repeat an earlier key, sorted */
	size_t ndups;
	char show[NSHOW][96];		/* rotating buffers for quoting user text */
	unsigned nshow;
};

/* A key the schema knows, and what the mapping gave it (NULL when absent). */
struct field {
	const char *name;
	yaml_node_t *key;
	yaml_node_t *val;
};

enum unit { UNIT_NONE, UNIT_BYTES, UNIT_MS };

/* ---- reporting ---------------------------------------------------------- */

static void vreport(struct loader *l, size_t line, const char *fmt, va_list ap)
{
	struct pending *pe;
	size_t size = sizeof pe->msg;
	int n;

	l->nerr++;
	if (l->npend == l->pendcap) {
		size_t cap = l->pendcap ? l->pendcap * 2 : 16;

		if (cap > PENDING_MAX)
			return;
		if (!(pe = realloc(l->pend, cap * sizeof *pe))) {
			/* Counted, not kept; the caller still learns -ENOMEM. */
			l->nomem = true;
			return;
		}
		l->pend = pe;
		l->pendcap = cap;
	}
	pe = &l->pend[l->npend];
	pe->line = line;
	pe->seq = l->npend++;
	if (line)
		n = snprintf(pe->msg, size, "%s:%zu: ", l->name, line);
	else
		n = snprintf(pe->msg, size, "%s: ", l->name);
	if (n >= 0 && (size_t)n < size)
		vsnprintf(pe->msg + n, size - (size_t)n, fmt, ap);
}

static int pending_cmp(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Errors are found section by section (pools before classes, whatever the
 * file's order) but are handed over in line order, as a compiler would, so
 * the operator can fix them top to bottom. */
static void flush(struct loader *l)
{
	size_t i;

	if (l->npend)
		qsort(l->pend, l->npend, sizeof *l->pend, pending_cmp);
	if (l->diag) {
		l->diag->count = l->nerr;
		for (i = 0; i < l->npend && i < CONF_DIAG_MAX; i++)
			memcpy(l->diag->msg[i], l->pend[i].msg, sizeof l->diag->msg[i]);
	}
	free(l->pend);
	l->pend = NULL;
	l->npend = l->pendcap = 0;
}

__attribute__((format(printf, 3, 4)))
static void report(struct loader *l, size_t line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(l, line, fmt, ap);
	va_end(ap);
}

static size_t line_of(const yaml_node_t *n)
{
	return n ? n->start_mark.line + 1 : 1;
}

/* Report at a node's line; a NULL node means the top of the file. */
__attribute__((format(printf, 3, 4)))
static void err(struct loader *l, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(l, line_of(n), fmt, ap);
	va_end(ap);
}

static void nomem(struct loader *l)
{
	if (!l->nomem)
		report(l, 0, "out of memory");
	l->nomem = true;
}

static char *next_show(struct loader *l)
{
	return l->show[l->nshow++ % NSHOW];
}

/* Quote user text for a message: control bytes become '?' (they would
 * garble a terminal) and long values are cut. */
static const char *quote(struct loader *l, const char *s, size_t len)
{
	char *b = next_show(l);
	size_t max = sizeof l->show[0] - 4, i;

	for (i = 0; i < len && i < max; i++) {
		unsigned char ch = (unsigned char)s[i];
		b[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	if (i < len)
		memcpy(b + max - 3, "...", 3);
	b[i] = '\0';
	return b;
}

static const char *sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static const char *show(struct loader *l, const yaml_node_t *n)
{
	if (!n || n->type != YAML_SCALAR_NODE)
		return n && n->type == YAML_MAPPING_NODE ? "{...}" : "[...]";
	return quote(l, sval(n), n->data.scalar.length);
}

static bool is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	size_t i;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
		if (strlen(nulls[i]) == n->data.scalar.length &&
		    memcmp(nulls[i], sval(n), n->data.scalar.length) == 0)
			return true;
	return false;
}

/* What a node is, for "expected X, got Y". */
static const char *kind(struct loader *l, const yaml_node_t *n)
{
	char *b;

	if (!n)
		return "nothing";
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (is_null(n))
		return "an empty value";
	b = next_show(l);
	snprintf(b, sizeof l->show[0], "'%s'", show(l, n));
	return b;
}

/* "max_queue in class 'standard'", or just "listen" at the top level. */
static const char *label(struct loader *l, const struct field *f, const char *ctx)
{
	char *b;

	if (!ctx)
		return f->name;
	b = next_show(l);
	snprintf(b, sizeof l->show[0], "%s in %s", f->name, ctx);
	return b;
}

/* ---- nodes -------------------------------------------------------------- */

static yaml_node_t *node(struct loader *l, int i)
{
	return yaml_document_get_node(l->doc, i);
}

static bool is_type(const yaml_node_t *n, yaml_node_type_t t)
{
	return n && n->type == t;
}

static bool scalar_is(const yaml_node_t *n, const char *s)
{
	size_t len = strlen(s);

	return is_type(n, YAML_SCALAR_NODE) && n->data.scalar.length == len &&
	       memcmp(sval(n), s, len) == 0;
}

static size_t map_len(const yaml_node_t *m)
{
	return (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
}

static size_t seq_len(const yaml_node_t *s)
{
	return (size_t)(s->data.sequence.items.top - s->data.sequence.items.start);
}

static char *dup_scalar(struct loader *l, const yaml_node_t *n)
{
	char *s = strndup(sval(n), n->data.scalar.length);

	if (!s)
		nomem(l);
	return s;
}

/*
 * Sort each mapping's keys to find duplicates in O(n log n): a tenants map
 * can hold thousands of entries.  Ties sort by line so that the later
 * occurrence is the one reported, pointing back at the first.
 */
struct keyline {
	const char *s;
	size_t len;
	size_t line;
	const yaml_node_t *key;
};

static int keyline_cmp(const void *a, const void *b)
{
	const struct keyline *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = memcmp(x->s, y->s, n);

	if (r)
		return r;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return (x->line > y->line) - (x->line < y->line);
}

static int ptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(const void *const *)a, y = (uintptr_t)*(const void *const *)b;

	return (x > y) - (x < y);
}

static void check_duplicates(struct loader *l)
{
	yaml_node_t *m;

	for (m = l->doc->nodes.start; m < l->doc->nodes.top; m++) {
		struct keyline *kl;
		yaml_node_pair_t *p;
		size_t n = 0, i;

		if (m->type != YAML_MAPPING_NODE || map_len(m) == 0)
			continue;
		kl = calloc(map_len(m), sizeof *kl);
		if (!kl) {
			nomem(l);
			return;
		}
		for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
			yaml_node_t *k = node(l, p->key);

			if (!is_type(k, YAML_SCALAR_NODE)) {
				err(l, k, "mapping keys must be plain strings, got %s", kind(l, k));
				continue;
			}
			kl[n].s = sval(k);
			kl[n].len = k->data.scalar.length;
			kl[n].line = line_of(k);
			kl[n].key = k;
			n++;
		}
		qsort(kl, n, sizeof *kl, keyline_cmp);
		for (i = 1; i < n; i++) {
			const yaml_node_t **d;
			size_t first = i - 1;

			if (kl[i].len != kl[first].len || memcmp(kl[i].s, kl[first].s, kl[i].len) != 0)
				continue;
			while (first > 0 && kl[first - 1].len == kl[i].len &&
			       memcmp(kl[first - 1].s, kl[i].s, kl[i].len) == 0)
				first--;
			report(l, kl[i].line, "duplicate key '%s' (first at line %zu)",
			       quote(l, kl[i].s, kl[i].len), kl[first].line);
			if (!(d = realloc(l->dups, (l->ndups + 1) * sizeof *d))) {
				nomem(l);
				break;
			}
			l->dups = d;
			l->dups[l->ndups++] = kl[i].key;
		}
		free(kl);
	}
	if (l->ndups)
		qsort(l->dups, l->ndups, sizeof *l->dups, ptr_cmp);
}

/* Whether k repeats an earlier key of its mapping.  Such entries are skipped
 * entirely: the duplicate is already reported, and parsing it as well would
 * add errors about a copy the operator is about to delete. */
static bool is_dup(const struct loader *l, const yaml_node_t *k)
{
	return l->ndups && bsearch(&k, l->dups, l->ndups, sizeof *l->dups, ptr_cmp);
}

/*
 * Match a mapping's keys against the schema's.  Unknown keys are errors:
 * a misspelt optional key would otherwise silently keep its default.  Only
 * the first of duplicate keys is used; check_duplicates() reported the rest.
 */
static void fields(struct loader *l, const yaml_node_t *map, const char *ctx,
		   struct field *f, size_t nf)
{
	yaml_node_pair_t *p;

	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node(l, p->key);
		size_t i;

		if (!is_type(k, YAML_SCALAR_NODE) || is_dup(l, k))
			continue;
		for (i = 0; i < nf && !scalar_is(k, f[i].name); i++)
			;
		if (i == nf) {
			err(l, k, "unknown key '%s' in %s", show(l, k), ctx ? ctx : "the top level");
			continue;
		}
		if (!f[i].key) {
			f[i].key = k;
			f[i].val = node(l, p->value);
		}
	}
}

/* A value of type t, or NULL after reporting what was there instead. */
static yaml_node_t *want(struct loader *l, const struct field *f, const char *ctx,
			 yaml_node_type_t t)
{
	static const char *const names[] = {
		[YAML_SCALAR_NODE] = "a value",
		[YAML_SEQUENCE_NODE] = "a list",
		[YAML_MAPPING_NODE] = "a mapping",
	};

	if (is_type(f->val, t) && !is_null(f->val))
		return f->val;
	err(l, f->val ? f->val : f->key, "%s: expected %s, got %s", label(l, f, ctx),
	    names[t], kind(l, f->val));
	return NULL;
}

/* A required key: reports its absence at `at` (the line naming the owner). */
static yaml_node_t *need(struct loader *l, const struct field *f, const char *ctx,
			 const yaml_node_t *at, yaml_node_type_t t)
{
	if (!f->key) {
		if (ctx)
			err(l, at, "missing required key '%s' in %s", f->name, ctx);
		else
			err(l, at, "missing required key '%s'", f->name);
		return NULL;
	}
	return want(l, f, ctx, t);
}

/* An optional section: absent and empty (`tenants:`) both mean none, so an
 * operator can comment out every entry without deleting the heading. */
static yaml_node_t *section(struct loader *l, const struct field *f, const char *ctx,
			    yaml_node_type_t t)
{
	if (!f->key || is_null(f->val))
		return NULL;
	return want(l, f, ctx, t);
}

/* ---- values ------------------------------------------------------------- */

static bool scan_u64(const char *s, size_t len, size_t *pos, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = *pos;

	if (i >= len || s[i] < '0' || s[i] > '9')
		return false;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*pos = i;
	*out = v;
	return true;
}

struct suffix {
	const char *name;
	uint64_t mult;
};

/* Both decimal and binary units are common in operators' files; each means
 * what it says, and case is not significant ("64mib" is not ambiguous). */
static const struct suffix size_units[] = {
	{ "", 1 }, { "B", 1 },
	{ "KB", 1000ull }, { "MB", 1000ull * 1000 },
	{ "GB", 1000ull * 1000 * 1000 }, { "TB", 1000ull * 1000 * 1000 * 1000 },
	{ "KiB", 1ull << 10 }, { "MiB", 1ull << 20 }, { "GiB", 1ull << 30 },
	{ "TiB", 1ull << 40 },
	{ NULL, 0 },
};

static const struct suffix time_units[] = {
	{ "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 },
	{ "h", 3600 * 1000 },
	{ NULL, 0 },
};

static const struct suffix plain_units[] = {
	{ "", 1 },
	{ NULL, 0 },
};

static bool get_uint(struct loader *l, const struct field *f, const char *ctx,
		     enum unit unit, uint64_t min, uint64_t max, uint64_t *out)
{
	static const char *const what[] = {
		[UNIT_NONE] = "an integer",
		[UNIT_BYTES] = "a size in bytes (or e.g. 64MiB, 100KB)",
		[UNIT_MS] = "a duration in ms (or e.g. 250ms, 30s, 10m)",
	};
	static const struct suffix *const units[] = {
		[UNIT_NONE] = plain_units,
		[UNIT_BYTES] = size_units,
		[UNIT_MS] = time_units,
	};
	const struct suffix *u;
	const yaml_node_t *n;
	const char *s;
	size_t len, pos = 0;
	uint64_t v;

	if (!f->key)
		return true;
	if (!(n = want(l, f, ctx, YAML_SCALAR_NODE)))
		return false;
	s = sval(n);
	len = n->data.scalar.length;
	if (len && s[0] == '-') {
		err(l, n, "%s must not be negative, got '%s'", label(l, f, ctx), show(l, n));
		return false;
	}
	if (!scan_u64(s, len, &pos, &v))
		goto bad;
	while (pos < len && s[pos] == ' ')
		pos++;
	for (u = units[unit]; u->name; u++)
		if (strlen(u->name) == len - pos && strncasecmp(u->name, s + pos, len - pos) == 0)
			break;
	if (!u->name)
		goto bad;
	if (v > UINT64_MAX / u->mult) {
		err(l, n, "%s is too large: '%s'", label(l, f, ctx), show(l, n));
		return false;
	}
	v *= u->mult;
	if (v < min) {
		err(l, n, "%s must be at least %" PRIu64 ", got '%s'", label(l, f, ctx), min,
		    show(l, n));
		return false;
	}
	if (v > max) {
		err(l, n, "%s must be at most %" PRIu64 ", got '%s'", label(l, f, ctx), max,
		    show(l, n));
		return false;
	}
	*out = v;
	return true;
bad:
	err(l, n, "%s: expected %s, got '%s'", label(l, f, ctx), what[unit], show(l, n));
	return false;
}

static bool get_u32(struct loader *l, const struct field *f, const char *ctx,
		    enum unit unit, uint64_t min, uint64_t max, uint32_t *out)
{
	uint64_t v = *out;

	if (!get_uint(l, f, ctx, unit, min, max, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

/*
 * A real number in [lo, hi], or (lo, hi] when lo_open.  Only plain decimal
 * notation: strtod would also take "nan", "inf" and hex floats, none of
 * which an operator means.
 */
static bool get_num(struct loader *l, const struct field *f, const char *ctx,
		    double lo, bool lo_open, double hi, double *out)
{
	const yaml_node_t *n;
	const char *s;
	char *buf, *end;
	size_t len;
	double v;

	if (!f->key)
		return true;
	if (!(n = want(l, f, ctx, YAML_SCALAR_NODE)))
		return false;
	s = sval(n);
	len = n->data.scalar.length;
	if (len == 0 || strspn(s, "0123456789.eE+-") != len)
		goto bad;
	if (!(buf = strndup(s, len))) {
		nomem(l);
		return false;
	}
	errno = 0;
	v = strtod(buf, &end);
	if (end != buf + len || errno || !isfinite(v)) {
		free(buf);
		goto bad;
	}
	free(buf);
	if (v < lo || (lo_open && v == lo) || v > hi) {
		const char *lab = label(l, f, ctx);

		if (isfinite(hi))
			err(l, n, "%s must be %s %g and at most %g, got '%s'", lab,
			    lo_open ? "greater than" : "at least", lo, hi, show(l, n));
		else if (lo_open)
			err(l, n, "%s must be greater than %g, got '%s'", lab, lo, show(l, n));
		else if (lo == 0)
			err(l, n, "%s must not be negative, got '%s'", lab, show(l, n));
		else
			err(l, n, "%s must be at least %g, got '%s'", lab, lo, show(l, n));
		return false;
	}
	*out = v;
	return true;
bad:
	err(l, n, "%s: expected a number, got '%s'", label(l, f, ctx), show(l, n));
	return false;
}

static bool get_str(struct loader *l, const struct field *f, const char *ctx, char **out)
{
	const yaml_node_t *n;

	if (!f->key)
		return true;
	if (!(n = want(l, f, ctx, YAML_SCALAR_NODE)))
		return false;
	if (memchr(sval(n), '\0', n->data.scalar.length)) {
		err(l, n, "%s contains a NUL character", label(l, f, ctx));
		return false;
	}
	free(*out);
	*out = dup_scalar(l, n);
	return *out != NULL;
}

static bool get_class(struct loader *l, const struct field *f, const char *ctx,
		      enum conf_class *out)
{
	const yaml_node_t *n;

	if (!f->key)
		return true;
	if (!(n = want(l, f, ctx, YAML_SCALAR_NODE)))
		return false;
	if (conf_class_parse(sval(n), n->data.scalar.length, out) < 0) {
		err(l, n, "%s: unknown class '%s' (expected interactive, standard or opportunistic)",
		    label(l, f, ctx), show(l, n));
		return false;
	}
	return true;
}

static bool check_name(struct loader *l, const yaml_node_t *k, const char *what)
{
	size_t len = k->data.scalar.length;

	if (len >= 1 && len <= NAME_MAX_LEN &&
	    strspn(sval(k), "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == len)
		return true;
	err(l, k, "%s name '%s' may use only letters, digits, '_', '-' and '.' (1 to %d of them)",
	    what, show(l, k), NAME_MAX_LEN);
	return false;
}

/* ---- addresses ---------------------------------------------------------- */

/*
 * Resolve "IP:PORT", "[IPv6]:PORT" or "host:PORT" into a.  On failure
 * returns -EINVAL with the reason in `why`.  A hostname's IPv4 address is
 * preferred: sluice connects to exactly one address, and inference servers
 * started with --host 0.0.0.0 are not reachable on the ::1 that glibc lists
 * first for "localhost".
 */
static int addr_resolve(const char *text, size_t len, bool port0_ok,
			struct conf_addr *a, char *why, size_t whysz)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res, *ai, *pick;
	char host[256], port[8];
	const char *hs, *ps;
	size_t hlen, plen, pos = 0;
	uint64_t pv;
	int rc;

	if (len == 0 || memchr(text, '\0', len)) {
		snprintf(why, whysz, "expected HOST:PORT");
		return -EINVAL;
	}
	if (text[0] == '[') {
		const char *close = memchr(text, ']', len);

		if (!close || close + 1 == text + len || close[1] != ':') {
			snprintf(why, whysz, "expected [IPv6]:PORT");
			return -EINVAL;
		}
		hs = text + 1;
		hlen = (size_t)(close - hs);
		ps = close + 2;
		hints.ai_family = AF_INET6;
		hints.ai_flags |= AI_NUMERICHOST;
	} else {
		const char *colon = memrchr(text, ':', len);

		if (!colon) {
			snprintf(why, whysz, "no port (expected HOST:PORT)");
			return -EINVAL;
		}
		if (memchr(text, ':', (size_t)(colon - text))) {
			snprintf(why, whysz, "an IPv6 address needs brackets, as in [::1]:8080");
			return -EINVAL;
		}
		hs = text;
		hlen = (size_t)(colon - text);
		ps = colon + 1;
		hints.ai_family = AF_UNSPEC;
	}
	plen = (size_t)(text + len - ps);
	if (hlen == 0 || hlen >= sizeof host) {
		snprintf(why, whysz, "no host (expected HOST:PORT)");
		return -EINVAL;
	}
	if (!scan_u64(ps, plen, &pos, &pv) || pos != plen || plen > 5 || pv > 65535 ||
	    (pv == 0 && !port0_ok)) {
		snprintf(why, whysz, "port must be a number from %d to 65535", port0_ok ? 0 : 1);
		return -EINVAL;
	}
	memcpy(host, hs, hlen);
	host[hlen] = '\0';
	snprintf(port, sizeof port, "%u", (unsigned)pv);

	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		snprintf(why, whysz, "cannot resolve host: %s",
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -EINVAL;
	}
	pick = res;
	for (ai = res; ai; ai = ai->ai_next)
		if (ai->ai_family == AF_INET) {
			pick = ai;
			break;
		}
	if (pick->ai_addrlen > sizeof a->sa) {
		freeaddrinfo(res);
		snprintf(why, whysz, "unsupported address family");
		return -EINVAL;
	}
	memset(&a->sa, 0, sizeof a->sa);
	memcpy(&a->sa, pick->ai_addr, pick->ai_addrlen);
	a->salen = (socklen_t)pick->ai_addrlen;
	freeaddrinfo(res);

	free(a->text);
	if (!(a->text = strndup(text, len)))
		return -ENOMEM;
	return 0;
}

static bool get_addr(struct loader *l, const struct field *f, const char *ctx,
		     bool port0_ok, struct conf_addr *a)
{
	const yaml_node_t *n;
	char why[160];
	int rc;

	if (!f->key)
		return true;
	if (!(n = want(l, f, ctx, YAML_SCALAR_NODE)))
		return false;
	rc = addr_resolve(sval(n), n->data.scalar.length, port0_ok, a, why, sizeof why);
	if (rc == -ENOMEM)
		nomem(l);
	else if (rc)
		err(l, n, "%s: invalid address '%s': %s", label(l, f, ctx), show(l, n), why);
	return rc == 0;
}

static bool addr_same(const struct conf_addr *a, const struct conf_addr *b)
{
	if (a->sa.ss_family != b->sa.ss_family)
		return false;
	if (a->sa.ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)&a->sa, *y = (const void *)&b->sa;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)&a->sa, *y = (const void *)&b->sa;

		return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
	}
	return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

static bool addr_port_zero(const struct conf_addr *a)
{
	if (a->sa.ss_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)&a->sa)->sin_port == 0;
	if (a->sa.ss_family == AF_INET6)
		return ((const struct sockaddr_in6 *)(const void *)&a->sa)->sin6_port == 0;
	return false;
}

/* ---- sections ----------------------------------------------------------- */

static void parse_limits(struct loader *l, const struct field *sec)
{
	enum { BODY, HEADER_BYTES, HEADERS, QUEUED, CONNS, MAX_TOKENS, N };
	struct field f[N] = {
		[BODY] = { "max_body_bytes" },
		[HEADER_BYTES] = { "max_header_bytes" },
		[HEADERS] = { "max_headers" },
		[QUEUED] = { "max_queued_bytes" },
		[CONNS] = { "max_connections" },
		[MAX_TOKENS] = { "default_max_tokens" },
	};
	struct conf_limits *lim = &l->c->limits;
	const yaml_node_t *m = section(l, sec, NULL, YAML_MAPPING_NODE);

	if (!m)
		return;
	fields(l, m, "limits", f, N);
	get_uint(l, &f[BODY], "limits", UNIT_BYTES, 0, UINT64_MAX, &lim->max_body_bytes);
	/* Zero here would refuse every request or every connection. */
	get_u32(l, &f[HEADER_BYTES], "limits", UNIT_BYTES, 1, UINT32_MAX, &lim->max_header_bytes);
	get_u32(l, &f[HEADERS], "limits", UNIT_NONE, 1, UINT32_MAX, &lim->max_headers);
	get_uint(l, &f[QUEUED], "limits", UNIT_BYTES, 1, UINT64_MAX, &lim->max_queued_bytes);
	get_u32(l, &f[CONNS], "limits", UNIT_NONE, 1, UINT32_MAX, &lim->max_connections);
	get_u32(l, &f[MAX_TOKENS], "limits", UNIT_NONE, 0, UINT32_MAX, &lim->default_max_tokens);
}

static void parse_timeouts(struct loader *l, const struct field *sec)
{
	enum { HEADER, IDLE, BODY, CONNECT, UPSTREAM, UPSTREAM_IDLE, DRAIN, N };
	struct field f[N] = {
		[HEADER] = { "header_ms" },
		[IDLE] = { "idle_ms" },
		[BODY] = { "body_ms" },
		[CONNECT] = { "connect_ms" },
		[UPSTREAM] = { "upstream_ms" },
		[UPSTREAM_IDLE] = { "upstream_idle_ms" },
		[DRAIN] = { "drain_ms" },
	};
	struct conf_timeouts *t = &l->c->timeouts;
	const yaml_node_t *m = section(l, sec, NULL, YAML_MAPPING_NODE);

	if (!m)
		return;
	fields(l, m, "timeouts", f, N);
	/* A zero timer fires at once, so zero would fail every request; only
	 * the drain wait may be zero ("stop now"). */
	get_uint(l, &f[HEADER], "timeouts", UNIT_MS, 1, MS_MAX, &t->header_ms);
	get_uint(l, &f[IDLE], "timeouts", UNIT_MS, 1, MS_MAX, &t->idle_ms);
	get_uint(l, &f[BODY], "timeouts", UNIT_MS, 1, MS_MAX, &t->body_ms);
	get_uint(l, &f[CONNECT], "timeouts", UNIT_MS, 1, MS_MAX, &t->connect_ms);
	get_uint(l, &f[UPSTREAM], "timeouts", UNIT_MS, 1, MS_MAX, &t->upstream_ms);
	get_uint(l, &f[UPSTREAM_IDLE], "timeouts", UNIT_MS, 1, MS_MAX, &t->upstream_idle_ms);
	get_uint(l, &f[DRAIN], "timeouts", UNIT_MS, 0, MS_MAX, &t->drain_ms);
}

static void parse_gpu(struct loader *l, struct conf_pool *p, const struct field *sec,
		      const char *ctx)
{
	enum { MODEL, MIG, N };
	struct field f[N] = { [MODEL] = { "model" }, [MIG] = { "mig_profile" } };
	const yaml_node_t *m = section(l, sec, ctx, YAML_MAPPING_NODE);
	char gctx[NAME_MAX_LEN + 32];

	if (!m)
		return;
	snprintf(gctx, sizeof gctx, "gpu of %s", ctx);
	fields(l, m, gctx, f, N);
	get_str(l, &f[MODEL], gctx, &p->gpu_model);
	get_str(l, &f[MIG], gctx, &p->mig_profile);
}

static void parse_backend(struct loader *l, struct conf_pool *p, const yaml_node_t *item,
			  size_t idx)
{
	enum { ADDRESS, INFLIGHT, N };
	struct field f[N] = { [ADDRESS] = { "address" }, [INFLIGHT] = { "max_inflight" } };
	struct conf_backend *b = &p->backends[idx];
	char ctx[NAME_MAX_LEN + 48];
	uint64_t v = 0;
	size_t i;

	b->line = (int)line_of(item);
	snprintf(ctx, sizeof ctx, "backend %zu of pool '%s'", idx + 1, p->name);
	if (!is_type(item, YAML_MAPPING_NODE)) {
		err(l, item, "%s: expected a mapping with address and max_inflight, got %s", ctx,
		    kind(l, item));
		return;
	}
	fields(l, item, ctx, f, N);
	if (need(l, &f[ADDRESS], ctx, item, YAML_SCALAR_NODE) &&
	    get_addr(l, &f[ADDRESS], ctx, false, &b->addr)) {
		for (i = 0; i < idx; i++)
			if (p->backends[i].addr.text && addr_same(&p->backends[i].addr, &b->addr)) {
				err(l, f[ADDRESS].val,
				    "pool '%s' lists backend '%s' twice (first at line %d)",
				    p->name, show(l, f[ADDRESS].val), p->backends[i].line);
				break;
			}
	}
	if (need(l, &f[INFLIGHT], ctx, item, YAML_SCALAR_NODE) &&
	    get_uint(l, &f[INFLIGHT], ctx, UNIT_NONE, 1, INFLIGHT_MAX, &v))
		b->max_inflight = (unsigned)v;
}

static void parse_pool(struct loader *l, struct conf_pool *p, const yaml_node_t *k,
		       const yaml_node_t *v)
{
	enum { SLICE, GPU, BACKENDS, N };
	struct field f[N] = { [SLICE] = { "slice" }, [GPU] = { "gpu" }, [BACKENDS] = { "backends" } };
	char ctx[NAME_MAX_LEN + 16];
	const yaml_node_t *n;
	size_t i;

	snprintf(ctx, sizeof ctx, "pool '%s'", p->name);
	if (!is_type(v, YAML_MAPPING_NODE)) {
		err(l, v, "%s: expected a mapping, got %s", ctx, kind(l, v));
		return;
	}
	fields(l, v, ctx, f, N);

	if ((n = need(l, &f[SLICE], ctx, k, YAML_SCALAR_NODE))) {
		if (scalar_is(n, "reserved"))
			p->slice = CONF_SLICE_RESERVED;
		else if (scalar_is(n, "elastic"))
			p->slice = CONF_SLICE_ELASTIC;
		else
			err(l, n, "slice in %s must be reserved or elastic, got '%s'", ctx, show(l, n));
	}
	parse_gpu(l, p, &f[GPU], ctx);

	if (!(n = need(l, &f[BACKENDS], ctx, k, YAML_SEQUENCE_NODE)))
		return;
	if (seq_len(n) == 0) {
		err(l, n, "%s has no backends", ctx);
		return;
	}
	if (!(p->backends = calloc(seq_len(n), sizeof *p->backends))) {
		nomem(l);
		return;
	}
	p->nbackends = seq_len(n);
	for (i = 0; i < p->nbackends; i++)
		parse_backend(l, p, node(l, n->data.sequence.items.start[i]), i);
}

static void parse_pools(struct loader *l, const struct field *sec)
{
	struct conf *c = l->c;
	const yaml_node_t *m = need(l, sec, NULL, NULL, YAML_MAPPING_NODE);
	yaml_node_pair_t *pr;

	if (!m)
		return;
	if (map_len(m) == 0) {
		err(l, m, "pools must define at least one pool");
		return;
	}
	if (!(c->pools = calloc(map_len(m), sizeof *c->pools))) {
		nomem(l);
		return;
	}
	for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node(l, pr->key);
		struct conf_pool *p;

		if (!is_type(k, YAML_SCALAR_NODE) || is_dup(l, k))
			continue;
		/* Even a badly named pool is kept, so the classes that list it do
		 * not add "unknown pool" noise to the one real error. */
		check_name(l, k, "pool");
		p = &c->pools[c->npools];
		if (!(p->name = dup_scalar(l, k)))
			return;
		c->npools++;
		p->line = (int)line_of(k);
		/* Elastic until proven otherwise: a pool whose slice failed to
		 * parse must not also trip the opportunistic-reserved rule. */
		p->slice = CONF_SLICE_ELASTIC;
		parse_pool(l, p, k, node(l, pr->value));
	}
}

static void parse_class_pools(struct loader *l, struct conf_class_cfg *cc, enum conf_class cls,
			      const yaml_node_t *seq, const char *ctx)
{
	const struct conf *c = l->c;
	size_t i, j;

	if (seq_len(seq) == 0) {
		err(l, seq, "%s has no pools", ctx);
		return;
	}
	if (!(cc->pools = calloc(seq_len(seq), sizeof *cc->pools))) {
		nomem(l);
		return;
	}
	for (i = 0; i < seq_len(seq); i++) {
		const yaml_node_t *n = node(l, seq->data.sequence.items.start[i]);
		int pi = -1;

		if (!is_type(n, YAML_SCALAR_NODE) || is_null(n)) {
			err(l, n, "pools in %s: expected a pool name, got %s", ctx, kind(l, n));
			continue;
		}
		for (j = 0; j < c->npools; j++)
			if (scalar_is(n, c->pools[j].name)) {
				pi = (int)j;
				break;
			}
		if (pi < 0) {
			err(l, n, "%s lists unknown pool '%s'", ctx, show(l, n));
			continue;
		}
		for (j = 0; j < cc->npools && cc->pools[j] != (size_t)pi; j++)
			;
		if (j < cc->npools) {
			err(l, n, "%s lists pool '%s' twice", ctx, show(l, n));
			continue;
		}
		/* The promise at the heart of sluice: batch work never holds a
		 * reserved slice, so interactive work never waits behind it. */
		if (cls == CONF_CLASS_OPPORTUNISTIC && c->pools[pi].slice == CONF_SLICE_RESERVED) {
			err(l, n, "class 'opportunistic' may not use reserved pool '%s': "
				  "batch can never claim a reserved slice", show(l, n));
			continue;
		}
		cc->pools[cc->npools++] = (size_t)pi;
	}
}

static void parse_class(struct loader *l, enum conf_class cls, const yaml_node_t *k,
			const yaml_node_t *v)
{
	enum { MAX_QUEUE, MAX_QUEUE_BYTES, MAX_WAIT, POOLS, MIN_SHARE, MAX_SLOT_SHARE, N };
	struct field f[N] = {
		[MAX_QUEUE] = { "max_queue" },
		[MAX_QUEUE_BYTES] = { "max_queue_bytes" },
		[MAX_WAIT] = { "max_wait_ms" },
		[POOLS] = { "pools" },
		[MIN_SHARE] = { "min_share" },
		[MAX_SLOT_SHARE] = { "max_slot_share" },
	};
	struct conf_class_cfg *cc = &l->c->classes[cls];
	char ctx[32];
	const yaml_node_t *n;
	uint64_t q = 1024;

	cc->defined = true;
	cc->line = (int)line_of(k);
	cc->max_queue_bytes = 64ull << 20;
	cc->max_wait_ms = 30000;
	cc->min_share = 0;
	cc->max_slot_share = 1;
	snprintf(ctx, sizeof ctx, "class '%s'", conf_class_name(cls));
	if (!is_type(v, YAML_MAPPING_NODE)) {
		err(l, v, "%s: expected a mapping, got %s", ctx, kind(l, v));
		return;
	}
	fields(l, v, ctx, f, N);
	/* A queue of zero or a deadline of zero would turn every request of
	 * the class away; that is spelt "leave the class out". */
	if (get_uint(l, &f[MAX_QUEUE], ctx, UNIT_NONE, 1, QUEUE_MAX, &q))
		cc->max_queue = (unsigned)q;
	get_uint(l, &f[MAX_QUEUE_BYTES], ctx, UNIT_BYTES, 1, UINT64_MAX, &cc->max_queue_bytes);
	get_uint(l, &f[MAX_WAIT], ctx, UNIT_MS, 1, MS_MAX, &cc->max_wait_ms);
	get_num(l, &f[MIN_SHARE], ctx, 0, false, 1, &cc->min_share);
	get_num(l, &f[MAX_SLOT_SHARE], ctx, 0, true, 1, &cc->max_slot_share);
	if ((n = need(l, &f[POOLS], ctx, k, YAML_SEQUENCE_NODE)))
		parse_class_pools(l, cc, cls, n, ctx);
}

static void parse_classes(struct loader *l, const struct field *sec)
{
	const yaml_node_t *m = need(l, sec, NULL, NULL, YAML_MAPPING_NODE);
	yaml_node_pair_t *pr;
	if (!m)
		return;
	if (map_len(m) == 0) {
		err(l, m, "classes must define at least one class");
		return;
	}
	for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node(l, pr->key);
		enum conf_class cls;

		if (!is_type(k, YAML_SCALAR_NODE) || is_dup(l, k))
			continue;
		if (conf_class_parse(sval(k), k->data.scalar.length, &cls) < 0) {
			err(l, k, "unknown class '%s' (expected interactive, standard or opportunistic)",
			    show(l, k));
			continue;
		}
		if (l->c->classes[cls].defined)
			continue;	/* a duplicate that check_duplicates() could not record */
		parse_class(l, cls, k, node(l, pr->value));
	}
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static void add_keyref(struct loader *l, const uint8_t *sha, size_t tenant, size_t line)
{
	if (l->nrefs == l->refcap) {
		size_t cap = l->refcap ? l->refcap * 2 : 64;
		struct keyref *r = realloc(l->refs, cap * sizeof *r);

		if (!r) {
			nomem(l);
			return;
		}
		l->refs = r;
		l->refcap = cap;
	}
	l->refs[l->nrefs++] = (struct keyref){ sha, tenant, line };
}

static void parse_key(struct loader *l, struct conf_tenant *t, size_t ti,
		      const yaml_node_t *item, const char *ctx)
{
	struct field f[1] = { { .name = "sha256" } };
	struct conf_key *key = &t->keys[t->nkeys];
	const yaml_node_t *n;
	const char *s;
	size_t len, i;

	if (!is_type(item, YAML_MAPPING_NODE)) {
		/* Not echoed: a bare string here is most likely a raw API key. */
		err(l, item, "keys in %s: expected a mapping like { sha256: \"<64 hex digits>\" }",
		    ctx);
		return;
	}
	fields(l, item, ctx, f, 1);
	if (!(n = need(l, &f[0], ctx, item, YAML_SCALAR_NODE)))
		return;
	s = sval(n);
	len = n->data.scalar.length;
	if (len != 64) {
		err(l, n, "sha256 in %s must be 64 hex digits, got %zu characters%s", ctx, len,
		    len > 3 && memcmp(s, "sk-", 3) == 0 ?
		    " (this looks like the key itself; store the output of"
		    " `printf %s KEY | sha256sum`)" : "");
		return;
	}
	for (i = 0; i < 64; i++) {
		int hi = hexval(s[i]), lo;

		if (hi < 0 || (lo = hexval(s[i + 1])) < 0) {
			err(l, n, "sha256 in %s is not hexadecimal (character %zu)", ctx,
			    (hi < 0 ? i : i + 1) + 1);
			return;
		}
		key->sha256[i / 2] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	add_keyref(l, key->sha256, ti, line_of(n));
	t->nkeys++;
}

static void parse_tenant(struct loader *l, size_t ti, const yaml_node_t *k,
			 const yaml_node_t *v)
{
	enum { KEYS, DEFAULT_CLASS, MAX_CLASS, WEIGHT, RPS, BURST, TPM, N };
	struct field f[N] = {
		[KEYS] = { "keys" },
		[DEFAULT_CLASS] = { "default_class" },
		[MAX_CLASS] = { "max_class" },
		[WEIGHT] = { "weight" },
		[RPS] = { "requests_per_s" },
		[BURST] = { "burst" },
		[TPM] = { "tokens_per_min" },
	};
	struct conf_tenant *t = &l->c->tenants[ti];
	char ctx[NAME_MAX_LEN + 16];
	const yaml_node_t *n;
	bool dok, mok;
	size_t i;

	snprintf(ctx, sizeof ctx, "tenant '%s'", t->name);
	t->default_class = CONF_CLASS_STANDARD;
	t->weight = 1;
	if (!is_type(v, YAML_MAPPING_NODE)) {
		err(l, v, "%s: expected a mapping, got %s", ctx, kind(l, v));
		return;
	}
	fields(l, v, ctx, f, N);

	/* A tenant without keys is legal: it can still be the anonymous one. */
	if ((n = section(l, &f[KEYS], ctx, YAML_SEQUENCE_NODE)) && seq_len(n)) {
		if (!(t->keys = calloc(seq_len(n), sizeof *t->keys))) {
			nomem(l);
			return;
		}
		for (i = 0; i < seq_len(n); i++)
			parse_key(l, t, ti, node(l, n->data.sequence.items.start[i]), ctx);
	}

	dok = get_class(l, &f[DEFAULT_CLASS], ctx, &t->default_class);
	t->max_class = t->default_class;
	mok = get_class(l, &f[MAX_CLASS], ctx, &t->max_class);
	if (dok && mok && t->default_class < t->max_class)
		err(l, f[DEFAULT_CLASS].key ? f[DEFAULT_CLASS].val : f[MAX_CLASS].val,
		    "%s: default_class '%s' is above its max_class '%s'", ctx,
		    conf_class_name(t->default_class), conf_class_name(t->max_class));
	else if (dok && !l->c->classes[t->default_class].defined)
		err(l, f[DEFAULT_CLASS].key ? f[DEFAULT_CLASS].val : k,
		    "%s: default_class '%s' is not defined under classes", ctx,
		    conf_class_name(t->default_class));

	get_num(l, &f[WEIGHT], ctx, 0, true, INFINITY, &t->weight);
	get_num(l, &f[RPS], ctx, 0, false, INFINITY, &t->requests_per_s);
	t->burst = t->requests_per_s > 1 ? t->requests_per_s : 1;
	/* A bucket shallower than one request could never admit anything. */
	get_num(l, &f[BURST], ctx, 1, false, INFINITY, &t->burst);
	get_num(l, &f[TPM], ctx, 0, false, INFINITY, &t->tokens_per_min);
}

static int keyref_cmp(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	int r = memcmp(x->sha256, y->sha256, 32);

	if (r)
		return r;
	return (x->line > y->line) - (x->line < y->line);
}

/* One key must identify one tenant, or accounting and limits would go to
 * whichever tenant happened to be found first. */
static void check_key_duplicates(struct loader *l)
{
	const struct conf_tenant *ts = l->c->tenants;
	size_t i;

	if (l->nrefs)
		qsort(l->refs, l->nrefs, sizeof *l->refs, keyref_cmp);
	for (i = 1; i < l->nrefs; i++) {
		const struct keyref *a = &l->refs[i - 1], *b = &l->refs[i];
		char hex[13];
		size_t j;

		if (memcmp(a->sha256, b->sha256, 32) != 0)
			continue;
		for (j = 0; j < 6; j++)
			snprintf(hex + 2 * j, 3, "%02x", b->sha256[j]);
		if (a->tenant == b->tenant)
			report(l, b->line, "tenant '%s' lists key %s... twice (first at line %zu)",
			       ts[b->tenant].name, hex, a->line);
		else
			report(l, b->line,
			       "duplicate key %s... in tenant '%s': already used by tenant '%s' at line %zu",
			       hex, ts[b->tenant].name, ts[a->tenant].name, a->line);
	}
}

static void parse_tenants(struct loader *l, const struct field *sec)
{
	struct conf *c = l->c;
	const yaml_node_t *m = section(l, sec, NULL, YAML_MAPPING_NODE);
	yaml_node_pair_t *pr;

	if (!m || map_len(m) == 0)
		return;
	if (!(c->tenants = calloc(map_len(m), sizeof *c->tenants))) {
		nomem(l);
		return;
	}
	for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node(l, pr->key);
		struct conf_tenant *t;

		if (!is_type(k, YAML_SCALAR_NODE) || is_dup(l, k))
			continue;
		check_name(l, k, "tenant");
		t = &c->tenants[c->ntenants];
		if (!(t->name = dup_scalar(l, k)))
			return;
		c->ntenants++;
		t->line = (int)line_of(k);
		parse_tenant(l, c->ntenants - 1, k, node(l, pr->value));
	}
	check_key_duplicates(l);
}

static void parse_anonymous(struct loader *l, const struct field *f)
{
	struct conf *c = l->c;
	const yaml_node_t *n;
	size_t i;

	if (!f->key || !(n = want(l, f, NULL, YAML_SCALAR_NODE)))
		return;
	for (i = 0; i < c->ntenants; i++)
		if (scalar_is(n, c->tenants[i].name))
			break;
	if (i == c->ntenants) {
		err(l, n, "anonymous_tenant names unknown tenant '%s'", show(l, n));
		return;
	}
	if (!(c->anonymous_tenant = strdup(c->tenants[i].name)))
		nomem(l);
}

static void set_defaults(struct loader *l)
{
	struct conf *c = l->c;
	char why[160];
	const char *admin = "127.0.0.1:9090";

	c->limits = (struct conf_limits){
		.max_body_bytes = 8ull << 20,
		.max_header_bytes = 16u << 10,
		.max_headers = 100,
		.max_queued_bytes = 256ull << 20,
		.max_connections = 100000,
		.default_max_tokens = 256,
	};
	/* Log-spaced from 1 ms to 10 min: interactive TTFB at the low end,
	 * batch generations at the high end. */
	static const double buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
					  1, 2.5, 5, 10, 25, 60, 120, 300, 600 };
	c->metrics.histograms = true;
	c->metrics.nbuckets = sizeof(buckets) / sizeof(buckets[0]);
	memcpy(c->metrics.buckets, buckets, sizeof(buckets));
	c->timeouts = (struct conf_timeouts){
		.header_ms = 10000,
		.idle_ms = 60000,
		.body_ms = 30000,
		.connect_ms = 2000,
		.upstream_ms = 300000,
		.upstream_idle_ms = 60000,
		.drain_ms = 30000,
	};
	if (addr_resolve(admin, strlen(admin), true, &c->admin_listen, why, sizeof why) < 0)
		nomem(l);	/* a numeric address only fails to be copied */
}

static bool get_bool(struct loader *l, const struct field *f, const char *ctx, bool *out)
{
	const yaml_node_t *n;

	if (!f->key)
		return true;
	if (!(n = want(l, f, ctx, YAML_SCALAR_NODE)))
		return false;
	if (n->data.scalar.length == 4 && memcmp(sval(n), "true", 4) == 0)
		*out = true;
	else if (n->data.scalar.length == 5 && memcmp(sval(n), "false", 5) == 0)
		*out = false;
	else {
		err(l, n, "%s: expected true or false, got '%s'", label(l, f, ctx), show(l, n));
		return false;
	}
	return true;
}

static void parse_metrics(struct loader *l, const struct field *sec)
{
	enum { HISTOGRAMS, TENANT_HISTOGRAMS, BUCKETS, N };
	struct field f[N] = {
		[HISTOGRAMS] = { "histograms" },
		[TENANT_HISTOGRAMS] = { "tenant_histograms" },
		[BUCKETS] = { "buckets" },
	};
	struct conf_metrics *m = &l->c->metrics;
	const yaml_node_t *map = section(l, sec, NULL, YAML_MAPPING_NODE);
	const yaml_node_t *seq;

	if (!map)
		return;
	fields(l, map, "metrics", f, N);
	get_bool(l, &f[HISTOGRAMS], "metrics", &m->histograms);
	get_bool(l, &f[TENANT_HISTOGRAMS], "metrics", &m->tenant_histograms);
	if (!f[BUCKETS].key || !(seq = want(l, &f[BUCKETS], "metrics", YAML_SEQUENCE_NODE)))
		return;
	size_t n = 0;
	for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
		struct field item = { "bucket", f[BUCKETS].key, node(l, *it) };
		double v;

		if (n == CONF_BUCKETS_MAX) {
			err(l, item.val, "metrics: at most %d buckets", CONF_BUCKETS_MAX);
			return;
		}
		if (!get_num(l, &item, "metrics.buckets", 0, true, 86400, &v))
			return;
		/* Prometheus needs strictly ascending `le` bounds. */
		if (n > 0 && v <= m->buckets[n - 1]) {
			err(l, item.val, "metrics.buckets must be ascending: %g after %g", v, m->buckets[n - 1]);
			return;
		}
		m->buckets[n++] = v;
	}
	if (n == 0) {
		err(l, f[BUCKETS].val, "metrics.buckets: expected at least one bound");
		return;
	}
	m->nbuckets = n;
}

static void parse_access_log(struct loader *l, const struct field *f)
{
	struct conf *c = l->c;

	if (!get_str(l, f, NULL, &c->access_log))
		return;
	if (c->access_log != NULL && (strcmp(c->access_log, "off") == 0 || c->access_log[0] == '\0')) {
		free(c->access_log);
		c->access_log = NULL;
	}
}

static void parse_root(struct loader *l, const yaml_node_t *root)
{
	enum { LISTEN, ADMIN, LIMITS, TIMEOUTS, CLASSES, POOLS, TENANTS, ANON, METRICS, ACCESS_LOG, N };
	struct field f[N] = {
		[LISTEN] = { "listen" },
		[ADMIN] = { "admin_listen" },
		[LIMITS] = { "limits" },
		[TIMEOUTS] = { "timeouts" },
		[CLASSES] = { "classes" },
		[POOLS] = { "pools" },
		[TENANTS] = { "tenants" },
		[ANON] = { "anonymous_tenant" },
		[METRICS] = { "metrics" },
		[ACCESS_LOG] = { "access_log" },
	};
	struct conf *c = l->c;
	bool lok = false, aok;

	set_defaults(l);
	if (!is_type(root, YAML_MAPPING_NODE)) {
		err(l, root, "expected a mapping at the top level, got %s", kind(l, root));
		return;
	}
	fields(l, root, NULL, f, N);
	if (need(l, &f[LISTEN], NULL, NULL, YAML_SCALAR_NODE))
		lok = get_addr(l, &f[LISTEN], NULL, true, &c->listen);
	aok = get_addr(l, &f[ADMIN], NULL, true, &c->admin_listen);
	/* Caught here rather than as a bind error at start-up, or worse, after a
	 * reload. */
	if (lok && aok && !addr_port_zero(&c->listen) && addr_same(&c->listen, &c->admin_listen))
		err(l, f[ADMIN].key ? f[ADMIN].val : f[LISTEN].val,
		    "admin_listen must differ from listen (both are %s)", c->listen.text);
	parse_limits(l, &f[LIMITS]);
	parse_timeouts(l, &f[TIMEOUTS]);
	parse_pools(l, &f[POOLS]);
	parse_classes(l, &f[CLASSES]);
	parse_tenants(l, &f[TENANTS]);
	parse_anonymous(l, &f[ANON]);
	parse_metrics(l, &f[METRICS]);
	parse_access_log(l, &f[ACCESS_LOG]);
}

/* ---- entry points ------------------------------------------------------- */

static void syntax_error(struct loader *l, const yaml_parser_t *p, const char *text, size_t len)
{
	size_t line, i;

	if (p->error == YAML_MEMORY_ERROR) {
		nomem(l);
		return;
	}
	if (p->error == YAML_READER_ERROR) {
		/* Reader errors (bad encoding) carry an offset, not a mark. */
		for (i = 0, line = 1; i < p->problem_offset && i < len; i++)
			line += text[i] == '\n';
	} else {
		line = p->problem_mark.line + 1;
	}
	if (p->context)
		report(l, line, "YAML syntax error: %s (%s at line %zu)",
		       p->problem ? p->problem : "unknown problem", p->context,
		       p->context_mark.line + 1);
	else
		report(l, line, "YAML syntax error: %s",
		       p->problem ? p->problem : "unknown problem");
}

static int parse_text(struct loader *l, const char *text, size_t len, struct conf **out)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	yaml_node_t *root;
	struct conf *c;

	if (!yaml_parser_initialize(&parser)) {
		nomem(l);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		syntax_error(l, &parser, text, len);
		yaml_parser_delete(&parser);
		return l->nomem ? -ENOMEM : -EINVAL;
	}
	l->doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (!root) {
		report(l, 1, "the configuration is empty");
	} else if (!yaml_parser_load(&parser, &extra)) {
		syntax_error(l, &parser, text, len);
	} else {
		yaml_node_t *r2 = yaml_document_get_root_node(&extra);

		/* A second document would be silently ignored, which is never
		 * what the person who wrote it meant. */
		if (r2)
			err(l, r2, "only one YAML document is allowed per file");
		yaml_document_delete(&extra);
	}
	yaml_parser_delete(&parser);

	c = calloc(1, sizeof *c);
	if (!c || !(c->path = strdup(l->name))) {
		free(c);
		yaml_document_delete(&doc);
		nomem(l);
		return -ENOMEM;
	}
	l->c = c;
	if (root && l->nerr == 0) {
		check_duplicates(l);
		parse_root(l, root);
	}
	yaml_document_delete(&doc);
	free(l->refs);
	l->refs = NULL;
	free(l->dups);
	l->dups = NULL;
	if (l->nerr) {
		conf_destroy(c);
		return l->nomem ? -ENOMEM : -EINVAL;
	}
	*out = c;
	return 0;
}

static void diag_reset(struct conf_diag *diag)
{
	if (diag) {
		diag->count = 0;
		diag->msg[0][0] = '\0';
	}
}

int conf_parse(const char *name, const char *text, size_t len,
	       struct conf **out, struct conf_diag *diag)
{
	struct loader l = { .name = name ? name : "<config>", .diag = diag };

	int rc;

	diag_reset(diag);
	*out = NULL;
	if (!text && len) {
		report(&l, 0, "no text to parse");
		rc = -EINVAL;
	} else {
		rc = parse_text(&l, text ? text : "", len, out);
	}
	flush(&l);
	return rc;
}

/* The whole file in one malloc'd buffer; 0 or a negative errno. */
static int read_file(const char *path, char **buf, size_t *len)
{
	size_t cap = 0, n = 0;
	char *b = NULL;
	struct stat st;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -errno;
		goto out;
	}
	/* Read until EOF rather than trusting st_size, so a pipe or
	 * /dev/stdin works too. */
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *nb;

			if (cap >= FILE_MAX_BYTES) {
				rc = -EFBIG;
				goto out;
			}
			cap = cap ? cap * 2 : 8192;
			if (!(nb = realloc(b, cap))) {
				rc = -ENOMEM;
				goto out;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
out:
	close(fd);
	if (rc) {
		free(b);
		return rc;
	}
	*buf = b;
	*len = n;
	return 0;
}

int conf_load(const char *path, struct conf **out, struct conf_diag *diag)
{
	struct loader l = { .name = path, .diag = diag };
	char *buf = NULL;
	size_t len = 0;
	int rc;

	diag_reset(diag);
	*out = NULL;
	rc = read_file(path, &buf, &len);
	if (rc) {
		report(&l, 0, "cannot read: %s", strerror(-rc));
		flush(&l);
		return rc;
	}
	rc = conf_parse(path, buf, len, out, diag);
	free(buf);
	return rc;
}

void conf_destroy(struct conf *c)
{
	size_t i, j;

	if (!c)
		return;
	for (i = 0; i < c->npools; i++) {
		struct conf_pool *p = &c->pools[i];

		for (j = 0; j < p->nbackends; j++)
			free(p->backends[j].addr.text);
		free(p->backends);
		free(p->name);
		free(p->gpu_model);
		free(p->mig_profile);
	}
	free(c->pools);
	for (i = 0; i < CONF_CLASS_COUNT; i++)
		free(c->classes[i].pools);
	for (i = 0; i < c->ntenants; i++) {
		free(c->tenants[i].name);
		free(c->tenants[i].keys);
	}
	free(c->tenants);
	free(c->anonymous_tenant);
	free(c->access_log);
	free(c->listen.text);
	free(c->admin_listen.text);
	free(c->path);
	free(c);
}

static const char *const class_names[CONF_CLASS_COUNT] = {
	[CONF_CLASS_INTERACTIVE] = "interactive",
	[CONF_CLASS_STANDARD] = "standard",
	[CONF_CLASS_OPPORTUNISTIC] = "opportunistic",
};

const char *conf_class_name(enum conf_class c)
{
	if ((unsigned)c >= CONF_CLASS_COUNT)
		return "invalid";
	return class_names[c];
}

int conf_class_parse(const char *s, size_t len, enum conf_class *out)
{
	unsigned i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < CONF_CLASS_COUNT; i++)
		if (strlen(class_names[i]) == len && memcmp(class_names[i], s, len) == 0) {
			*out = (enum conf_class)i;
			return 0;
		}
	return -EINVAL;
}

int conf_pool_find(const struct conf *c, const char *name)
{
	size_t i;

	if (!c || !name)
		return -1;
	for (i = 0; i < c->npools; i++)
		if (strcmp(c->pools[i].name, name) == 0)
			return (int)i;
	return -1;
}
