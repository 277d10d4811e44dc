/*
 * node.h - reading a libyaml document against a schema (internal to conf/).
 *
 * The loader state of one conf_parse() call, the accessors for libyaml's
 * nodes, the duplicate-key check, and the matching of a mapping's keys
 * against the names a schema expects.  Every function that finds a problem
 * reports it through the loader's diagnostics at the offending node's line
 * and returns something harmless, so that the caller can carry on.
 */
#ifndef SLUICE_CONF_NODE_H
#define SLUICE_CONF_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

#include "conf/conf.h"
#include "conf/diag.h"

/* The state of one load; lives on conf_parse()'s stack. */
struct conf__loader {
	struct conf__diags diags;
	yaml_document_t *doc;		/* borrowed for the call */
	const yaml_node_t **dups;	/* key nodes that repeat an earlier key, sorted */
	size_t ndups;
	struct conf *c;			/* the snapshot being built; owned by the caller */
};

/* A key the schema knows, and what the mapping gave it (NULL when absent).
 * Both nodes are borrowed from the document. */
struct conf__field {
	const char *name;
	yaml_node_t *key;
	yaml_node_t *val;
};

/* A scalar's bytes: `length` of them, not necessarily NUL-free. */
static inline const char *conf__node_text(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* The 1-based line a node starts on; a NULL node means the top of the file. */
static inline size_t conf__node_line(const yaml_node_t *n)
{
	return n ? n->start_mark.line + 1 : 1;
}

/* Whether n exists and is of type t. */
static inline bool conf__node_is(const yaml_node_t *n, yaml_node_type_t t)
{
	return n && n->type == t;
}

static inline size_t conf__map_len(const yaml_node_t *m)
{
	return (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
}

static inline size_t conf__seq_len(const yaml_node_t *s)
{
	return (size_t)(s->data.sequence.items.top - s->data.sequence.items.start);
}

/* The node with libyaml index i (as found in pairs and items), or NULL. */
yaml_node_t *conf__node(struct conf__loader *l, int i);

/* Item i (< conf__seq_len(s)) of sequence s. */
yaml_node_t *conf__seq_item(struct conf__loader *l, const yaml_node_t *s, size_t i);

/* Whether n is a plain scalar that YAML reads as null: "", "~", "null"... */
bool conf__node_is_null(const yaml_node_t *n);

/* Whether n is a scalar whose text is exactly s. */
bool conf__node_equals(const yaml_node_t *n, const char *s);

/* A malloc'd, NUL-terminated copy of scalar n (the caller frees it), or
 * NULL after reporting "out of memory". */
char *conf__node_dup(struct conf__loader *l, const yaml_node_t *n);

/* calloc(n, size), or NULL after reporting "out of memory". */
void *conf__calloc(struct conf__loader *l, size_t n, size_t size);

/* Report an error at n's line (the top of the file when n is NULL). */
__attribute__((format(printf, 3, 4)))
void conf__err(struct conf__loader *l, const yaml_node_t *n, const char *fmt, ...);

/* Report that an allocation failed (once per load). */
void conf__nomem(struct conf__loader *l);

/*
 * Pieces of messages.  Each returns text in one of the diagnostics' rotating
 * scratch buffers (see conf__diags_scratch()) or a string literal.
 *   conf__show:  a scalar's text, quoted safely; "{...}" or "[...]" otherwise.
 *   conf__kind:  what n is, for "expected X, got Y": "a mapping", "a list",
 *                "an empty value", "nothing" (NULL) or the quoted scalar.
 *   conf__label: "max_queue in class 'standard'", or just the field's name
 *                when ctx is NULL (the top level).
 */
const char *conf__show(struct conf__loader *l, const yaml_node_t *n);
const char *conf__kind(struct conf__loader *l, const yaml_node_t *n);
const char *conf__label(struct conf__loader *l, const struct conf__field *f, const char *ctx);

/*
 * Find every key that repeats an earlier key of its mapping, anywhere in the
 * document: each is reported ("duplicate key 'x' (first at line N)") and
 * remembered for conf__is_dup().  Non-scalar keys are reported too.  Call once,
 * before the schema walk; l->dups is the caller's to free.
 */
void conf__dups_check(struct conf__loader *l);

/* Whether key node k is a repeat found by conf__dups_check().  The schema
 * walk skips such entries: the duplicate is already reported. */
bool conf__is_dup(const struct conf__loader *l, const yaml_node_t *k);

/* Where a walk over a mapping's entries stands; start it zeroed. */
struct conf__entry {
	yaml_node_t *key;		/* a scalar */
	yaml_node_t *val;
	yaml_node_pair_t *next;		/* NULL: the walk has not started */
};

/*
 * Step e to the next entry of mapping m whose key is a scalar and not a
 * repeat (see conf__is_dup()): entries with other keys are skipped, having
 * been reported by conf__dups_check().  Returns false at the end.
 */
bool conf__entry_next(struct conf__loader *l, const yaml_node_t *m, struct conf__entry *e);

/*
 * Match the keys of mapping `map` against f[0..nf) by name, filling each
 * field's key and val (left NULL for absent keys).  A key the schema does not
 * know is reported as "unknown key 'x' in CTX" ("in the top level" when ctx is
 * NULL).  Only the first of duplicate keys is used.
 */
void conf__fields(struct conf__loader *l, const yaml_node_t *map, const char *ctx,
		  struct conf__field *f, size_t nf);

/* f's value when it is a non-null node of type t; otherwise NULL after
 * reporting "LABEL: expected a value/a list/a mapping, got KIND" at the
 * value (at the key when there is no value). */
yaml_node_t *conf__want(struct conf__loader *l, const struct conf__field *f, const char *ctx,
			yaml_node_type_t t);

/* As conf__want() for a required key; an absent one is reported as "missing
 * required key" at `at` (the node naming the owner; NULL: the top). */
yaml_node_t *conf__need(struct conf__loader *l, const struct conf__field *f, const char *ctx,
			const yaml_node_t *at, yaml_node_type_t t);

/* As conf__want() for an optional section: absent and empty (`tenants:`)
 * both return NULL without a report, so an operator can comment out every
 * entry without deleting the heading. */
yaml_node_t *conf__section(struct conf__loader *l, const struct conf__field *f, const char *ctx,
			   yaml_node_type_t t);

#endif
