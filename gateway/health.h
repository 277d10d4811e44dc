/*
 * health.h - backend health as the gateway runs it: the active checks, the
 * outcomes of real requests for outlier ejection, and the log lines.
 *
 * The verdicts live in backends/ (health.h, outlier.h), which knows no
 * socket and no log; this file owns the sockets, the timers and the words.
 *
 * Active checks.  Every backend of a pool with a `health` section has one
 * probe: a timer and, while a check runs, a connection of its own (never
 * one of the keep-alive pool: a check must not wait behind a request, and
 * a request must not inherit a check's connection).  A check connects,
 * sends `GET <path>` with `connection: close`, and takes its verdict from
 * the response head alone (2xx: ok); the body is never read, the
 * connection is closed at once, and the head is bounded by the parser's
 * limits.  A refused connect is `refused`, no head within timeout_ms is
 * `timeout`, anything else (another status, a reset, a close, an invalid
 * head) is `failed`.  Checks repeat every interval_ms, from the start of
 * one to the start of the next, jittered by +-10% so that many gateways do
 * not check in step; a backend's first check comes within a tenth of an
 * interval of its probe starting.  A check that connects also ends a
 * passive mark (backend_mark_failed() after refused connects), so that a
 * restarted backend is not kept out by the marks' back-off.
 *
 * Lifetime.  A probe points at its backend, and a backend may be retired
 * at any time (fleet.h).  While a check runs, its connection is counted in
 * the backend's nconns (backend_conn_create), which keeps the backend
 * alive; between checks the probe is the backend's retire_cb, called from
 * backend_pool_retire(), and lets go of it then: the connection closes, the
 * timer closes, and the probe is freed once libuv has given back both the
 * timer and a connect still in flight.  No probe outlives the loop:
 * gw__health_stop() lets go of every backend at the end of a drain.
 */
#ifndef SLUICE_GATEWAY_HEALTH_H
#define SLUICE_GATEWAY_HEALTH_H

#include <stdbool.h>

struct backend;
struct gw_server;

/*
 * Give every member of a pool with a health section a probe, and take it
 * away from the members of a pool without one (their verdict is forgotten:
 * they are up).  Run at start, after a reload, and on the server's tick, so
 * that a backend that joins by any path is checked within a second.
 */
void gw__health_sync(struct gw_server *srv);

/* Stop every probe (the end of a drain); their handles close. */
void gw__health_stop(struct gw_server *srv);

/*
 * The outcome of one request on b, for outlier ejection: ok, or a failure
 * (a 5xx response, a reset, a timeout).  Logs an ejection.  Call it before
 * the request's slot is given back, once per request that reached b.
 */
void gw__health_outcome(struct gw_server *srv, struct backend *b, bool ok);

/* Log the ejections that ended (from the tick). */
void gw__health_tick(struct gw_server *srv);

/* Can some class be served: does a pool of some class have a backend up?
 * (What /readyz answers, with the drain.) */
bool gw__health_ready(const struct gw_server *srv);

#endif
