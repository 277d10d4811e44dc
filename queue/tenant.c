/*
 * tenant.c - tenants, keys, classification, and their reload; see tenant.h.
 *
 * A reload matches the new config's tenants to the running ones by name
 * (a hash of the running names, built and freed inside prepare, so that
 * thousands of tenants do not cost a quadratic scan).  Every allocation
 * happens in prepare: the new tenant list, the objects of new tenants, the
 * key table and the index maps.  Commit only moves pointers and numbers.
 */
#include <assert.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "queue/tenant.h"

/* The name of the one tenant of an open gateway (a config without tenants). */
static const char open_name[] = "anonymous";

static size_t slot_of(const uint8_t *sha256, size_t mask)
{
	uint64_t x;
	memcpy(&x, sha256, sizeof(x));
	return (size_t)x & mask;
}

static size_t ntenants_of(const struct conf *c)
{
	return c->ntenants ? c->ntenants : 1;
}

static const char *name_of(const struct conf *c, size_t i)
{
	return c->ntenants ? c->tenants[i].name : open_name;
}

/* The open gateway's tenant: unlimited, standard by default (or the first
 * class defined), allowed to ask for any class. */
static void open_cfg(const struct conf *c, struct queue_tenant *t)
{
	int k = CONF_CLASS_STANDARD;
	for (int i = CONF_CLASS_COUNT - 1; i >= 0 && !c->classes[k].defined; i--)
		k = i;
	t->own = (struct conf_tenant){
		.name = t->name,
		.default_class = (enum conf_class)k,
		.max_class = CONF_CLASS_INTERACTIVE,
		.weight = 1,
	};
	t->cfg = &t->own;
}

static struct queue_tenant *tenant_create(const char *name)
{
	size_t len = strlen(name);
	struct queue_tenant *t = calloc(1, sizeof(*t) + len + 1);
	if (t == NULL)
		return NULL;
	memcpy(t->name, name, len + 1);
	t->index = QUEUE_TENANT_RETIRED;
	return t;
}

/* A tenant no request holds any more: none of its requests is queued. */
static void tenant_free(struct queue_tenant *t)
{
	for (int k = 0; k < CONF_CLASS_COUNT; k++)
		assert(t->flows[k].count == 0);
	queue_share_leave(t);
	free(t);
}

/* The key table of c's tenants, v[i] being c->tenants[i]. */
static int keys_build(struct queue_tenants_next *next)
{
	const struct conf *c = next->conf;
	size_t nkeys = 0, cap = 16;
	for (size_t i = 0; i < c->ntenants; i++)
		nkeys += c->tenants[i].nkeys;
	while (cap < 2 * nkeys)
		cap *= 2;
	next->keys = calloc(cap, sizeof(*next->keys));
	if (next->keys == NULL)
		return -ENOMEM;
	next->keys_mask = cap - 1;
	for (size_t i = 0; i < c->ntenants; i++) {
		const struct conf_tenant *ct = &c->tenants[i];
		for (size_t k = 0; k < ct->nkeys; k++) {
			size_t j = slot_of(ct->keys[k].sha256, next->keys_mask);
			while (next->keys[j].sha256 != NULL)
				j = (j + 1) & next->keys_mask;
			next->keys[j].sha256 = ct->keys[k].sha256;
			next->keys[j].tenant = next->v[i];
		}
	}
	return 0;
}

