/*
 * tenant.c - the tenants section: who may send requests, with which keys,
 * into which classes, and how fast.
 *
 * API keys never pass through here, only their SHA-256.  Even so, a sha256
 * value that fails to parse is never echoed, because the usual mistake is
 * pasting the raw key itself.  A key, once parsed, must identify exactly one
 * tenant, or accounting and limits would go to whichever tenant happened to
 * be found first; since the check spans tenants, every key is remembered
 * (a struct keyref) while the section is read, and the list is sorted and
 * checked once at the end.
 *
 * A tenant's classes are checked against the classes section, which must
 * therefore be read first: the default class must be defined, and may not
 * be more urgent than the tenant's max_class.
 *
 * Ownership: names and key arrays hang off l->c; the keyref list lives only
 * for one conf__tenants_read() call and points into those key arrays.
 */
#include "conf/tenant.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/value.h"

/* The sha256 of one tenant key, remembered with where it came from so that
 * duplicates across tenants can be reported after all tenants are read. */
struct keyref {
	const uint8_t *sha256;
	size_t tenant;
	size_t line;
};

struct keyrefs {
	struct keyref *v;
	size_t n;
	size_t cap;
};

static void keyref_add(struct conf__loader *l, struct keyrefs *r, const uint8_t *sha,
		       size_t tenant, size_t line)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct keyref *v = realloc(r->v, cap * sizeof *v);

		if (!v) {
			conf__nomem(l);
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = (struct keyref){ sha, tenant, line };
}

static int keyref_cmp(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	int r = memcmp(x->sha256, y->sha256, 32);

	if (r)
		return r;
	return (x->line > y->line) - (x->line < y->line);
}

