/*
 * tenant.h - tenants, their API keys, their buckets, and classification.
 *
 * A tenant is found from the API key a request presents: the key is hashed
 * with SHA-256 (OpenSSL's libcrypto) and the digest looked up in an
 * open-addressing table indexed by the digest itself, then compared in
 * constant time (CRYPTO_memcmp).  Which slot a digest falls in says
 * something about SHA-256(guess), which is useless without a preimage, and
 * nothing about how close a guess came to a real key.  Keys are never stored
 * or logged, only their hashes.
 *
 * Each tenant owns two buckets: requests per second and LLM tokens per
 * minute.  They live here, not in the config snapshot, because they change
 * with every request.
 */
#ifndef SLUICE_QUEUE_TENANT_H
#define SLUICE_QUEUE_TENANT_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "queue/bucket.h"

struct queue_tenant {
	const struct conf_tenant *cfg;
	size_t index;
	struct queue_bucket requests;	/* requests_per_s, burst */
	struct queue_bucket tokens;	/* tokens_per_min, one minute deep */
};

struct queue_key_slot {
	const uint8_t *sha256;		/* NULL: empty slot */
	struct queue_tenant *tenant;
};

struct queue_tenants {
	struct queue_tenant *v;
	size_t n;
	struct queue_tenant *anonymous;	/* used when no key is presented, or NULL */
	bool open;			/* no tenants configured: every request is anonymous's */
	struct queue_key_slot *keys;	/* power-of-two table, at most half full */
	size_t keys_mask;
};

/* Build the tenants of `c` (which must outlive them).  With no tenants in c,
 * one unlimited anonymous tenant takes every request (an open gateway).
 * Returns 0 or -ENOMEM. */
int queue_tenants_init(struct queue_tenants *ts, const struct conf *c, uint64_t now_ms);
void queue_tenants_finish(struct queue_tenants *ts);

/*
 * Point the tenants at a new snapshot with the same tenants in the same
 * order (the caller checked): keys, classes, weights and rates may change;
 * bucket levels carry over.  Returns 0, or -ENOMEM before anything changed.
 */
int queue_tenants_reconfigure(struct queue_tenants *ts, const struct conf *c, uint64_t now_ms);

/* SHA-256 of a key. */
void queue_key_hash(const char *key, size_t len, uint8_t out[32]);

/* The tenant whose keys include `key`, or NULL. */
struct queue_tenant *queue_tenant_by_key(const struct queue_tenants *ts, const char *key, size_t len);

/*
 * The class of a request: the `x-sluice-class` header when present and
 * valid (header may be NULL), else the class its body asks for (the
 * gateway maps the OpenAI `service_tier`; -1 when none), else the tenant's
 * default class; never more urgent than the tenant's max_class.  Sets
 * *capped when the request asked for more than it may have.
 */
enum conf_class queue_classify(const struct queue_tenant *t, const char *header, size_t header_len,
			       int body_class, bool *capped);

#endif
