/*
 * backend.h - pools, backends and their slots.
 *
 * A backend is one inference server; a pool is the backends of one GPU
 * slice (reserved or elastic).  sluice never sends a backend more than
 * `max_inflight` concurrent requests: each request in flight holds one slot,
 * taken with backend_acquire() and given back with backend_release().  The
 * queue therefore lives in the gateway, where priority applies, and not
 * inside the inference server.
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

/* Free the pools.  Idle connections must have been closed before
 * (backend_close_idle()), since closing them needs the event loop. */
void backend_set_finish(struct backend_set *s);

/*
 * The backend of `p` that should take the next request: the one with the
 * fewest requests in flight among those with a free slot, or NULL when every
 * slot of the pool is taken.
 */
struct backend *backend_pool_pick(struct backend_pool *p);

/* Take / give back one slot of `b`.  Taking a slot that is not free is a bug. */
void backend_acquire(struct backend *b);
void backend_release(struct backend *b);

static inline unsigned backend_pool_free(const struct backend_pool *p)
{
	return p->slots - p->inflight;
}

#endif