void conf__key_hex(const uint8_t *sha256, char out[CONF__KEY_HEX + 1])
{
	for (int i = 0; i < CONF__KEY_HEX / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", sha256[i]);
}

/* Report every key listed after an identical one, naming the first. */
static void keyrefs_check(struct conf__loader *l, struct keyrefs *r)
{
	const struct conf_tenant *ts = l->c->tenants;
	size_t i;

	if (r->n)
		qsort(r->v, r->n, sizeof *r->v, keyref_cmp);
	for (i = 1; i < r->n; i++) {
		const struct keyref *a = &r->v[i - 1], *b = &r->v[i];
		char hex[CONF__KEY_HEX + 1];

		if (memcmp(a->sha256, b->sha256, 32) != 0)
			continue;
		conf__key_hex(b->sha256, hex);
		if (a->tenant == b->tenant)
			conf__diags_add(&l->diags, b->line,
					"tenant '%s' lists key %s... twice (first at line %zu)",
					ts[b->tenant].name, hex, a->line);
		else
			conf__diags_add(&l->diags, b->line,
					"duplicate key %s... in tenant '%s': already used by tenant '%s' at line %zu",
					hex, ts[b->tenant].name, ts[a->tenant].name, a->line);
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

/* Decode the 64 hex digits of scalar n into out[32]; report the first
 * character that is not a hex digit. */
static bool sha256_decode(struct conf__loader *l, const yaml_node_t *n, const char *ctx,
			  uint8_t *out)
{
	const char *s = conf__node_text(n);
	size_t i;

	for (i = 0; i < 64; i += 2) {
		int hi = hexval(s[i]), lo;

		if (hi < 0 || (lo = hexval(s[i + 1])) < 0) {
			conf__err(l, n, "sha256 in %s is not hexadecimal (character %zu)", ctx,
				  (hi < 0 ? i : i + 1) + 1);
			return false;
		}
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static void parse_key(struct conf__loader *l, struct keyrefs *refs, struct conf_tenant *t,
		      size_t ti, const yaml_node_t *item, const char *ctx)
{
	struct conf__field f[1] = { { .name = "sha256" } };
	struct conf_key *key = &t->keys[t->nkeys];
	const yaml_node_t *n;
	size_t len;

	if (!conf__node_is(item, YAML_MAPPING_NODE)) {
		/* Not echoed: a bare string here is most likely a raw API key. */
		conf__err(l, item, "keys in %s: expected a mapping like { sha256: \"<64 hex digits>\" }",
			  ctx);
		return;
	}
	conf__fields(l, item, ctx, f, 1);
	if (!(n = conf__need(l, &f[0], ctx, item, YAML_SCALAR_NODE)))
		return;
	len = n->data.scalar.length;
	if (len != 64) {
		conf__err(l, n, "sha256 in %s must be 64 hex digits, got %zu characters%s", ctx, len,
			  len > 3 && memcmp(conf__node_text(n), "sk-", 3) == 0 ?
			  " (this looks like the key itself; store the output of"
			  " `printf %s KEY | sha256sum`)" : "");
		return;
	}
	if (!sha256_decode(l, n, ctx, key->sha256))
		return;
	keyref_add(l, refs, key->sha256, ti, conf__node_line(n));
	t->nkeys++;
}

/* default_class (standard unless given) and max_class (the default class
 * unless given), and the rules that tie them to each other and to the
 * classes section. */
static void parse_tenant_classes(struct conf__loader *l, struct conf_tenant *t,
				 const struct conf__field *def, const struct conf__field *max,
				 const yaml_node_t *k, const char *ctx)
{
	bool dok, mok;

	dok = conf__value_class(l, def, ctx, &t->default_class);
	t->max_class = t->default_class;
	mok = conf__value_class(l, max, ctx, &t->max_class);
	if (dok && mok && t->default_class < t->max_class)
		conf__err(l, def->key ? def->val : max->val,
			  "%s: default_class '%s' is above its max_class '%s'", ctx,
			  conf_class_name(t->default_class), conf_class_name(t->max_class));
	else if (dok && !l->c->classes[t->default_class].defined)
		conf__err(l, def->key ? def->val : k,
			  "%s: default_class '%s' is not defined under classes", ctx,
			  conf_class_name(t->default_class));
}

static void parse_tenant(struct conf__loader *l, struct keyrefs *refs, size_t ti,
			 const yaml_node_t *k, const yaml_node_t *v, const struct conf__field *anon)
{
	enum { KEYS, DEFAULT_CLASS, MAX_CLASS, WEIGHT, RPS, BURST, TPM, N };
	struct conf__field f[N] = {
		[KEYS] = { .name = "keys" },
		[DEFAULT_CLASS] = { .name = "default_class" },
		[MAX_CLASS] = { .name = "max_class" },
		[WEIGHT] = { .name = "weight" },
		[RPS] = { .name = "requests_per_s" },
		[BURST] = { .name = "burst" },
		[TPM] = { .name = "tokens_per_min" },
	};
	struct conf_tenant *t = &l->c->tenants[ti];
	char ctx[CONF__NAME_MAX + 16];
	const yaml_node_t *n;
	size_t i;

	snprintf(ctx, sizeof ctx, "tenant '%s'", t->name);
	t->default_class = CONF_CLASS_STANDARD;
	t->weight = 1;
	if (!conf__node_is(v, YAML_MAPPING_NODE)) {
		conf__err(l, v, "%s: expected a mapping, got %s", ctx, conf__kind(l, v));
		return;
	}
	conf__fields(l, v, ctx, f, N);

	if ((n = conf__section(l, &f[KEYS], ctx, YAML_SEQUENCE_NODE)) && conf__seq_len(n)) {
		if (!(t->keys = conf__calloc(l, conf__seq_len(n), sizeof *t->keys)))
			return;
		for (i = 0; i < conf__seq_len(n); i++)
			parse_key(l, refs, t, ti, conf__seq_item(l, n, i), ctx);
	} else if (!f[KEYS].key || n) {
		/* No keys at all: only the anonymous tenant is reached that way.
		 * Anything else is a key list lost in a merge or an indentation
		 * slip, whose limits would look configured and never apply. */
		if (!anon->key || !conf__node_is(anon->val, YAML_SCALAR_NODE) ||
		    !conf__node_equals(anon->val, t->name))
			conf__err(l, k, "%s has no keys and is not the anonymous_tenant: "
				  "no request could reach it", ctx);
	}
	parse_tenant_classes(l, t, &f[DEFAULT_CLASS], &f[MAX_CLASS], k, ctx);

	/* Not a table: burst's default depends on requests_per_s, and the
	 * checks above must come first to keep messages in reading order. */
	conf__value_num(l, &f[WEIGHT], ctx, 0, true, INFINITY, &t->weight);
	conf__value_num(l, &f[RPS], ctx, 0, false, INFINITY, &t->requests_per_s);
	t->burst = t->requests_per_s > 1 ? t->requests_per_s : 1;
	/* A bucket shallower than one request could never admit anything. */
	if (conf__value_num(l, &f[BURST], ctx, 1, false, INFINITY, &t->burst) && f[BURST].key &&
	    t->requests_per_s == 0)
		conf__err(l, f[BURST].val, "burst in %s needs requests_per_s: without a rate, requests are "
			  "not limited and a burst means nothing", ctx);
	conf__value_num(l, &f[TPM], ctx, 0, false, INFINITY, &t->tokens_per_min);
}

void conf__tenants_read(struct conf__loader *l, const struct conf__field *sec,
			const struct conf__field *anon)
{
	struct conf *c = l->c;
	const yaml_node_t *m = conf__section(l, sec, NULL, YAML_MAPPING_NODE);
	struct conf__entry e = { 0 };
	struct keyrefs refs = { 0 };

	if (!m || conf__map_len(m) == 0 ||
	    !(c->tenants = conf__calloc(l, conf__map_len(m), sizeof *c->tenants)))
		return;
	while (conf__entry_next(l, m, &e)) {
		struct conf_tenant *t = &c->tenants[c->ntenants];

		conf__value_name(l, e.key, "tenant");
		if (!(t->name = conf__node_dup(l, e.key)))
			goto out;
		c->ntenants++;
		t->line = (int)conf__node_line(e.key);
		parse_tenant(l, &refs, c->ntenants - 1, e.key, e.val, anon);
	}
	keyrefs_check(l, &refs);
out:
	free(refs.v);
}

void conf__anonymous_read(struct conf__loader *l, const struct conf__field *f)
{
	struct conf *c = l->c;
	const yaml_node_t *n;
	size_t i;

	if (!f->key || !(n = conf__want(l, f, NULL, YAML_SCALAR_NODE)))
		return;
	for (i = 0; i < c->ntenants; i++)
		if (conf__node_equals(n, c->tenants[i].name))
			break;
	if (i == c->ntenants) {
		conf__err(l, n, "anonymous_tenant names unknown tenant '%s'", conf__show(l, n));
		return;
	}
	if (!(c->anonymous_tenant = strdup(c->tenants[i].name)))
		conf__nomem(l);
}
