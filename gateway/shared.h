/*
 * shared.h - shared limits: the Redis side of the tenants' leases.
 *
 * With a shared_limits section, every limited tenant's buckets are leases
 * of global buckets kept in Redis (queue/lease.h has the policy).  This
 * file owns the one hiredis connection, on the server's loop, and the
 * renewals: one EVALSHA per tenant and renewal, never on a request's path.
 * A renewal that takes longer than GW_SHARED_TIMEOUT_MS, a refused
 * connect, an error answer or a dropped connection all count as Redis
 * being down: every tenant falls back to local limits, one line is logged,
 * and the connection is tried again with a backoff; once the script is
 * loaded again the tenants hold leases again (another line).
 *
 * Lifetimes.  gw_server owns one gw_shared from init to stop, configured
 * or not.  A renewal in flight holds a reference to its tenant
 * (queue_tenant_get), so a tenant a reload removes lives until the answer
 * (or the connection's end) comes.
 */
#ifndef SLUICE_GATEWAY_SHARED_H
#define SLUICE_GATEWAY_SHARED_H

#include <stdbool.h>
#include <stdint.h>

#include "queue/tenant.h"

#define GW_SHARED_TIMEOUT_MS 250	/* an answer later than this is a failure */

struct gw_server;

/* Create srv->shared and, with shared_limits configured, start connecting
 * (tenants are on local limits until Redis answers).  Returns 0 or -ENOMEM. */
int gw__shared_init(struct gw_server *srv);

/* After a reload's tenants commit and srv->conf is the new snapshot: follow
 * a changed shared_limits section (reconnect when the address or prefix
 * changed), and put every tenant under the current mode with its new rates. */
void gw__shared_reload(struct gw_server *srv);

/* Once a second: renew the leases that are due. */
void gw__shared_tick(struct gw_server *srv);

/* After an admission charged t: start a renewal if its lease runs low.
 * Never waits; a no-op without shared limits or while Redis is down. */
void gw__shared_poke(struct gw_server *srv, struct queue_tenant *t);

/* For /metrics: whether shared limits are configured, up, and the seconds
 * spent on local limits so far. */
bool gw__shared_stats(const struct gw_server *srv, bool *up, double *fallback_s);

/* Stop: drop the connection (renewals in flight release their tenants)
 * and close the handles; srv->shared is freed in their close callbacks. */
void gw__shared_close(struct gw_server *srv);

#endif
