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
 * Slots across replicas: `max_inflight` in the config is the backend's
 * total, whatever the number of sluice replicas in front of it.  With N
 * replicas (struct backend_set.replicas) each takes an equal share,
 * floor(total / N) but never fewer than one (backend_slots_share()), so
 * that N replicas together never send a backend more than its total while
 * N <= total.  Rounding down leaves at most N - 1 slots of each backend
 * unused; rounding up would overfill it (4 slots over 3 replicas: 2 + 2 + 2
 * = 6 in flight), which is the very queue inside the server this ledger
 * exists to prevent.  A change of N applies to every backend at once.
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
#include <sys/socket.h>

#include "backends/adapt.h"
#include "conf/conf.h"

struct backend_conn;
struct backend_pool;

#define BACKEND_MAGIC 0x424b4e44u	/* "BKND" */

/* The outcome of one active health check (a bounded set: metric labels). */
enum backend_check_result {
	BACKEND_CHECK_OK = 0,		/* a 2xx response head */
	BACKEND_CHECK_FAILED,		/* another status, a reset, a close, a bad response */
	BACKEND_CHECK_TIMEOUT,		/* no response head within timeout_ms */
	BACKEND_CHECK_REFUSED,		/* the connect failed */
	BACKEND_CHECK_COUNT
};

/* What the active health checks made of a backend (backends/health.h). */
struct backend_health {
	bool down;			/* taken out by consecutive failed checks */
	uint32_t fails, passes;		/* consecutive failed / passed checks */
	int last_result;		/* enum backend_check_result; -1 before the first check */
	uint16_t last_status;		/* HTTP status of the last check, 0 when none came */
	uint64_t last_ms;		/* when the last check ended */
	uint64_t checks[BACKEND_CHECK_COUNT];	/* checks by result, for the metrics */
};

/* Passive outlier ejection on real requests (backends/outlier.h). */
struct backend_outlier {
	uint32_t consecutive;		/* failed requests in a row */
	uint32_t level;			/* the next ejection lasts eject_ms << level */
	uint64_t until_ms;		/* ejected before this time */
	bool ejected;			/* an ejection whose end is not yet reported */
	uint64_t ejections;		/* ejections so far, for the metrics */
};

struct backend;
/* Told that b was retired; see backend.retire_cb. */
typedef void (*backend_retire_cb)(struct backend *b, void *arg);
#define BACKEND_NAME_MAX 64		/* "[v6 address]:port" */

/*
 * One backend, allocated on its own: the fleet changes (DNS discovery,
 * reloads), so a backend may leave its pool while requests still run on it.
 * It is then *retired*: out of the pool (never picked again, its slots no
 * longer counted), its idle connections closed, and freed by backends/ once
 * its last slot is given back and its last connection is closed.  Until
 * then every pointer a slot or a connection holds stays valid.
 */
struct backend {
	uint32_t magic;
	char name[BACKEND_NAME_MAX];	/* "10.0.0.5:8000": logs, labels, Host */
	struct sockaddr_storage sa;
	socklen_t salen;
	struct backend_pool *pool;	/* kept when retired: its slots were counted there */
	bool retired;
	unsigned total;			/* the config's max_inflight: the backend's slots, all replicas together */
	unsigned max_inflight;		/* this replica's share of them (of adapt.limit when adapting) */
	unsigned inflight;		/* slots held now */
	unsigned nconns;		/* open connections, idle or in use */
	uint64_t requests;		/* requests sent, for the metrics */
	uint64_t connects;		/* TCP connections opened */
	uint64_t connect_failures;
	struct backend_conn *idle;	/* idle keep-alive connections, most recent first */
	unsigned nidle;
	unsigned failures;		/* consecutive failed connects */
	uint64_t down_until_ms;		/* not picked before this time */
	char last_error[48];		/* why the last connect failed; "" while none has */
	uint64_t last_error_ms;
	uint64_t ramp_from_ms;		/* slow start: slots ramp up from here; 0 = none */
	uint64_t ramp_ms;		/* over this long */
	struct backend_health health;
	struct backend_outlier outlier;
	/* slots.adapt: the controller (its limit replaces `total` while on)
	 * and the gateway's poll of the backend's /metrics in flight
	 * (gateway/adapt.c; NULL: none). */
	struct backend_adapt adapt;
	void *adapt_poll;
	/* Whoever watches b between its own connections (the active health
	 * check's timer) is told when b is retired, from inside
	 * backend_pool_retire(), and must let go of b then: a retired backend
	 * is freed once its slots and connections are gone, whatever else
	 * still points at it.  NULL: nobody watches. */
	backend_retire_cb retire_cb;
	void *retire_arg;
};

