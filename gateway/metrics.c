/*
 * metrics.c - Prometheus text exposition; see metrics.h.
 *
 * Everything is read at scrape time from the accounting (account.c), the
 * queues, the tenants and the pools; the request path only increments
 * integers and records histogram samples.  Histogram series with no sample
 * are left out, which keeps a scrape small when most (class, pool) pairs are
 * unused.  Label values are escaped even where the config already restricts
 * them, so that no future source of names can break the format.
 */
#include <dirent.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/health.h"
#include "gateway/errors.h"
#include "gateway/fleet.h"
#include "gateway/metrics.h"
#include "gateway/server.h"
#include "gateway/shared.h"
#include "queue/share.h"

#define NSTATUS 500

static int family(struct gw_buf *o, const char *name, const char *type, const char *help)
{
	return gw_buf_appendf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* labels: `name="value",...` pairs, value escaped; NULL name ends the list. */
static int labels(struct gw_buf *o, const char *const *kv)
{
	int rc = 0;
	for (int i = 0; kv[i] != NULL; i += 2) {
		rc |= gw_buf_appendf(o, "%s%s=\"", i ? "," : "", kv[i]);
		rc |= gw_buf_append_label(o, kv[i + 1]);
		rc |= gw_buf_append(o, "\"", 1);
	}
	return rc;
}

static int sample(struct gw_buf *o, const char *name, const char *const *kv, double v)
{
	int rc = gw_buf_appendf(o, "%s{", name);
	rc |= labels(o, kv);
	rc |= gw_buf_appendf(o, "} %.17g\n", v);
	return rc;
}

static int plain(struct gw_buf *o, const char *name, double v)
{
	return gw_buf_appendf(o, "%s %.17g\n", name, v);
}

/* One histogram series: cumulative `le` buckets in seconds, _sum, _count. */
/* A histogram whose samples are `unit` times its bounds (1e9: nanoseconds
 * exposed in seconds, 1: counts). */
static int histogram_of(struct gw_buf *o, const char *name, const char *const *kv, const struct gw_hist *h,
			const double *bounds, size_t nbounds, double unit)
{
	int rc = 0;
	if (gw_hist_count(h) == 0)
		return 0;
	for (size_t i = 0; i < nbounds; i++) {
		rc |= gw_buf_appendf(o, "%s_bucket{", name);
		rc |= labels(o, kv);
		rc |= gw_buf_appendf(o, ",le=\"%g\"} %llu\n", bounds[i],
				     (unsigned long long)gw_hist_count_le(h, (uint64_t)llround(bounds[i] * unit)));
	}
	rc |= gw_buf_appendf(o, "%s_bucket{", name);
	rc |= labels(o, kv);
	rc |= gw_buf_appendf(o, ",le=\"+Inf\"} %llu\n%s_sum{", (unsigned long long)gw_hist_count(h), name);
	rc |= labels(o, kv);
	rc |= gw_buf_appendf(o, "} %.9f\n%s_count{", gw_hist_sum(h) / unit, name);
	rc |= labels(o, kv);
	rc |= gw_buf_appendf(o, "} %llu\n", (unsigned long long)gw_hist_count(h));
	return rc;
}

static int histogram(struct gw_buf *o, const char *name, const char *const *kv, const struct gw_hist *h,
		     const struct conf_metrics *m)
{
	return histogram_of(o, name, kv, h, m->buckets, m->nbuckets, 1e9);
}

static const char *class_label(int k)
{
	return k < CONF_CLASS_COUNT ? conf_class_name((enum conf_class)k) : "none";
}

static const char *pool_label(const struct gw_server *srv, size_t p)
{
	return p < srv->backends.npools ? srv->backends.pools[p]->cfg->name : "none";
}

static const char *slice_label(const struct backend_pool *p)
{
	return conf_slice_words[p->cfg->slice];
}

/* The four (class, pool) histogram families. */
static int stage_histograms(const struct gw_server *srv, struct gw_buf *o)
{
	const struct gw_account *a = &srv->account;
	const struct conf_metrics *m = &srv->conf->metrics;
	static const struct {
		const char *name, *help;
		size_t member;		/* its histogram in struct gw_cp_hists */
	} fam[] = {
		{ "sluice_time_to_first_byte_seconds",
		  "First request byte read to first response byte written to the client.",
		  offsetof(struct gw_cp_hists, ttfb) },
		{ "sluice_upstream_duration_seconds", "Backend slot taken to backend response complete.",
		  offsetof(struct gw_cp_hists, upstream) },
		{ "sluice_request_duration_seconds", "First request byte read to response complete.",
		  offsetof(struct gw_cp_hists, request) },
		{ "sluice_time_to_first_token_seconds",
		  "First request byte read to the first SSE event carrying content written; "
		  "non-streamed: to response complete.",
		  offsetof(struct gw_cp_hists, ttft) },
		{ "sluice_inter_token_latency_seconds", "Gap between successive content events of a stream.",
		  offsetof(struct gw_cp_hists, itl) },
	};
	int rc = 0;
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		rc |= family(o, fam[f].name, "histogram", fam[f].help);
		for (int k = 0; k < CONF_CLASS_COUNT; k++) {
			for (size_t p = 0; p <= a->npools; p++) {
				const char *kv[] = { "class", class_label(k), "pool", pool_label(srv, p), NULL };
				const char *h = (const char *)&a->cp[gw__account_cp(a, k, p)] + fam[f].member;
				rc |= histogram(o, fam[f].name, kv, (const struct gw_hist *)(const void *)h, m);
			}
		}
	}
	/* Powers of two: below 64 the histogram's buckets are exact. */
	static const double token_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384 };
	rc |= family(o, "sluice_output_tokens", "histogram",
		     "Output tokens per request: usage.completion_tokens, else the stream's content events.");
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		for (size_t p = 0; p <= a->npools; p++) {
			const char *kv[] = { "class", class_label(k), "pool", pool_label(srv, p), NULL };
			rc |= histogram_of(o, "sluice_output_tokens", kv, &a->cp[gw__account_cp(a, k, p)].otokens,
					   token_bounds, sizeof(token_bounds) / sizeof(token_bounds[0]), 1);
		}
	}
	rc |= family(o, "sluice_queue_wait_seconds", "histogram",
		     "Request read to slot taken, or to leaving the queue otherwise, by outcome.");
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		for (int q = 0; q < GW_QOUT_COUNT; q++) {
			const char *kv[] = { "class", class_label(k), "outcome", gw_qout_names[q], NULL };
			rc |= histogram(o, "sluice_queue_wait_seconds", kv, &a->queue_wait[k][q], m);
		}
	}
	if (m->tenant_histograms) {
		rc |= family(o, "sluice_tenant_request_duration_seconds", "histogram",
			     "Request duration per tenant (metrics.tenant_histograms).");
		for (size_t t = 0; t < a->ntenants; t++) {
			for (int k = 0; k < CONF_CLASS_COUNT; k++) {
				const char *kv[] = { "tenant", srv->tenants.v[t]->cfg->name, "class", class_label(k), NULL };
				rc |= histogram(o, "sluice_tenant_request_duration_seconds", kv,
						&a->tenants[t].duration[k], m);
			}
		}
	}
	return rc;
}

