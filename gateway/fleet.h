/*
 * fleet.h - which backends each pool has, as the fleet changes.
 *
 * A pool's members come from its static `backends:` list, applied at start
 * and again at every reload.  A backend the new list adds joins (its slots
 * ramp up over the pool's slow_start_ms); one it drops is retired
 * (backends/backend.h): no new requests, and its requests in flight
 * finish.  Every change is logged, one line each.
 */
#ifndef SLUICE_GATEWAY_FLEET_H
#define SLUICE_GATEWAY_FLEET_H

#include "conf/conf.h"

struct gw_server;

/* Make every pool's members match the static lists of c (the server's
 * running snapshot, or the one a reload is about to commit).  Logs what
 * changed when `log` is set.  Never fails: a backend that cannot be added
 * for want of memory is logged and left out until the next reload. */
void gw__fleet_apply(struct gw_server *srv, const struct conf *c, bool log);

#endif
