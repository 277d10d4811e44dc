/* tenant.c - tenants, keys, classification; see tenant.h. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "queue/tenant.h"

/* A config without tenants is an open gateway: every request belongs to
 * this one, unlimited, standard by default and allowed to ask for any class. */
static struct conf_tenant open_tenant = {
	.name = "anonymous",
	.default_class = CONF_CLASS_STANDARD,
	.max_class = CONF_CLASS_INTERACTIVE,
	.weight = 1,
};

static size_t slot_of(const uint8_t *sha256, size_t mask)
{
	uint64_t x;
	memcpy(&x, sha256, sizeof(x));
	return (size_t)x & mask;
}

/* The key table of c's tenants (ts->v[i] is c->tenants[i]). */
static int keys_init(struct queue_tenants *ts, const struct conf *c)
{
	size_t nkeys = 0, cap = 16;
	for (size_t i = 0; i < c->ntenants; i++)
		nkeys += c->tenants[i].nkeys;
	while (cap < 2 * nkeys)
		cap *= 2;
	ts->keys = calloc(cap, sizeof(*ts->keys));
	if (ts->keys == NULL)
		return -ENOMEM;
	ts->keys_mask = cap - 1;
	for (size_t i = 0; i < c->ntenants; i++) {
		const struct conf_tenant *ct = &c->tenants[i];
		for (size_t k = 0; k < ct->nkeys; k++) {
			size_t j = slot_of(ct->keys[k].sha256, ts->keys_mask);
			while (ts->keys[j].sha256 != NULL)
				j = (j + 1) & ts->keys_mask;
			ts->keys[j].sha256 = ct->keys[k].sha256;
			ts->keys[j].tenant = &ts->v[i];
		}
	}
	return 0;
}

int queue_tenants_init(struct queue_tenants *ts, const struct conf *c, uint64_t now_ms)
{
	ts->n = c->ntenants;
	ts->anonymous = NULL;
	ts->open = c->ntenants == 0;
	ts->keys = NULL;
	ts->v = calloc(c->ntenants ? c->ntenants : 1, sizeof(*ts->v));
	if (ts->v == NULL)
		return -ENOMEM;
	if (c->ntenants == 0) {
		int k = CONF_CLASS_STANDARD;
		for (int i = CONF_CLASS_COUNT - 1; i >= 0 && !c->classes[k].defined; i--)
			k = i;
		open_tenant.default_class = (enum conf_class)k;
		ts->n = 1;
		ts->v[0].cfg = &open_tenant;
		queue_bucket_init(&ts->v[0].requests, 0, 1, now_ms);
		queue_bucket_init(&ts->v[0].tokens, 0, 1, now_ms);
		ts->anonymous = &ts->v[0];
		return keys_init(ts, c);
	}
	for (size_t i = 0; i < c->ntenants; i++) {
		const struct conf_tenant *ct = &c->tenants[i];
		struct queue_tenant *t = &ts->v[i];
		t->cfg = ct;
		t->index = i;
		queue_bucket_init(&t->requests, ct->requests_per_s, ct->burst, now_ms);
		queue_bucket_init(&t->tokens, ct->tokens_per_min / 60.0, ct->tokens_per_min, now_ms);
		if (c->anonymous_tenant != NULL && strcmp(c->anonymous_tenant, ct->name) == 0)
			ts->anonymous = t;
	}
	return keys_init(ts, c);
}

int queue_tenants_reconfigure(struct queue_tenants *ts, const struct conf *c, uint64_t now_ms)
{
	struct queue_key_slot *old = ts->keys;
	size_t old_mask = ts->keys_mask;
	if (c->ntenants == 0) {
		/* still the open gateway: nothing of a tenant is configured */
		return 0;
	}
	if (keys_init(ts, c) < 0) {
		ts->keys = old;
		ts->keys_mask = old_mask;
		return -ENOMEM;
	}
	free(old);
	for (size_t i = 0; i < ts->n; i++)
		ts->v[i].cfg = &c->tenants[i];
	ts->anonymous = NULL;
	for (size_t i = 0; i < ts->n; i++) {
		const struct conf_tenant *ct = ts->v[i].cfg;
		queue_bucket_reconfigure(&ts->v[i].requests, ct->requests_per_s, ct->burst, now_ms);
		queue_bucket_reconfigure(&ts->v[i].tokens, ct->tokens_per_min / 60.0, ct->tokens_per_min, now_ms);
		if (c->anonymous_tenant != NULL && strcmp(c->anonymous_tenant, ct->name) == 0)
			ts->anonymous = &ts->v[i];
	}
	return 0;
}

void queue_tenants_finish(struct queue_tenants *ts)
{
	free(ts->keys);
	ts->keys = NULL;
	free(ts->v);
	ts->v = NULL;
	ts->n = 0;
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