static int request_counters(const struct gw_server *srv, struct gw_buf *o)
{
	const struct gw_account *a = &srv->account;
	int rc = family(o, "sluice_requests_total", "counter",
			"Requests answered on the proxy listener, by class, pool and HTTP status "
			"(pool \"none\": answered by sluice; class \"none\": refused before classification; "
			"code 499: the client left first).");
	for (int k = 0; k <= CONF_CLASS_COUNT; k++) {
		for (size_t p = 0; p <= a->npools; p++) {
			const uint64_t *row = &a->codes[((size_t)k * (a->npools + 1) + p) * NSTATUS];
			for (int s = 0; s < NSTATUS; s++) {
				if (row[s] == 0)
					continue;
				char code[8];
				snprintf(code, sizeof(code), "%d", s + 100);
				const char *kv[] = { "class", class_label(k), "pool", pool_label(srv, p), "code", code, NULL };
				rc |= sample(o, "sluice_requests_total", kv, (double)row[s]);
			}
		}
	}
	rc |= family(o, "sluice_rejections_total", "counter",
		     "Requests answered by sluice itself, by class and reason (the x-sluice-reject-reason).");
	for (int k = 0; k <= CONF_CLASS_COUNT; k++) {
		for (int r = 0; r < GW_R_COUNT; r++) {
			if (a->rejections[k][r] == 0)
				continue;
			const char *kv[] = { "class", class_label(k), "reason", gw_reason_info((enum gw_reason)r)->code, NULL };
			rc |= sample(o, "sluice_rejections_total", kv, (double)a->rejections[k][r]);
		}
	}
	return rc;
}

