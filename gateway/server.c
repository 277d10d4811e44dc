/*
 * server.c - listeners, signals, the periodic tick and the drain; see server.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/upstream.h"
#include "gateway/adapt.h"
#include "gateway/conn.h"
#include "gateway/dispatch.h"
#include "gateway/fleet.h"
#include "gateway/health.h"
#include "gateway/log.h"
#include "gateway/preempt.h"
#include "gateway/server.h"
#include "gateway/shared.h"
#include "gateway/slot.h"

/* Upstream responses: heads are small; anything larger is a broken backend. */
#define RESP_MAX_HEADER_BYTES (64 * 1024)
#define RESP_MAX_HEADERS 256
#define LISTEN_BACKLOG 4096

static struct gw_server *server_from(void *data)
{
	struct gw_server *srv = data;
	if (srv == NULL || srv->magic != GW_SERVER_MAGIC)
		abort();
	return srv;
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct gw_server *srv = server_from(listener->data);
	if (status < 0) {
		gw_warn("accept: %s", uv_strerror(status));
		return;
	}
	gw__conn_accept(srv, listener, listener == (uv_stream_t *)&srv->admin_listener);
}

static void on_tick(uv_timer_t *t)
{
	struct gw_server *srv = server_from(t->data);
	backend_set_close_idle(&srv->backends, gw_now_ms(srv), srv->conf->timeouts.upstream_idle_ms);
	gw__account_tick(&srv->account, gw_now_ms(srv));
	gw__health_tick(srv);
	gw__shared_tick(srv);
	/* A backend marked down comes back by the clock, not by an event: with
	 * requests queued and no slot in use, no release would ever kick them. */
	if (srv->queue.count > 0)
		gw__dispatch_kick(srv);
}

/* Everything is closed but the loop's own handles: stop. */
static void stop(struct gw_server *srv)
{
	if (srv->stopped)
		return;
	srv->stopped = true;
	gw_info("drained; exiting");
	uv_close((uv_handle_t *)&srv->admin_listener, NULL);
	backend_set_close_idle(&srv->backends, 0, 0);
	gw__fleet_close(srv);
	gw__health_stop(srv);
	gw__adapt_stop(srv);
	gw__shared_close(srv);
	uv_close((uv_handle_t *)&srv->tick, NULL);
	gw__dispatch_close(srv);
	gw_defer_list_close(&srv->defer);
	uv_close((uv_handle_t *)&srv->drain_timer, NULL);
	uv_close((uv_handle_t *)&srv->sig_term, NULL);
	uv_close((uv_handle_t *)&srv->sig_int, NULL);
	uv_close((uv_handle_t *)&srv->sig_hup, NULL);
	gw_watch_close(&srv->watch);
}

void gw_server_conn_gone(struct gw_server *srv)
{
	if (srv->draining && srv->nconns == 0)
		stop(srv);
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct gw_server *srv = server_from(t->data);
	gw_warn("drain timeout (%llu ms): closing %u connections still open",
		(unsigned long long)srv->conf->timeouts.drain_ms, srv->nconns);
	gw__dispatch_flush(srv);
	for (struct gw_conn *c = srv->conns, *next; c != NULL; c = next) {
		next = c->next;
		gw__conn_close(c);
	}
	if (srv->nconns == 0)
		stop(srv);
}

void gw_server_drain(struct gw_server *srv)
{
	if (srv->draining)
		return;
	srv->draining = true;
	gw_info("draining: %u connections open, %u requests queued", srv->nconns, srv->queue.count);
	/* The admin listener stays open until the end: /readyz answers 503
	 * while the drain lasts, so that a load balancer stops sending here,
	 * and /metrics shows the drain. */
	uv_close((uv_handle_t *)&srv->listener, NULL);
	/* Idle connections have nothing to finish; busy ones close after
	 * their current response (finish_request sees `draining`). */
	for (struct gw_conn *c = srv->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (c->state == GW_CONN_IDLE)
			gw__conn_close(c);
	}
	uv_timer_start(&srv->drain_timer, on_drain_timeout, srv->conf->timeouts.drain_ms, 0);
	if (srv->nconns == 0)
		stop(srv);
}

