/*
 * node.c - reading libyaml's node tree the way the schema needs it.
 *
 * libyaml's document API turns the whole file into an array of nodes; every
 * node remembers where it started, which is how each error can name
 * FILE:LINE.  Scalars are byte strings with a length and may hold NUL bytes,
 * so nothing here treats them as C strings.
 *
 * Duplicate keys: YAML forbids them but libyaml keeps both, and a silently
 * ignored second `max_inflight:` is exactly the kind of mistake an operator
 * never finds.  conf__dups_check() makes one linear pass over the node array
 * rather than the tree, which visits each node once, so aliases can neither
 * loop nor multiply the work.  It sorts each mapping's keys to find the
 * repeats in O(n log n) (a tenants map can hold thousands of entries), then
 * keeps the repeated key nodes sorted by address so that the schema walk can
 * skip them with a binary search.
 *
 * Unknown keys are errors: a misspelt optional key would otherwise silently
 * keep its default.
 *
 * Ownership: every node belongs to the document; l->dups is allocated here
 * and freed by the caller of conf__dups_check().
 */
#include "conf/node.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

yaml_node_t *conf__node(struct conf__loader *l, int i)
{
	return yaml_document_get_node(l->doc, i);
}

yaml_node_t *conf__seq_item(struct conf__loader *l, const yaml_node_t *s, size_t i)
{
	return conf__node(l, s->data.sequence.items.start[i]);
}

bool conf__node_is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	size_t i;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
		if (conf__node_equals(n, nulls[i]))
			return true;
	return false;
}

bool conf__node_equals(const yaml_node_t *n, const char *s)
{
	size_t len = strlen(s);

	return conf__node_is(n, YAML_SCALAR_NODE) && n->data.scalar.length == len &&
	       memcmp(conf__node_text(n), s, len) == 0;
}

char *conf__node_dup(struct conf__loader *l, const yaml_node_t *n)
{
	char *s = strndup(conf__node_text(n), n->data.scalar.length);

	if (!s)
		conf__nomem(l);
	return s;
}

void *conf__calloc(struct conf__loader *l, size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		conf__nomem(l);
	return p;
}

void conf__err(struct conf__loader *l, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf__diags_vadd(&l->diags, conf__node_line(n), fmt, ap);
	va_end(ap);
}

void conf__nomem(struct conf__loader *l)
{
	conf__diags_nomem(&l->diags);
}

/* ---- pieces of messages ------------------------------------------------- */

const char *conf__show(struct conf__loader *l, const yaml_node_t *n)
{
	if (!n || n->type != YAML_SCALAR_NODE)
		return n && n->type == YAML_MAPPING_NODE ? "{...}" : "[...]";
	return conf__diags_quote(&l->diags, conf__node_text(n), n->data.scalar.length);
}

const char *conf__kind(struct conf__loader *l, const yaml_node_t *n)
{
	char *b;

	if (!n)
		return "nothing";
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (conf__node_is_null(n))
		return "an empty value";
	b = conf__diags_scratch(&l->diags);
	snprintf(b, CONF__SHOW_LEN, "'%s'", conf__show(l, n));
	return b;
}

const char *conf__label(struct conf__loader *l, const struct conf__field *f, const char *ctx)
{
	char *b;

	if (!ctx)
		return f->name;
	b = conf__diags_scratch(&l->diags);
	snprintf(b, CONF__SHOW_LEN, "%s in %s", f->name, ctx);
	return b;
}

/* ---- duplicate keys ----------------------------------------------------- */

/* One key of a mapping, sorted by text and then by line, so that the later
 * occurrence of a pair is the one reported, pointing back at the first. */
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

static bool keyline_same(const struct keyline *a, const struct keyline *b)
{
	return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

static int ptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(const void *const *)a, y = (uintptr_t)*(const void *const *)b;

	return (x > y) - (x < y);
}

/* The scalar keys of mapping m into kl (room for all of them); returns how
 * many.  A key of any other kind is reported and left out. */
static size_t map_keylines(struct conf__loader *l, const yaml_node_t *m, struct keyline *kl)
{
	yaml_node_pair_t *p;
	size_t n = 0;

	for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = conf__node(l, p->key);

		if (!conf__node_is(k, YAML_SCALAR_NODE)) {
			conf__err(l, k, "mapping keys must be plain strings, got %s", conf__kind(l, k));
			continue;
		}
		kl[n].s = conf__node_text(k);
		kl[n].len = k->data.scalar.length;
		kl[n].line = conf__node_line(k);
		kl[n].key = k;
		n++;
	}
	return n;
}