static int tenant_metrics(const struct gw_server *srv, struct gw_buf *o)
{
	const struct gw_account *a = &srv->account;
	uint64_t now = gw_now_ms(srv);
	int rc = family(o, "sluice_tenant_requests_total", "counter", "Requests per tenant and class.");
	for (size_t t = 0; t < a->ntenants; t++) {
		for (int k = 0; k < CONF_CLASS_COUNT; k++) {
			const char *kv[] = { "tenant", srv->tenants.v[t]->cfg->name, "class", class_label(k), NULL };
			rc |= sample(o, "sluice_tenant_requests_total", kv, (double)a->tenants[t].requests[k]);
		}
	}
	rc |= family(o, "sluice_tenant_rejections_total", "counter",
		     "Requests of the tenant answered by sluice itself, by reason (requests refused before "
		     "a tenant is known, such as 401s, are counted only in sluice_rejections_total).");
	for (size_t t = 0; t < a->ntenants; t++) {
		for (int r = 0; r < GW_R_COUNT; r++) {
			if (a->tenants[t].rejections[r] == 0)
				continue;
			const char *kv[] = { "tenant", srv->tenants.v[t]->cfg->name, "reason",
					     gw_reason_info((enum gw_reason)r)->code, NULL };
			rc |= sample(o, "sluice_tenant_rejections_total", kv, (double)a->tenants[t].rejections[r]);
		}
	}
	rc |= family(o, "sluice_tenant_tokens_total", "counter",
		     "LLM tokens per tenant: estimated at admission, and reported by the backends' usage.");
	for (size_t t = 0; t < a->ntenants; t++) {
		const char *est[] = { "tenant", srv->tenants.v[t]->cfg->name, "kind", "estimated", NULL };
		const char *rep[] = { "tenant", srv->tenants.v[t]->cfg->name, "kind", "reported", NULL };
		rc |= sample(o, "sluice_tenant_tokens_total", est, a->tenants[t].tokens_estimated);
		rc |= sample(o, "sluice_tenant_tokens_total", rep, a->tenants[t].tokens_reported);
	}
	rc |= family(o, "sluice_tenant_gpu_seconds_total", "counter",
		     "Time backend slots were held for the tenant (chargeback), by pool and slice.");
	for (size_t t = 0; t < a->ntenants; t++) {
		for (size_t p = 0; p < a->npools; p++) {
			const char *kv[] = { "tenant", srv->tenants.v[t]->cfg->name, "pool", pool_label(srv, p),
					     "slice", slice_label(srv->backends.pools[p]), NULL };
			rc |= sample(o, "sluice_tenant_gpu_seconds_total", kv, (double)a->tenants[t].gpu_ns[p] / 1e9);
		}
	}
	rc |= family(o, "sluice_tenant_slots_held", "gauge",
		     "Backend slots the tenant holds now (requests in flight), per class; its slot share "
		     "in a class with tenant_slot_share: fair.");
	for (size_t t = 0; t < srv->tenants.n; t++) {
		const struct queue_tenant *qt = srv->tenants.v[t];
		for (int k = 0; k < CONF_CLASS_COUNT; k++) {
			if (!srv->conf->classes[k].defined)
				continue;
			const char *kv[] = { "tenant", qt->cfg->name, "class", class_label(k), NULL };
			rc |= sample(o, "sluice_tenant_slots_held", kv,
				     (double)queue_share_held_total(qt, (enum conf_class)k));
		}
	}
	rc |= family(o, "sluice_tenant_bucket_level", "gauge",
		     "Units left in the tenant's token buckets (requests, tokens); negative while in debt.");
	for (size_t t = 0; t < srv->tenants.n; t++) {
		struct queue_tenant *qt = srv->tenants.v[t];
		if (!queue_bucket_unlimited(&qt->requests)) {
			const char *kv[] = { "tenant", qt->cfg->name, "kind", "requests", NULL };
			rc |= sample(o, "sluice_tenant_bucket_level", kv, queue_bucket_level(&qt->requests, now));
		}
		if (!queue_bucket_unlimited(&qt->tokens)) {
			const char *kv[] = { "tenant", qt->cfg->name, "kind", "tokens", NULL };
			rc |= sample(o, "sluice_tenant_bucket_level", kv, queue_bucket_level(&qt->tokens, now));
		}
	}
	return rc;
}

