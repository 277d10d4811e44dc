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
 * Each tenant owns two buckets (requests per second, LLM tokens per minute)
 * and its flow in each class queue (queue.h).  They live here, not in the
 * config snapshot, because they change with every request.
 *
 * Lifetimes.  A tenant is one heap object, created when a config first
 * names it and kept, under its name, across reloads: a reload that keeps a
 * name keeps the object (its bucket levels, its queued requests, their
 * order and its fair-queue virtual time), whatever its index, keys or rates
 * become.  A request holds a reference from its admission (queue_admit) to
 * its end (queue_tenant_put).  A reload that drops a name retires the
 * object: it leaves the key table and the tenant list, takes a copy of its
 * last config (the snapshot that held it is freed), and lives on, off
 * every list but `retired`, until its last request ends.  Its queued
 * requests are popped in their turn, and whatever its requests still settle
 * (refunds, usage) goes to its own buckets, never to a tenant that a later
 * reload creates under the same name: that one is a new object with a
 * full bucket.
 *
 * A reload is two steps, so that it can be refused without changing
 * anything: queue_tenants_prepare() allocates everything the new set needs
 * and may fail; queue_tenants_commit() swaps it in and cannot.
 */
#ifndef SLUICE_QUEUE_TENANT_H
#define SLUICE_QUEUE_TENANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "queue/bucket.h"
#include "queue/lease.h"
#include "queue/queue.h"
#include "queue/share.h"

/* queue_tenant.index of a tenant a reload removed. */
#define QUEUE_TENANT_RETIRED SIZE_MAX
/* queue_tenants_next.from[] of a tenant the reload creates. */
#define QUEUE_TENANT_NEW SIZE_MAX

struct queue_tenant {
	const struct conf_tenant *cfg;	/* in the running snapshot, or &own */
	size_t index;			/* in queue_tenants.v; QUEUE_TENANT_RETIRED once removed */
	struct queue_bucket requests;	/* requests_per_s, burst */
	struct queue_bucket tokens;	/* tokens_per_min, one minute deep */
	struct queue_flow flows[CONF_CLASS_COUNT];	/* its queued requests, per class (queue.h) */
	struct queue_share_hold share[CONF_CLASS_COUNT];	/* its slots held, per class (share.h) */
	unsigned refs;			/* requests that hold it (queue_admit .. queue_tenant_put),
					 * and a shared-limits renewal in flight */
	struct queue_lease leases[2];	/* of requests and tokens, with shared limits (lease.h) */
	bool renewing;			/* a shared-limits renewal is in flight */
	struct queue_tenant *retired_next, **retired_pprev;	/* on queue_tenants.retired */
	struct conf_tenant own;		/* the config of the open gateway's tenant, and of a retired one */
	char name[];			/* cfg->name, kept for when the snapshot is gone */
};

struct queue_key_slot {
	const uint8_t *sha256;		/* NULL: empty slot */
	struct queue_tenant *tenant;
};

struct queue_tenants {
	struct queue_tenant **v;	/* [n], in config order */
	size_t n;
	struct queue_tenant *anonymous;	/* used when no key is presented, or NULL */
	bool open;			/* no tenants configured: every request is anonymous's */
	struct queue_key_slot *keys;	/* power-of-two table, at most half full */
	size_t keys_mask;
	struct queue_tenant *retired;	/* removed by a reload, still held by requests (the list
					 * points back at this field: a queue_tenants never moves) */
};

/* A reload of the tenants, prepared (queue_tenants_prepare) and not yet
 * committed.  Read-only for the caller. */
struct queue_tenants_next {
	const struct conf *conf;
	struct queue_tenant **v;	/* [n]: the tenants of conf, in its order */
	size_t n;
	size_t *from;			/* [n]: the index each had before, or QUEUE_TENANT_NEW */
	size_t *gone;			/* [ngone]: indexes (before) of the tenants it removes */
	size_t ngone;
	struct queue_key_slot *keys;
	size_t keys_mask;
};

/* Build the tenants of `c` (which must outlive them, or be replaced by a
 * reload first).  With no tenants in c, one unlimited tenant named
 * "anonymous" takes every request (an open gateway).  Returns 0 or -ENOMEM. */
int queue_tenants_init(struct queue_tenants *ts, const struct conf *c, uint64_t now_ms);

/* Free every tenant, retired ones included.  Items that still point at one
 * must not be used afterwards. */
void queue_tenants_finish(struct queue_tenants *ts);

/*
 * Prepare the tenants of snapshot `c` in place of the running ones: tenants
 * are matched by name; the others are added or removed.  Allocates
 * everything the commit needs; changes nothing in ts.  Returns 0 (then
 * exactly one of commit or discard must follow, with nothing in between
 * that changes ts), or -ENOMEM.
 */
int queue_tenants_prepare(const struct queue_tenants *ts, const struct conf *c, struct queue_tenants_next *next);

/*
 * Apply a prepared reload; cannot fail.  `c` (next->conf) must outlive the
 * tenants; the previous snapshot may be freed afterwards.  A kept tenant
 * takes its new config and index, and its buckets their new rate and burst
 * with the level carried over (queue_bucket_reconfigure: a full bucket
 * stays full, a partial one keeps its level and debt, capped at the new
 * burst).  A new tenant starts with full buckets.  A removed one is
 * retired (see the top of this file), or freed at once when no request
 * holds it.  Consumes next.
 */
void queue_tenants_commit(struct queue_tenants *ts, struct queue_tenants_next *next, uint64_t now_ms);

/* Free a prepared reload that is not committed. */
void queue_tenants_discard(struct queue_tenants_next *next);

/* Prepare and commit in one step.  Returns 0, or -ENOMEM before anything changed. */
int queue_tenants_reconfigure(struct queue_tenants *ts, const struct conf *c, uint64_t now_ms);

/* A request takes a reference to its tenant (queue_admit does); returns t. */
struct queue_tenant *queue_tenant_get(struct queue_tenant *t);

/* The request is over: drop its reference and set *t to NULL; a retired
 * tenant is freed with its last one.  A no-op when *t is NULL.  The
 * request's item must not be queued. */
void queue_tenant_put(struct queue_tenant **t);

/* What differs between two configs of one tenant: QUEUE_TENANT_CHANGED_*
 * bits (keys compare as a set). */
enum {
	QUEUE_TENANT_CHANGED_KEYS = 1 << 0,
	QUEUE_TENANT_CHANGED_DEFAULT_CLASS = 1 << 1,
	QUEUE_TENANT_CHANGED_MAX_CLASS = 1 << 2,
	QUEUE_TENANT_CHANGED_WEIGHT = 1 << 3,
	QUEUE_TENANT_CHANGED_REQUESTS_PER_S = 1 << 4,
	QUEUE_TENANT_CHANGED_BURST = 1 << 5,
	QUEUE_TENANT_CHANGED_TOKENS_PER_MIN = 1 << 6,
	QUEUE_TENANT_CHANGED_COUNT = 7
};
unsigned queue_tenant_changes(const struct conf_tenant *a, const struct conf_tenant *b);

/* The config field a QUEUE_TENANT_CHANGED_* bit stands for ("keys", "weight"...). */
const char *queue_tenant_change_name(unsigned bit);

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
