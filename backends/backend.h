/*
 * backend.h - pools, backends and their slots.
 *
 * A backend is one inference server; a pool is the backends of one GPU
 * slice (reserved or elastic).  sluice never sends a backend more than
 * `max_inflight` concurrent requests: each request in flight holds one slot,
 * taken with backend_acquire() and given back with backend_release().  The
 * queue therefore lives in the gateway, where priority applies, and not
 * inside the inference server.  These counts are the slot ledger; the
 * gateway calls them only through its slot object (gateway/slot.h), which
 * also tells queue/ which class holds each slot.
 *
 * This folder knows nothing of tenants or classes: it answers "which backend
 * of pool P should take the next request" and keeps the counts.  The
 * snapshot it is built from (struct conf) must outlive it.
 */
#ifndef SLUICE_BACKENDS_BACKEND_H
#define SLUICE_BACKENDS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

struct backend_conn;
struct backend_pool;

struct backend {
	const struct conf_backend *cfg;
	struct backend_pool *pool;
	unsigned max_inflight;
	unsigned inflight;		/* slots held now */
	uint64_t requests;		/* requests sent, for the metrics */
	uint64_t connects;		/* TCP connections opened */
	uint64_t connect_failures;
	struct backend_conn *idle;	/* idle keep-alive connections, most recent first */
	unsigned nidle;
	unsigned failures;		/* consecutive failed connects */
	uint64_t down_until_ms;		/* not picked before this time */
};

struct backend_pool {
	const struct conf_pool *cfg;
	size_t index;			/* in conf.pools and backend_set.pools */
	struct backend *backends;
	size_t nbackends;
	unsigned slots;			/* sum of max_inflight */
	unsigned inflight;		/* sum of the backends' inflight */
};

struct backend_set {
	struct backend_pool *pools;	/* same order as conf.pools */
	size_t npools;
};

/* Build the pools of `c`.  Returns 0 or -ENOMEM.  Free with backend_set_finish(). */
int backend_set_init(struct backend_set *s, const struct conf *c);

/*
 * Point the pools at a new snapshot of the same shape (same pools and
 * backends, in the same order; the caller checked): max_inflight and the
 * informational fields may change.  Requests in flight keep their slots; a
 * backend whose max_inflight shrank below its inflight just takes no more
 * until enough finish.
 */
void backend_set_reconfigure(struct backend_set *s, const struct conf *c);

/* Free the pools.  Idle connections must have been closed before
 * (backend_close_idle()), since closing them needs the event loop. */
void backend_set_finish(struct backend_set *s);

/*
 * The backend of `p` that should take the next request: the one with the
 * fewest requests in flight (relative to its slots) among the healthy ones
 * with a free slot, or NULL when there is none.
 */
struct backend *backend_pool_pick(struct backend_pool *p, uint64_t now_ms);

/*
 * Passive health: a failed connect marks the backend down for a while
 * (1 s, doubling with each consecutive failure up to 30 s); a successful
 * one marks it up.
 */
void backend_mark_failed(struct backend *b, uint64_t now_ms);
void backend_mark_ok(struct backend *b);

static inline bool backend_is_up(const struct backend *b, uint64_t now_ms)
{
	return now_ms >= b->down_until_ms;
}

/* Does pool p have a healthy backend (busy or not)? */
bool backend_pool_has_up(const struct backend_pool *p, uint64_t now_ms);

/* Take / give back one slot of `b`.  Taking a slot that is not free is a bug. */
void backend_acquire(struct backend *b);
void backend_release(struct backend *b);

#endif