/* Report and remember the repeated keys of one mapping; false when out of
 * memory before anything could be checked. */
static bool map_dups_check(struct conf__loader *l, const yaml_node_t *m)
{
	struct keyline *kl = conf__calloc(l, conf__map_len(m), sizeof *kl);
	size_t n, i;

	if (!kl)
		return false;
	n = map_keylines(l, m, kl);
	qsort(kl, n, sizeof *kl, keyline_cmp);
	for (i = 1; i < n; i++) {
		const yaml_node_t **d;
		size_t first = i - 1;

		if (!keyline_same(&kl[i], &kl[first]))
			continue;
		while (first > 0 && keyline_same(&kl[first - 1], &kl[i]))
			first--;
		conf__diags_add(&l->diags, kl[i].line, "duplicate key '%s' (first at line %zu)",
				conf__diags_quote(&l->diags, kl[i].s, kl[i].len), kl[first].line);
		if (!(d = realloc(l->dups, (l->ndups + 1) * sizeof *d))) {
			conf__nomem(l);
			break;
		}
		l->dups = d;
		l->dups[l->ndups++] = kl[i].key;
	}
	free(kl);
	return true;
}

void conf__dups_check(struct conf__loader *l)
{
	yaml_node_t *m;

	for (m = l->doc->nodes.start; m < l->doc->nodes.top; m++)
		if (m->type == YAML_MAPPING_NODE && conf__map_len(m) != 0 && !map_dups_check(l, m))
			return;
	if (l->ndups)
		qsort(l->dups, l->ndups, sizeof *l->dups, ptr_cmp);
}

bool conf__is_dup(const struct conf__loader *l, const yaml_node_t *k)
{
	return l->ndups && bsearch(&k, l->dups, l->ndups, sizeof *l->dups, ptr_cmp);
}

/* ---- entries and fields ------------------------------------------------- */

bool conf__entry_next(struct conf__loader *l, const yaml_node_t *m, struct conf__entry *e)
{
	yaml_node_pair_t *p = e->next ? e->next : m->data.mapping.pairs.start;

	for (; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = conf__node(l, p->key);

		if (conf__node_is(k, YAML_SCALAR_NODE) && !conf__is_dup(l, k)) {
			e->key = k;
			e->val = conf__node(l, p->value);
			e->next = p + 1;
			return true;
		}
	}
	e->next = p;
	return false;
}

void conf__fields(struct conf__loader *l, const yaml_node_t *map, const char *ctx,
		  struct conf__field *f, size_t nf)
{
	struct conf__entry e = { 0 };

	while (conf__entry_next(l, map, &e)) {
		size_t i;

		for (i = 0; i < nf && !conf__node_equals(e.key, f[i].name); i++)
			;
		if (i == nf) {
			conf__err(l, e.key, "unknown key '%s' in %s", conf__show(l, e.key),
				  ctx ? ctx : "the top level");
			continue;
		}
		if (!f[i].key) {
			f[i].key = e.key;
			f[i].val = e.val;
		}
	}
}

yaml_node_t *conf__want(struct conf__loader *l, const struct conf__field *f, const char *ctx,
			yaml_node_type_t t)
{
	static const char *const names[] = {
		[YAML_SCALAR_NODE] = "a value",
		[YAML_SEQUENCE_NODE] = "a list",
		[YAML_MAPPING_NODE] = "a mapping",
	};

	if (conf__node_is(f->val, t) && !conf__node_is_null(f->val))
		return f->val;
	conf__err(l, f->val ? f->val : f->key, "%s: expected %s, got %s", conf__label(l, f, ctx),
		  names[t], conf__kind(l, f->val));
	return NULL;
}

yaml_node_t *conf__need(struct conf__loader *l, const struct conf__field *f, const char *ctx,
			const yaml_node_t *at, yaml_node_type_t t)
{
	if (!f->key) {
		if (ctx)
			conf__err(l, at, "missing required key '%s' in %s", f->name, ctx);
		else
			conf__err(l, at, "missing required key '%s'", f->name);
		return NULL;
	}
	return conf__want(l, f, ctx, t);
}

yaml_node_t *conf__section(struct conf__loader *l, const struct conf__field *f, const char *ctx,
			   yaml_node_type_t t)
{
	if (!f->key || conf__node_is_null(f->val))
		return NULL;
	return conf__want(l, f, ctx, t);
}