/* What a reload cannot change in place, or NULL when it can apply. */
static const char *incompatible(const struct conf *a, const struct conf *b)
{
	if (strcmp(a->listen.text, b->listen.text) != 0 || strcmp(a->admin_listen.text, b->admin_listen.text) != 0)
		return "listen and admin_listen cannot change without a restart";
	for (int k = 0; k < CONF_CLASS_COUNT; k++)
		if (a->classes[k].defined != b->classes[k].defined)
			return "classes cannot be added or removed without a restart";
	if (a->metrics.tenant_histograms != b->metrics.tenant_histograms)
		return "metrics.tenant_histograms cannot change without a restart";
	return NULL;
}

/* One line per pool the reload adds, removes or changes the slice of
 * (before the commit: the running config is still srv->conf).  Backends
 * joining and leaving kept pools are logged by fleet.c. */
static void log_pool_changes(const struct gw_server *srv, const struct conf *fresh, const size_t *from)
{
	const struct conf *old = srv->conf;
	bool kept[CONF_POOLS_MAX] = { false };
	for (size_t i = 0; i < fresh->npools; i++) {
		const struct conf_pool *cp = &fresh->pools[i];
		if (from[i] == CONF_POOL_NEW) {
			if (cp->discovery.dns_host != NULL)
				gw_info("reload: pool '%s' added (discovery of %s:%u)", cp->name, cp->discovery.dns_host,
					cp->discovery.dns_port);
			else
				gw_info("reload: pool '%s' added (%zu backend%s)", cp->name, cp->nbackends,
					cp->nbackends == 1 ? "" : "s");
			continue;
		}
		kept[from[i]] = true;
		const struct conf_pool *was = &old->pools[from[i]];
		if (was->slice != cp->slice)
			gw_info("reload: pool '%s' changed: slice %s -> %s", cp->name, conf_slice_words[was->slice],
				conf_slice_words[cp->slice]);
	}
	for (size_t i = 0; i < old->npools; i++) {
		if (kept[i])
			continue;
		unsigned n = srv->backends.pools[i]->inflight;
		if (n == 0)
			gw_info("reload: pool '%s' removed", old->pools[i].name);
		else
			gw_info("reload: pool '%s' removed (%u request%s in flight finish%s)", old->pools[i].name, n,
				n == 1 ? "" : "s", n == 1 ? "es" : "");
	}
}

/* One line per tenant the reload adds, removes or changes (before the
 * commit: the running config is still srv->conf). */
static void log_tenant_changes(const struct gw_server *srv, const struct queue_tenants_next *next)
{
	const struct queue_tenants *ts = &srv->tenants;
	const struct conf *fresh = next->conf;
	for (size_t i = 0; i < next->n; i++) {
		const struct queue_tenant *t = next->v[i];
		if (next->from[i] == QUEUE_TENANT_NEW) {
			gw_info("reload: tenant '%s' added", t->name);
			continue;
		}
		if (fresh->ntenants == 0)
			continue;	/* the open gateway's tenant has no config to compare */
		unsigned bits = queue_tenant_changes(t->cfg, &fresh->tenants[i]);
		char what[160] = "";
		size_t len = 0;
		for (unsigned b = 0; b < QUEUE_TENANT_CHANGED_COUNT && len < sizeof(what); b++)
			if (bits & (1u << b))
				len += (size_t)snprintf(what + len, sizeof(what) - len, "%s%s", len ? ", " : "",
							queue_tenant_change_name(1u << b));
		if (bits != 0)
			gw_info("reload: tenant '%s' changed: %s", t->name, what);
	}
	for (size_t g = 0; g < next->ngone; g++) {
		const struct queue_tenant *t = ts->v[next->gone[g]];
		if (t->refs == 0)
			gw_info("reload: tenant '%s' removed", t->name);
		else
			gw_info("reload: tenant '%s' removed (%u request%s still in flight finish%s)", t->name, t->refs,
				t->refs == 1 ? "" : "s", t->refs == 1 ? "es" : "");
	}
	const char *was = ts->anonymous && !ts->open ? ts->anonymous->name : NULL;
	const char *now = fresh->ntenants ? fresh->anonymous_tenant : NULL;
	if ((was == NULL) != (now == NULL) || (was != NULL && strcmp(was, now) != 0))
		gw_info("reload: anonymous_tenant %s%s%s", now ? "is now '" : "removed", now ? now : "", now ? "'" : "");
	if (fresh->ntenants == 0 && !ts->open)
		gw_warn("%s has no tenants: an open gateway, every request is served (as tenant 'anonymous', "
			"unlimited) whatever key it carries", fresh->path);
}