static int pool_metrics(const struct gw_server *srv, struct gw_buf *o)
{
	const struct backend_set *bs = &srv->backends;
	uint64_t now = gw_now_ms(srv);
	int rc = family(o, "sluice_replicas", "gauge",
			"sluice replicas that split every backend's max_inflight (replicas: count, or its DNS records).");
	rc |= plain(o, "sluice_replicas", bs->replicas);
	const struct gw_fleet_stats *rs = gw__fleet_replica_stats(srv);
	if (rs != NULL) {
		rc |= family(o, "sluice_replicas_lookups_total", "counter",
			     "DNS lookups that count the replicas, by result (a failed one keeps the last count).");
		const char *ok[] = { "result", "ok", NULL }, *failed[] = { "result", "failed", NULL };
		rc |= sample(o, "sluice_replicas_lookups_total", ok, (double)rs->lookups_ok);
		rc |= sample(o, "sluice_replicas_lookups_total", failed, (double)rs->lookups_failed);
	}
	rc |= family(o, "sluice_pool_slots", "gauge",
		     "Slots of the pool this replica may use (sum of its backends' sluice_backend_slots), by slice.");
	for (size_t i = 0; i < bs->npools; i++) {
		const char *kv[] = { "pool", bs->pools[i]->cfg->name, "slice", slice_label(bs->pools[i]), NULL };
		rc |= sample(o, "sluice_pool_slots", kv, bs->pools[i]->slots);
	}
	rc |= family(o, "sluice_discovery_lookups_total", "counter",
		     "DNS lookups of a pool's discovery name, by result (a failed one keeps the last set).");
	for (size_t i = 0; i < bs->npools; i++) {
		const struct gw_fleet_stats *fs = gw__fleet_stats(srv, i);
		if (fs == NULL)
			continue;
		const char *ok[] = { "pool", bs->pools[i]->cfg->name, "result", "ok", NULL };
		const char *failed[] = { "pool", bs->pools[i]->cfg->name, "result", "failed", NULL };
		rc |= sample(o, "sluice_discovery_lookups_total", ok, (double)fs->lookups_ok);
		rc |= sample(o, "sluice_discovery_lookups_total", failed, (double)fs->lookups_failed);
	}
	static const struct {
		const char *name, *type, *help;
	} per_backend[] = {
		{ "sluice_backend_inflight", "gauge", "Slots of the backend held by requests now." },
		{ "sluice_backend_up", "gauge",
		  "1 when the backend may be picked; 0 while out: failed health checks, outlier ejection, "
		  "or failed connects." },
		{ "sluice_backend_slots", "gauge",
		  "Slots of the backend this replica may use: its max_inflight (or, with slots.adapt, its "
		  "adapted limit) split over sluice_replicas." },
		{ "sluice_backend_requests_total", "counter", "Requests sent to the backend." },
		{ "sluice_backend_connections_total", "counter",
		  "TCP connections opened to the backend (for requests and for health checks)." },
		{ "sluice_backend_connect_failures_total", "counter", "Failed TCP connects to the backend." },
		{ "sluice_backend_idle_connections", "gauge", "Idle pooled connections to the backend." },
		{ "sluice_backend_ejections_total", "counter",
		  "Times the backend was ejected as an outlier (consecutive failed requests)." },
		{ "sluice_backend_slots_limit", "gauge",
		  "The backend's slots across all replicas: adapted to its load with slots.adapt, else its "
		  "max_inflight." },
	};
	for (size_t f = 0; f < sizeof(per_backend) / sizeof(per_backend[0]); f++) {
		rc |= family(o, per_backend[f].name, per_backend[f].type, per_backend[f].help);
		for (size_t i = 0; i < bs->npools; i++) {
			const struct backend_pool *p = bs->pools[i];
			for (size_t j = 0; j < p->nbackends; j++) {
				const struct backend *b = p->backends[j];
				double v[] = { b->inflight, backend_is_up(b, now), b->max_inflight, (double)b->requests,
					       (double)b->connects, (double)b->connect_failures, b->nidle,
					       (double)b->outlier.ejections,
					       b->adapt.on ? b->adapt.limit : b->total };
				const char *kv[] = { "pool", p->cfg->name, "backend", b->name, NULL };
				rc |= sample(o, per_backend[f].name, kv, v[f]);
			}
		}
	}
	rc |= family(o, "sluice_backend_health_checks_total", "counter",
		     "Active health checks of the backend, by result (ok, failed: a non-2xx status, a reset or "
		     "a bad answer; timeout; refused: the connect failed), for pools with health checks.");
	for (size_t i = 0; i < bs->npools; i++) {
		const struct backend_pool *p = bs->pools[i];
		if (!p->cfg->health.enabled)
			continue;
		for (size_t j = 0; j < p->nbackends; j++) {
			const struct backend *b = p->backends[j];
			for (int r = 0; r < BACKEND_CHECK_COUNT; r++) {
				const char *kv[] = { "pool", p->cfg->name, "backend", b->name, "result",
						     backend_check_result_name((enum backend_check_result)r), NULL };
				rc |= sample(o, "sluice_backend_health_checks_total", kv, (double)b->health.checks[r]);
			}
		}
	}
	return rc;
}

