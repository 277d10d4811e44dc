/*
 * server.h - the gateway process: one event loop, two listeners, the pools.
 *
 * One gw_server lives for the whole process and owns the config snapshot,
 * the backend pools, the listeners, the signal handles, every client
 * connection (a list, for draining) and the class wait queues.  Everything
 * runs on its loop's thread; nothing here is locked.
 *
 * Shutdown (SIGTERM or SIGINT) is a drain: the proxy listener closes, idle
 * client connections close, queued and in-flight requests go on and their
 * connections close once answered.  The admin listener stays until the end
 * (/readyz answers 503 meanwhile).  The loop ends when the last connection
 * is gone, or after timeouts.drain_ms, when whatever is left is closed.
 */
#ifndef SLUICE_GATEWAY_SERVER_H
#define SLUICE_GATEWAY_SERVER_H

#include <stdbool.h>
#include <uv.h>

#include "backends/backend.h"
#include "conf/conf.h"
#include "gateway/account.h"
#include "gateway/defer.h"
#include "gateway/http.h"
#include "gateway/ids.h"
#include "gateway/metrics.h"
#include "gateway/preempt.h"
#include "gateway/watch.h"
#include "queue/queue.h"
#include "queue/tenant.h"

#define GW_SERVER_MAGIC 0x53525652u	/* "SRVR" */
#define GW_READ_BUF_SIZE (64 * 1024)

struct gw_conn;
struct gw_adapt;
struct gw_fleet;
struct gw_shared;

struct gw_server {
	uint32_t magic;
	uv_loop_t *loop;
	struct conf *conf;
	struct backend_set backends;
	struct gw_fleet *fleet;			/* which backends each pool has (fleet.h) */
	struct gw_shared *shared;		/* tenants' buckets shared through Redis (shared.h) */
	struct gw_adapt *adapt;			/* backends' adaptive slots (adapt.h) */
	struct queue_tenants tenants;
	struct queue queue;			/* class queues (queue/) */
	uv_timer_t queue_timer;			/* fires at the earliest queue deadline */
	struct gw_defer_list defer;		/* work run from the loop (defer.h) */
	struct gw_defer kick;			/* start queued requests on free slots */
	struct gw_preempt preempt;		/* ending opportunistic work for interactive (preempt.h) */
	uint8_t *pool_view;			/* [npools] QUEUE_POOL_* bits, per admission */
	struct backend **pool_pick;		/* [npools] the backend a start would take */
	struct gw_http_limits req_limits;	/* client requests (from conf.limits) */
	struct gw_http_limits resp_limits;	/* upstream responses */
	uv_tcp_t listener;
	uv_tcp_t admin_listener;
	uv_signal_t sig_term, sig_int, sig_hup;
	struct gw_watch watch;			/* --watch: reload when the file changes */
	uint64_t generation;			/* 1 at start, +1 per applied reload */
	uv_timer_t tick;			/* once a second: idle upstream sweep */
	uv_timer_t drain_timer;
	struct gw_conn *conns;			/* every open client connection */
	struct gw_slot *held[CONF_CLASS_COUNT];	/* the slots held, per class (slot.h) */
	unsigned nconns;
	bool draining;
	bool stopped;
	struct gw_ids ids;
	struct gw_account account;
	struct gw_metrics metrics;
	char readbuf[GW_READ_BUF_SIZE];		/* every read lands here; see conn.c */
};

/*
 * Bind the listeners of `conf` on `loop` and start serving.  The server takes
 * ownership of `conf` (freed by gw_server_finish()).  Returns 0 or a negative
 * uv error (the address is logged); on failure nothing is left running.
 */
int gw_server_init(struct gw_server *srv, uv_loop_t *loop, struct conf *conf);

/*
 * Reload the config file (what SIGHUP does).  The new file is loaded and
 * validated; if it is invalid, or changes what cannot change in place (the
 * listeners, the set of classes, metrics.tenant_histograms), it is refused
 * with a logged reason and the running config stays.  Otherwise it replaces
 * the running snapshot without dropping a connection.  Backends may come and
 * go (fleet.h).  Pools may be added, removed, reordered and change slice:
 * matched by name, a kept pool keeps its state, a removed one is retired
 * (backend.h) and its queued requests that have no pool left are answered
 * 503 no_backend; one line per pool says what changed.  Tenants may be added, removed and changed: one line per
 * tenant says what changed, and the requests of a removed tenant, queued or
 * in flight, finish (queue/tenant.h).  Returns 0 when applied.
 */
int gw_server_reload(struct gw_server *srv);

/* Start a drain (what SIGTERM does). */
void gw_server_drain(struct gw_server *srv);

/* Called by conn.c when a connection is gone; ends a drain when it was the last. */
void gw_server_conn_gone(struct gw_server *srv);

/* Free what the server owns once its loop has ended. */
void gw_server_finish(struct gw_server *srv);

/* Milliseconds on the loop's monotonic clock. */
static inline uint64_t gw_now_ms(const struct gw_server *srv) { return uv_now(srv->loop); }

#endif