/* What a reload allocates for pools that may be added, removed and
 * reordered, before anything changes. */
struct pools_next {
	struct backend_set_next backends;
	struct gw_fleet_next fleet;
	struct queue_pools_next queue;
	struct gw_account_pools account;
	uint8_t *view;
	struct backend **pick;
};

static void pools_discard(struct pools_next *n)
{
	backend_set_discard(&n->backends);
	gw__fleet_discard(&n->fleet);
	queue_pools_discard(&n->queue);
	gw__account_pools_discard(&n->account);
	free(n->view);
	free(n->pick);
	n->view = NULL;
	n->pick = NULL;
}

static int pools_prepare(struct gw_server *srv, const struct conf *fresh, const size_t *from, size_t ntenants,
			 struct pools_next *n)
{
	size_t np = fresh->npools ? fresh->npools : 1;
	memset(n, 0, sizeof(*n));
	n->view = calloc(np, sizeof(*n->view));
	n->pick = calloc(np, sizeof(*n->pick));
	if (n->view == NULL || n->pick == NULL || backend_set_prepare(&srv->backends, fresh, from, &n->backends) < 0 ||
	    gw__fleet_prepare(srv, fresh, from, &n->fleet) < 0 || queue_pools_prepare(fresh->npools, &n->queue) < 0 ||
	    gw__account_pools_prepare(&srv->account, fresh->npools, ntenants, &n->account) < 0) {
		pools_discard(n);
		return -ENOMEM;
	}
	return 0;
}