/*
 * The standard process_* families, read from /proc/self at scrape time: a
 * scrape every few seconds costs two small reads and a directory walk.  A
 * file that cannot be read leaves its families out rather than failing the
 * scrape.
 */
static int process_metrics(const struct gw_server *srv, struct gw_buf *o)
{
	int rc = 0;
	long page = sysconf(_SC_PAGESIZE), tick = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/self/stat", "r");
	if (f != NULL) {
		char buf[1024];
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* Fields after the command name, which may hold spaces and
		 * parentheses: start after its last ')'. */
		char *p = strrchr(buf, ')');
		unsigned long utime = 0, stime = 0;
		long rss = 0;
		if (p != NULL && tick > 0 &&
		    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
				  "%*u %*u %ld", &utime, &stime, &rss) == 3) {
			rc |= family(o, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
			rc |= plain(o, "process_cpu_seconds_total", (double)(utime + stime) / (double)tick);
			rc |= family(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
			rc |= plain(o, "process_resident_memory_bytes", (double)rss * (double)page);
		}
	}
	int nfds = 0;
	DIR *d = opendir("/proc/self/fd");
	if (d != NULL) {
		for (struct dirent *e; (e = readdir(d)) != NULL;)
			nfds += e->d_name[0] != '.';
		closedir(d);
		rc |= family(o, "process_open_fds", "gauge", "Number of open file descriptors.");
		rc |= plain(o, "process_open_fds", nfds - 1);	/* less the directory's own */
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rc |= family(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
		rc |= plain(o, "process_max_fds", rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
	}
	rc |= family(o, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
	rc |= plain(o, "process_start_time_seconds", srv->metrics.start_time);
	rc |= family(o, "sluice_build_info", "gauge", "Always 1; the version of sluice in its label.");
	const char *kv[] = { "version", SLUICE_VERSION, NULL };
	rc |= sample(o, "sluice_build_info", kv, 1);
	return rc;
}

int gw__metrics_render(const struct gw_server *srv, struct gw_buf *o)
{
	const struct gw_metrics *m = &srv->metrics;
	int rc = request_counters(srv, o);
	rc |= stage_histograms(srv, o);
	rc |= tenant_metrics(srv, o);
	rc |= pool_metrics(srv, o);
	rc |= process_metrics(srv, o);

	static const struct {
		const char *name, *help;
		bool bytes;
	} queue_fams[] = {
		{ "sluice_queue_depth", "Requests waiting for a slot, by class.", false },
		{ "sluice_queue_bytes", "Request body bytes held by queued requests, by class.", true },
	};
	for (size_t f = 0; f < 2; f++) {
		rc |= family(o, queue_fams[f].name, "gauge", queue_fams[f].help);
		for (int k = 0; k < CONF_CLASS_COUNT; k++) {
			if (!srv->conf->classes[k].defined)
				continue;
			const char *kv[] = { "class", class_label(k), NULL };
			const struct queue_class *qc = &srv->queue.classes[k];
			rc |= sample(o, queue_fams[f].name, kv, queue_fams[f].bytes ? (double)qc->bytes : qc->count);
		}
	}
	static const struct {
		const char *name, *type, *help;
	} plain_fams[] = {
		{ "sluice_connections_accepted_total", "counter", "Client connections accepted." },
		{ "sluice_connections_refused_total", "counter",
		  "Client connections closed at once because limits.max_connections was reached." },
		{ "sluice_connections_open", "gauge", "Client connections open now (both listeners)." },
		{ "sluice_client_aborts_total", "counter",
		  "Clients that disconnected while their request was queued or in flight." },
		{ "sluice_upstream_reused_total", "counter", "Requests sent on a pooled keep-alive upstream connection." },
		{ "sluice_upstream_retries_total", "counter",
		  "Requests resent because a pooled upstream connection was found closed." },
		{ "sluice_upstream_failovers_total", "counter",
		  "Requests started on another backend because theirs could not be connected to." },
		{ "sluice_upstream_truncated_total", "counter",
		  "Responses cut short because the backend failed mid-response." },
		{ "sluice_access_log_lines_total", "counter", "Access log lines written or waiting to be." },
		{ "sluice_access_log_dropped_total", "counter",
		  "Access log lines dropped because the log could not keep up or failed." },
		{ "sluice_config_generation", "gauge", "Generation of the config in use (1 = the one loaded at start)." },
	};
	double v[] = { (double)m->connections, (double)m->connections_refused, srv->nconns,
		       (double)m->client_aborts, (double)m->upstream_reused, (double)m->upstream_retries,
		       (double)m->upstream_failovers,
		       (double)m->upstream_truncated, (double)srv->account.alog.lines,
		       (double)srv->account.alog.dropped, (double)srv->generation };
	for (size_t f = 0; f < sizeof(plain_fams) / sizeof(plain_fams[0]); f++) {
		rc |= family(o, plain_fams[f].name, plain_fams[f].type, plain_fams[f].help);
		rc |= plain(o, plain_fams[f].name, v[f]);
	}
	rc |= family(o, "sluice_config_reloads_total", "counter",
		     "Config reloads (SIGHUP), applied or refused (invalid, or a change that needs a restart).");
	const char *ok[] = { "result", "ok", NULL }, *bad[] = { "result", "error", NULL };
	rc |= sample(o, "sluice_config_reloads_total", ok, (double)m->reloads_ok);
	rc |= sample(o, "sluice_config_reloads_total", bad, (double)m->reloads_failed);
	/* Preemptions themselves count as rejections, reason "preempted"
	 * (per class and per tenant); this says how often the rate bound
	 * stood in the way. */
	rc |= family(o, "sluice_preemptions_held_back_total", "counter",
		     "Looks (at admission, then every 10 ms while it waits) at which an interactive request about "
		     "to miss its deadline found an exchange to preempt but preemption.max_per_s held it back.");
	rc |= plain(o, "sluice_preemptions_held_back_total", (double)srv->preempt.limited);
	bool up;
	double fallback_s;
	if (gw__shared_stats(srv, &up, &fallback_s)) {
		rc |= family(o, "sluice_shared_limits_up", "gauge",
			     "1 while the tenants' buckets are shared through Redis, 0 while on local limits.");
		rc |= plain(o, "sluice_shared_limits_up", up ? 1 : 0);
		rc |= family(o, "sluice_shared_limits_fallback_seconds_total", "counter",
			     "Seconds spent on local limits because Redis was unreachable, slow or not yet reached.");
		rc |= plain(o, "sluice_shared_limits_fallback_seconds_total", fallback_s);
	}
	return rc == 0 ? 0 : -1;
}