#define BACKEND_POOL_MAGIC 0x504f4f4cu	/* "POOL" */
/* The index of a pool a reload removed. */
#define BACKEND_POOL_RETIRED SIZE_MAX

/*
 * One pool, allocated on its own: a reload may add, remove and reorder
 * pools, and a backend, a slot or a request record points at its pool for
 * as long as it lives.  A pool that a reload removes is *retired*: out of
 * backend_set.pools (index BACKEND_POOL_RETIRED), its members retired, its
 * config copied (the snapshot that held it is freed after the reload), and
 * freed once nothing refers to it: `refs` counts its backends, members or
 * retired, until they are freed, and the holds of backend_pool_hold().
 */
struct backend_pool {
	uint32_t magic;
	const struct conf_pool *cfg;	/* the running snapshot's; a retired pool's own copy */
	size_t index;			/* in conf.pools and backend_set.pools; BACKEND_POOL_RETIRED */
	bool retired;
	unsigned refs;			/* backends pointing here, and holds */
	struct conf_pool *last;		/* a retired pool's copy of its config (what requests read) */
	struct backend_set *set;	/* a retired pool's set, whose list holds it */
	struct backend_pool *next_retired;	/* in backend_set.retired */
	struct backend **backends;	/* the members, in the order they joined */
	size_t nbackends, cap;
	unsigned replicas;		/* the set's, for the members that join */
	unsigned slots;			/* sum of the members' max_inflight (this replica's shares) */
	unsigned inflight;		/* slots held on this pool, retired backends included */
	size_t rotor;			/* where the next pick starts: ties go round */
};

struct backend_set {
	struct backend_pool **pools;	/* same order as conf.pools */
	size_t npools;
	struct backend_pool *retired;	/* removed pools still referred to */
	unsigned replicas;		/* sluice replicas sharing every backend (>= 1) */
};

/* The slots one of `replicas` replicas may send a backend with `total`
 * slots: floor(total / replicas), at least 1 (see the top of this file).
 * replicas 0 counts as 1. */
static inline unsigned backend_slots_share(unsigned total, unsigned replicas)
{
	unsigned n = replicas > 1 ? total / replicas : total;
	return n > 0 ? n : 1;
}

/*
 * A reload's pools, prepared before anything changes (backend_set_prepare)
 * and committed after (backend_set_commit), or discarded.  from[i] is the
 * index before the reload of the i-th pool of the new snapshot, or
 * CONF_POOL_NEW (conf_pool_map()).
 */
struct backend_set_next {
	struct backend_pool **v;	/* [n]: the pools after the reload */
	size_t n;
	struct backend_pool **fresh;	/* [n]: the new pools (NULL for kept ones) */
	struct conf_pool **last;	/* [npools before]: the config copies of removed pools */
	size_t nold;
};

/* Build the pools of `c` with their static backends, their slots split
 * over c->replicas.count replicas.  Returns 0 or -ENOMEM.  Free with
 * backend_set_finish(). */
int backend_set_init(struct backend_set *s, const struct conf *c);

/* Split every backend's slots over n replicas (0 counts as 1) from now
 * on: each member's max_inflight and each pool's slots change at once.  A
 * backend left holding more slots than its new share takes no new request
 * until it is under it; nothing in flight is touched.  The caller tells
 * the queues (gw__slot_sync_pools()). */
void backend_set_replicas(struct backend_set *s, unsigned n);

/* Point the pools at a new snapshot with the same pools, in the same order
 * (the caller checked).  Membership is not touched: see backend_pool_add()
 * and backend_pool_retire(). */
void backend_set_reconfigure(struct backend_set *s, const struct conf *c);

/*
 * A reload to snapshot c that may add, remove and reorder pools (matched by
 * name: from[i], see struct backend_set_next).  Prepare allocates the new
 * pool array, the new pools (with no members) and the config copies of the
 * removed pools; it returns 0 or -ENOMEM and changes nothing.  Commit
 * cannot fail: kept pools keep their members and counts under their new
 * index, new pools join empty (gateway/fleet.c gives them members), and
 * removed pools are retired with all their members (requests in flight on
 * them finish).  Discard frees what prepare made when the reload does not
 * happen.
 */