int gw_server_reload(struct gw_server *srv)
{
	struct conf *fresh = NULL;
	struct conf_diag diag = { 0 };
	const char *why;
	int rc = conf_load(srv->conf->path, &fresh, &diag);
	for (size_t i = 0; i < diag.nwarn && i < CONF_DIAG_MAX; i++)
		gw_warn("reload: %s", diag.warn[i]);
	if (rc < 0) {
		size_t shown = diag.count < CONF_DIAG_MAX ? diag.count : CONF_DIAG_MAX;
		for (size_t i = 0; i < shown; i++)
			gw_warn("reload refused: %s", diag.msg[i]);
		gw_warn("reload refused: %zu errors; the running config (generation %llu) stays", diag.count,
			(unsigned long long)srv->generation);
		srv->metrics.reloads_failed++;
		return rc;
	}
	if ((why = incompatible(srv->conf, fresh)) != NULL) {
		gw_warn("reload refused: %s; the running config (generation %llu) stays", why,
			(unsigned long long)srv->generation);
		srv->metrics.reloads_failed++;
		conf_destroy(fresh);
		return -EINVAL;
	}
	/* Everything that can fail comes first and changes nothing; from the
	 * commit of the access log on, nothing can fail. */
	struct gw_alog log;
	bool reopen;
	struct queue_tenants_next tenants;
	struct gw_account_tenants accts;
	struct pools_next pools;
	size_t from[CONF_POOLS_MAX];
	conf_pool_map(srv->conf, fresh, from);
	rc = gw__account_prepare(&srv->account, fresh, srv->loop, &log, &reopen);
	if (rc == 0) {
		rc = queue_tenants_prepare(&srv->tenants, fresh, &tenants);
		if (rc == 0 && (rc = gw__account_tenants_prepare(&srv->account, tenants.from, tenants.n, &accts)) < 0)
			queue_tenants_discard(&tenants);
		if (rc == 0 && (rc = pools_prepare(srv, fresh, from, tenants.n, &pools)) < 0) {
			gw__account_tenants_discard(&accts);
			queue_tenants_discard(&tenants);
		}
		if (rc < 0 && reopen)
			gw__alog_close(&log);
	}
	if (rc < 0) {
		gw_warn("reload refused: %s; the running config stays", strerror(-rc));
		srv->metrics.reloads_failed++;
		conf_destroy(fresh);
		return rc;
	}
	/* The new log_format and log_level first, so that the lines that say
	 * what this reload changed are written the new way. */
	gw_log_configure((enum gw_log_level)fresh->log_level, fresh->log_json ? GW_LOG_JSON : GW_LOG_TEXT);
	log_pool_changes(srv, fresh, from);
	log_tenant_changes(srv, &tenants);
	gw__account_commit(&srv->account, fresh, &log, reopen);
	gw__account_tenants_commit(&srv->account, tenants.from, &accts);
	gw__account_pools_commit(&srv->account, from, &pools.account);
	queue_tenants_commit(&srv->tenants, &tenants, gw_now_ms(srv));
	/* Pools: backends/ first (removed pools retire their members, whose
	 * probes stop), then discovery and static members, then the queues. */
	backend_set_commit(&srv->backends, fresh, &pools.backends);
	free(srv->pool_view);
	free(srv->pool_pick);
	srv->pool_view = pools.view;
	srv->pool_pick = pools.pick;
	gw__fleet_reload(srv, fresh, from, &pools.fleet);
	gw__health_sync(srv);	/* checks follow the new health sections and members */
	struct queue_gone gone;
	queue_reconfigure_pools(&srv->queue, fresh, from, &pools.queue, &gone);
	/* A request in flight keeps the pools of its model, in the new
	 * indexes, should a failed connect start it again. */
	for (struct gw_conn *c = srv->conns; c != NULL; c = c->next)
		if (c->classified && !c->qi.queued)
			c->qi.pools = queue_pools_remap(c->qi.pools, from, fresh->npools);
	gw__slot_sync_pools(srv);
	gw__adapt_sync(srv);	/* slots follow the new slots sections (the queues know the pools now) */
	srv->req_limits = (struct gw_http_limits){
		.max_body_bytes = fresh->limits.max_body_bytes,
		.max_header_bytes = fresh->limits.max_header_bytes,
		.max_headers = fresh->limits.max_headers,
	};
	struct conf *old = srv->conf;
	srv->conf = fresh;
	conf_destroy(old);
	gw__shared_reload(srv);	/* tenants' new rates, and a changed shared_limits */
	srv->generation++;
	srv->metrics.reloads_ok++;
	gw_info("reloaded %s: generation %llu", fresh->path, (unsigned long long)srv->generation);
	/* Queued requests that lost every pool they could use, or whose model
	 * is no longer served by their class, are answered now, under the new
	 * config. */
	gw__dispatch_reconfigured(srv, gone.no_backend, QUEUE_R_NO_BACKEND);
	gw__dispatch_reconfigured(srv, gone.model_not_found, QUEUE_R_MODEL_NOT_FOUND);
	gw__dispatch_kick(srv);	/* slots may have grown, and models may have moved */
	gw__preempt_reloaded(srv);	/* preemption turned on judges the requests already queued */
	return 0;
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct gw_server *srv = server_from(s->data);
	gw_info("signal %d", signum);
	if (signum == SIGHUP) {
		if (!srv->draining)
			gw_server_reload(srv);
		return;
	}
	gw_server_drain(srv);
}

static int listen_on(struct gw_server *srv, uv_tcp_t *t, const struct conf_addr *a, const char *what)
{
	uv_tcp_init(srv->loop, t);
	t->data = srv;
	int rc = uv_tcp_bind(t, (const struct sockaddr *)&a->sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)t, LISTEN_BACKLOG, on_connection);
	if (rc < 0) {
		gw_error("cannot listen on %s (%s): %s", a->text, what, uv_strerror(rc));
		return rc;
	}
	/* Report the bound address: with port 0 the kernel chose it, and
	 * scripts and tests read it from this line. */
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char host[64] = "?";
	int port = 0;
	uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len);
	if (ss.ss_family == AF_INET6) {
		uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	} else {
		uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	gw_info("%s listening on %s:%d", what, host, port);
	return 0;
}

/* What the server owns besides handles: pools, tenants, queues, accounts. */
static int server_build(struct gw_server *srv)
{
	const struct conf *conf = srv->conf;
	size_t np = conf->npools ? conf->npools : 1;
	int rc = backend_set_init(&srv->backends, conf);
	if (rc == 0)
		rc = queue_tenants_init(&srv->tenants, conf, uv_now(srv->loop));
	if (rc == 0)
		rc = queue_init(&srv->queue, conf);
	if (rc == 0)
		rc = gw__account_init(&srv->account, conf, srv->tenants.n, srv->loop);
	if (rc < 0)
		return rc;
	srv->pool_view = calloc(np, sizeof(*srv->pool_view));
	srv->pool_pick = calloc(np, sizeof(*srv->pool_pick));
	if (srv->pool_view == NULL || srv->pool_pick == NULL)
		return -ENOMEM;
	rc = gw__fleet_init(srv);
	if (rc < 0)
		return rc;
	gw__slot_sync_pools(srv);
	if (conf->ntenants == 0)
		gw_warn("%s has no tenants: an open gateway, every request is served (as tenant 'anonymous', "
			"unlimited) whatever key it carries", conf->path);
	return 0;
}