/* FNV-1a: only to spread names over the table prepare builds and frees. */
static size_t name_hash(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

/* next->from: each new tenant's index in ts, by name; and next->gone. */
static int match_names(const struct queue_tenants *ts, struct queue_tenants_next *next)
{
	size_t cap = 16;
	while (cap < 2 * ts->n)
		cap *= 2;
	size_t *table = calloc(cap, sizeof(*table));	/* index + 1; 0: empty */
	bool *kept = calloc(ts->n ? ts->n : 1, sizeof(*kept));
	if (table == NULL || kept == NULL) {
		free(table);
		free(kept);
		return -ENOMEM;
	}
	for (size_t j = 0; j < ts->n; j++) {
		size_t s = name_hash(ts->v[j]->name) & (cap - 1);
		while (table[s] != 0)
			s = (s + 1) & (cap - 1);
		table[s] = j + 1;
	}
	for (size_t i = 0; i < next->n; i++) {
		const char *name = name_of(next->conf, i);
		next->from[i] = QUEUE_TENANT_NEW;
		for (size_t s = name_hash(name) & (cap - 1); table[s] != 0; s = (s + 1) & (cap - 1)) {
			if (strcmp(ts->v[table[s] - 1]->name, name) == 0) {
				next->from[i] = table[s] - 1;
				kept[table[s] - 1] = true;
				break;
			}
		}
	}
	next->ngone = 0;
	for (size_t j = 0; j < ts->n; j++)
		if (!kept[j])
			next->gone[next->ngone++] = j;
	free(table);
	free(kept);
	return 0;
}

void queue_tenants_discard(struct queue_tenants_next *next)
{
	for (size_t i = 0; next->v != NULL && i < next->n; i++)
		if (next->from[i] == QUEUE_TENANT_NEW)
			free(next->v[i]);
	free(next->v);
	free(next->from);
	free(next->gone);
	free(next->keys);
	memset(next, 0, sizeof(*next));
}

int queue_tenants_prepare(const struct queue_tenants *ts, const struct conf *c, struct queue_tenants_next *next)
{
	memset(next, 0, sizeof(*next));
	next->conf = c;
	next->n = ntenants_of(c);
	next->v = calloc(next->n, sizeof(*next->v));
	next->from = malloc(next->n * sizeof(*next->from));
	next->gone = malloc((ts->n ? ts->n : 1) * sizeof(*next->gone));
	if (next->v == NULL || next->from == NULL || next->gone == NULL || match_names(ts, next) < 0) {
		free(next->v);	/* from[] may be unset, and v holds nothing yet */
		next->v = NULL;
		queue_tenants_discard(next);
		return -ENOMEM;
	}
	for (size_t i = 0; i < next->n; i++) {
		next->v[i] = next->from[i] == QUEUE_TENANT_NEW ? tenant_create(name_of(c, i)) : ts->v[next->from[i]];
		if (next->v[i] == NULL) {
			queue_tenants_discard(next);	/* frees the new ones made so far */
			return -ENOMEM;
		}
	}
	if (keys_build(next) < 0) {
		queue_tenants_discard(next);
		return -ENOMEM;
	}
	return 0;
}

/* Off the tenant list for good: keep what its requests still read. */
static void retire(struct queue_tenants *ts, struct queue_tenant *t)
{
	if (t->cfg != &t->own) {
		t->own = *t->cfg;		/* the snapshot it points into is about to go */
		t->own.name = t->name;
		t->own.keys = NULL;
		t->own.nkeys = 0;
		t->cfg = &t->own;
	}
	t->index = QUEUE_TENANT_RETIRED;
	if (t->refs == 0) {
		tenant_free(t);
		return;
	}
	t->retired_next = ts->retired;
	if (ts->retired != NULL)
		ts->retired->retired_pprev = &t->retired_next;
	t->retired_pprev = &ts->retired;
	ts->retired = t;
}

void queue_tenants_commit(struct queue_tenants *ts, struct queue_tenants_next *next, uint64_t now_ms)
{
	const struct conf *c = next->conf;
	for (size_t i = 0; i < next->n; i++) {
		struct queue_tenant *t = next->v[i];
		if (c->ntenants == 0)
			open_cfg(c, t);
		else
			t->cfg = &c->tenants[i];
		const struct conf_tenant *ct = t->cfg;
		if (next->from[i] == QUEUE_TENANT_NEW) {
			queue_bucket_init(&t->requests, ct->requests_per_s, ct->burst, now_ms);
			queue_bucket_init(&t->tokens, ct->tokens_per_min / 60.0, ct->tokens_per_min, now_ms);
		} else {
			queue_bucket_reconfigure(&t->requests, ct->requests_per_s, ct->burst, now_ms);
			queue_bucket_reconfigure(&t->tokens, ct->tokens_per_min / 60.0, ct->tokens_per_min, now_ms);
		}
		t->index = i;
	}
	for (size_t g = 0; g < next->ngone; g++)
		retire(ts, ts->v[next->gone[g]]);
	ts->anonymous = NULL;
	if (c->ntenants == 0) {
		ts->anonymous = next->v[0];
	} else if (c->anonymous_tenant != NULL) {
		for (size_t i = 0; i < next->n && ts->anonymous == NULL; i++)
			if (strcmp(c->anonymous_tenant, next->v[i]->name) == 0)
				ts->anonymous = next->v[i];
	}
	ts->open = c->ntenants == 0;
	free(ts->v);
	free(ts->keys);
	ts->v = next->v;
	ts->n = next->n;
	ts->keys = next->keys;
	ts->keys_mask = next->keys_mask;
	free(next->from);
	free(next->gone);
	memset(next, 0, sizeof(*next));
}

int queue_tenants_init(struct queue_tenants *ts, const struct conf *c, uint64_t now_ms)
{
	memset(ts, 0, sizeof(*ts));
	return queue_tenants_reconfigure(ts, c, now_ms);
}

int queue_tenants_reconfigure(struct queue_tenants *ts, const struct conf *c, uint64_t now_ms)
{
	struct queue_tenants_next next;
	int rc = queue_tenants_prepare(ts, c, &next);
	if (rc < 0)
		return rc;
	queue_tenants_commit(ts, &next, now_ms);
	return 0;
}

void queue_tenants_finish(struct queue_tenants *ts)
{
	for (size_t i = 0; i < ts->n; i++) {
		queue_share_leave(ts->v[i]);
		free(ts->v[i]);
	}
	for (struct queue_tenant *t = ts->retired, *next; t != NULL; t = next) {
		next = t->retired_next;
		queue_share_leave(t);
		free(t);
	}
	free(ts->v);
	free(ts->keys);
	memset(ts, 0, sizeof(*ts));
}

struct queue_tenant *queue_tenant_get(struct queue_tenant *t)
{
	t->refs++;
	return t;
}

void queue_tenant_put(struct queue_tenant **tp)
{
	struct queue_tenant *t = *tp;
	if (t == NULL)
		return;
	*tp = NULL;
	assert(t->refs > 0);
	if (--t->refs > 0 || t->index != QUEUE_TENANT_RETIRED)
		return;
	*t->retired_pprev = t->retired_next;
	if (t->retired_next != NULL)
		t->retired_next->retired_pprev = t->retired_pprev;
	tenant_free(t);
}

static bool has_key(const struct conf_tenant *t, const uint8_t *sha256)
{
	for (size_t k = 0; k < t->nkeys; k++)
		if (memcmp(t->keys[k].sha256, sha256, sizeof(t->keys[k].sha256)) == 0)
			return true;
	return false;
}

unsigned queue_tenant_changes(const struct conf_tenant *a, const struct conf_tenant *b)
{
	unsigned bits = 0;
	bool keys = a->nkeys != b->nkeys;
	for (size_t k = 0; !keys && k < a->nkeys; k++)
		keys = !has_key(b, a->keys[k].sha256);
	if (keys)
		bits |= QUEUE_TENANT_CHANGED_KEYS;
	if (a->default_class != b->default_class)
		bits |= QUEUE_TENANT_CHANGED_DEFAULT_CLASS;
	if (a->max_class != b->max_class)
		bits |= QUEUE_TENANT_CHANGED_MAX_CLASS;
	if (a->weight != b->weight)
		bits |= QUEUE_TENANT_CHANGED_WEIGHT;
	if (a->requests_per_s != b->requests_per_s)
		bits |= QUEUE_TENANT_CHANGED_REQUESTS_PER_S;
	if (a->burst != b->burst)
		bits |= QUEUE_TENANT_CHANGED_BURST;
	if (a->tokens_per_min != b->tokens_per_min)
		bits |= QUEUE_TENANT_CHANGED_TOKENS_PER_MIN;
	return bits;
}

const char *queue_tenant_change_name(unsigned bit)
{
	switch (bit) {
	case QUEUE_TENANT_CHANGED_KEYS: return "keys";
	case QUEUE_TENANT_CHANGED_DEFAULT_CLASS: return "default_class";
	case QUEUE_TENANT_CHANGED_MAX_CLASS: return "max_class";
	case QUEUE_TENANT_CHANGED_WEIGHT: return "weight";
	case QUEUE_TENANT_CHANGED_REQUESTS_PER_S: return "requests_per_s";
	case QUEUE_TENANT_CHANGED_BURST: return "burst";
	case QUEUE_TENANT_CHANGED_TOKENS_PER_MIN: return "tokens_per_min";
	default: return "?";
	}
}

void queue_key_hash(const char *key, size_t len, uint8_t out[32])
{
	SHA256((const unsigned char *)key, len, out);
}

struct queue_tenant *queue_tenant_by_key(const struct queue_tenants *ts, const char *key, size_t len)
{
	uint8_t h[32];
	queue_key_hash(key, len, h);
	for (size_t j = slot_of(h, ts->keys_mask); ts->keys[j].sha256 != NULL; j = (j + 1) & ts->keys_mask)
		if (CRYPTO_memcmp(h, ts->keys[j].sha256, sizeof(h)) == 0)
			return ts->keys[j].tenant;
	return NULL;
}

enum conf_class queue_classify(const struct queue_tenant *t, const char *header, size_t header_len,
			       int body_class, bool *capped)
{
	enum conf_class k = t->cfg->default_class;
	enum conf_class asked;
	if (header != NULL && conf_class_parse(header, header_len, &asked) == 0)
		k = asked;
	else if (body_class >= 0 && body_class < CONF_CLASS_COUNT)
		k = (enum conf_class)body_class;
	/* Lower is more urgent: a request may not rise above max_class. */
	*capped = k < t->cfg->max_class;
	return *capped ? t->cfg->max_class : k;
}