int backend_set_prepare(const struct backend_set *s, const struct conf *c, const size_t *from,
			struct backend_set_next *next);
void backend_set_commit(struct backend_set *s, const struct conf *c, struct backend_set_next *next);
void backend_set_discard(struct backend_set_next *next);

/* Keep p (retired or not) alive until backend_pool_put(); returns p. */
struct backend_pool *backend_pool_hold(struct backend_pool *p);
/* Let go of a hold; *pp becomes NULL (NULL: a no-op).  The last one of a
 * retired pool frees it. */
void backend_pool_put(struct backend_pool **pp);

/* Free the pools and their members, retired pools included.  Every
 * connection must have been closed and every slot given back before (the
 * loop has ended). */
void backend_set_finish(struct backend_set *s);

/* The member of p at this address, or NULL. */
struct backend *backend_pool_find(const struct backend_pool *p, const struct sockaddr *sa);

/*
 * A new member of p at `sa`, with `total` slots across the replicas (the
 * config's max_inflight), of which it takes its share (p->replicas),
 * ramping up from 1 to all of the share over ramp_ms from now_ms (0: at
 * once).  Returns 0 and sets *out (may be NULL), or -ENOMEM (nothing
 * changed).
 */
int backend_pool_add(struct backend_pool *p, const struct sockaddr *sa, unsigned total,
		     uint64_t now_ms, uint64_t ramp_ms, struct backend **out);

/* Change a member's total slots (a reload); it takes its share of them. */
void backend_set_slots(struct backend *b, unsigned total);

/* b's share follows its controller: backend_slots_share() of adapt.limit
 * while adapt.on, of its total otherwise (after a controller step, a start
 * or a stop).  The pool's slots change with it; a backend left holding more
 * than its new share takes no new request until it is under it.  The caller
 * tells the queues (gw__slot_sync_pools()). */
void backend_slots_apply(struct backend *b);

/*
 * Take b out of its pool: never picked again, its slots no longer counted,
 * its idle connections closed, its watcher told (retire_cb).  Requests in
 * flight on it finish; it is freed when the last of them and of its
 * connections is gone.
 */
void backend_pool_retire(struct backend *b);

/*
 * The backend of `p` that should take the next request: the one with the
 * fewest requests in flight (relative to its slots) among the healthy ones
 * with a free slot, ties taken in turn, or NULL when there is none.
 */
struct backend *backend_pool_pick(struct backend_pool *p, uint64_t now_ms);

/* Would one slot of b given back now be one that backend_pool_pick() can
 * hand out?  Not while b is down or retired, nor while it holds more than
 * its slots (adaptive slots, a reload or slow start lowered them). */
bool backend_frees_on_release(const struct backend *b, uint64_t now_ms);

/*
 * Passive health: a failed connect marks the backend down for a while
 * (1 s, doubling with each consecutive failure up to 30 s); a successful
 * one marks it up.
 */
void backend_mark_failed(struct backend *b, uint64_t now_ms);
/* Remember why a connect failed (shown by /status and `sluice top`). */
void backend_note_error(struct backend *b, const char *why, uint64_t now_ms);
void backend_mark_ok(struct backend *b);

/* May b be picked: not marked down after failed connects, not taken out by
 * its health checks, not ejected as an outlier. */
static inline bool backend_is_up(const struct backend *b, uint64_t now_ms)
{
	return now_ms >= b->down_until_ms && !b->health.down && now_ms >= b->outlier.until_ms;
}

/* Does pool p have a healthy backend (busy or not)? */
bool backend_pool_has_up(const struct backend_pool *p, uint64_t now_ms);

/* Take / give back one slot of `b`.  Taking a slot that is not free is a
 * bug.  Giving back the last slot of a retired backend with no connection
 * left frees it. */
void backend_acquire(struct backend *b);
void backend_release(struct backend *b);

/* A connection to b was opened / is gone (backends/upstream.c): the last
 * one of a retired backend with no slot held frees it. */
void backend__conn_opened(struct backend *b);
void backend__conn_gone(struct backend *b);

#endif