static void server_free(struct gw_server *srv)
{
	gw__account_finish(&srv->account);
	queue_finish(&srv->queue);
	queue_tenants_finish(&srv->tenants);
	gw__fleet_destroy(&srv->fleet);
	backend_set_finish(&srv->backends);
	free(srv->pool_view);
	free(srv->pool_pick);
	srv->pool_view = NULL;
	srv->pool_pick = NULL;
}

int gw_server_init(struct gw_server *srv, uv_loop_t *loop, struct conf *conf)
{
	memset(srv, 0, sizeof(*srv));
	srv->magic = GW_SERVER_MAGIC;
	srv->loop = loop;
	srv->conf = conf;
	struct timespec start;
	clock_gettime(CLOCK_REALTIME, &start);
	srv->metrics.start_time = (double)start.tv_sec + (double)start.tv_nsec / 1e9;
	srv->req_limits = (struct gw_http_limits){
		.max_body_bytes = conf->limits.max_body_bytes,
		.max_header_bytes = conf->limits.max_header_bytes,
		.max_headers = conf->limits.max_headers,
	};
	srv->resp_limits = (struct gw_http_limits){
		.max_body_bytes = 0,
		.max_header_bytes = RESP_MAX_HEADER_BYTES,
		.max_headers = RESP_MAX_HEADERS,
	};
	gw_ids_init(&srv->ids);
	int rc = server_build(srv);
	if (rc < 0) {
		server_free(srv);
		return rc;
	}
	/* The signals are ours before the listeners log their addresses: a
	 * supervisor (or a test) that sends SIGHUP once it has read them must
	 * reach the handler, not the default action, which kills. */
	uv_signal_init(loop, &srv->sig_term);
	uv_signal_init(loop, &srv->sig_int);
	uv_signal_init(loop, &srv->sig_hup);
	srv->sig_term.data = srv->sig_int.data = srv->sig_hup.data = srv;
	uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
	uv_signal_start(&srv->sig_int, on_signal, SIGINT);
	uv_signal_start(&srv->sig_hup, on_signal, SIGHUP);
	rc = listen_on(srv, &srv->listener, &conf->listen, "proxy");
	if (rc == 0)
		rc = listen_on(srv, &srv->admin_listener, &conf->admin_listen, "admin");
	if (rc < 0) {
		uv_close((uv_handle_t *)&srv->sig_term, NULL);
		uv_close((uv_handle_t *)&srv->sig_int, NULL);
		uv_close((uv_handle_t *)&srv->sig_hup, NULL);
		uv_close((uv_handle_t *)&srv->listener, NULL);
		if (uv_is_active((uv_handle_t *)&srv->admin_listener) ||
		    srv->admin_listener.loop == loop)
			uv_close((uv_handle_t *)&srv->admin_listener, NULL);
		gw__fleet_close(srv);
		uv_run(loop, UV_RUN_DEFAULT);
		server_free(srv);
		return rc;
	}
	gw_defer_list_init(&srv->defer, loop);
	gw__dispatch_init(srv);
	if (gw__shared_init(srv) < 0)
		gw_warn("shared limits: out of memory; each replica applies its tenants' full limits");
	uv_timer_init(loop, &srv->tick);
	uv_timer_init(loop, &srv->drain_timer);
	srv->tick.data = srv->drain_timer.data = srv;
	uv_timer_start(&srv->tick, on_tick, 1000, 1000);
	uv_unref((uv_handle_t *)&srv->tick);
	srv->generation = 1;
	gw__health_sync(srv);
	if (gw__adapt_init(srv) < 0)
		gw_warn("slots: out of memory; every backend keeps its max_inflight");
	return 0;
}

void gw_server_finish(struct gw_server *srv)
{
	server_free(srv);
	conf_destroy(srv->conf);
	srv->conf = NULL;
	srv->magic = 0;
}
