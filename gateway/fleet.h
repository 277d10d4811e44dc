/*
 * fleet.h - which backends each pool has, as the fleet changes.
 *
 * A pool's members come from one of two sources:
 *
 *   backends:   its static list, applied at start and again at every
 *               reload;
 *   discovery:  every A and AAAA record of a DNS name (a Kubernetes
 *               headless Service lists one per ready pod), looked up again
 *               every refresh_ms through c-ares, on the loop, never
 *               blocking it.
 *
 * A backend that appears joins its pool (its slots ramp up over the pool's
 * slow_start_ms, except for the members found at start); one that vanishes
 * is retired (backends/backend.h): no new requests, and those in flight
 * finish.  A lookup that fails (timeout, SERVFAIL, NXDOMAIN, no records)
 * keeps the last set: an empty answer during a DNS outage must not empty a
 * pool.  Every change is logged, one line each; lookups are counted.
 *
 * The sluice replicas are counted the same way when the config says
 * `replicas: { dns: HOST:PORT }`: N is the number of addresses HOST lists,
 * and every backend's slots are split over N (backends/backend.h) as soon
 * as N changes, logged once per change.
 *
 * Why c-ares: discovery must ask a given server on a given port (the
 * cluster's DNS, or a test's dnsmasq on an ephemeral port), which
 * getaddrinfo() on libuv's thread pool cannot do, and a slow resolver must
 * not hold the thread pool that the access log's file writes use.
 */
#ifndef SLUICE_GATEWAY_FLEET_H
#define SLUICE_GATEWAY_FLEET_H

#include <stdint.h>

#include "conf/conf.h"
#include "gateway/buf.h"

struct gw_server;
struct gw_fleet;
struct fleet_pool;

/* Per pool, for /metrics and /status. */
struct gw_fleet_stats {
	uint64_t lookups_ok, lookups_failed;
	const char *last_error;		/* of the latest lookup; NULL when it succeeded */
};

/*
 * Start discovery for the pools of srv->conf that have it (the first
 * lookups go out as soon as the loop runs).  Returns 0 or -ENOMEM; a
 * resolver that cannot be set up is logged, and discovery waits for a
 * reload.
 */
int gw__fleet_init(struct gw_server *srv);

/*
 * The per-pool discovery state of a reload to snapshot c, whose pools may
 * be added, removed and reordered (from[i]: conf_pool_map()).  Prepare
 * allocates before anything changes (0 or -ENOMEM); gw__fleet_reload()
 * takes it; discard frees it when the reload does not happen.
 */
struct gw_fleet_next {
	struct fleet_pool **v;		/* [n]: the pools' states after the reload */
	struct fleet_pool **fresh;	/* [n]: the new ones (NULL for kept ones) */
	size_t n;
};
int gw__fleet_prepare(const struct gw_server *srv, const struct conf *c, const size_t *from,
		      struct gw_fleet_next *next);
void gw__fleet_discard(struct gw_fleet_next *next);

/*
 * A reload is about to commit snapshot c (srv->conf is still the old one;
 * srv->backends has the new pools already, backend_set_commit()): kept
 * pools keep their discovery state (counters, last answer, timer) under
 * their new index, removed ones stop (an answer still out is dropped), new
 * ones start.  Make the static pools' members match their lists (logging
 * each change; a new pool's take all their slots at once), and restart
 * discovery where a pool's name, port or refresh changed, or the resolvers
 * did, or the pool is new.  The caller tells the queues the new slot
 * counts.  Never fails: a backend that cannot be added for want of memory
 * is logged and left out until the next reload or lookup.
 */
void gw__fleet_reload(struct gw_server *srv, const struct conf *c, const size_t *from, struct gw_fleet_next *next);

/* Stop discovery and close its handles (at the end of a drain). */
void gw__fleet_close(struct gw_server *srv);

/* Free what is left once the loop has ended.  NULL-safe. */
void gw__fleet_destroy(struct gw_fleet **fp);

/* The counters of the lookup that counts the replicas (replicas: { dns }),
 * or NULL when N comes from replicas.count. */
const struct gw_fleet_stats *gw__fleet_replica_stats(const struct gw_server *srv);

/* Pool p's discovery counters, or NULL when it has none. */
const struct gw_fleet_stats *gw__fleet_stats(const struct gw_server *srv, size_t p);

#endif
