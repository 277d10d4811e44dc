/*
 * admin.c - admin endpoints; see admin.h.
 *
 * The admin listener shares the client connection code (parsing, limits,
 * timeouts); only the handling of a complete request differs.  Answers are
 * built whole and written at once: they are small and never wait.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/health.h"
#include "gateway/adapt.h"
#include "gateway/admin.h"
#include "gateway/conn.h"
#include "gateway/fleet.h"
#include "gateway/health.h"
#include "gateway/metrics.h"
#include "gateway/server.h"
#include "queue/share.h"

/* Oldest queued request of class k, in ms of waiting (0 when none). */
static uint64_t oldest_wait_ms(const struct gw_server *srv, int k)
{
	uint64_t oldest = UINT64_MAX;
	for (const struct queue_flow *f = srv->queue.classes[k].active; f != NULL; f = f->next_active)
		if (f->head->enqueued_ms < oldest)
			oldest = f->head->enqueued_ms;
	return oldest == UINT64_MAX ? 0 : gw_now_ms(srv) - oldest;
}

/* Append `root` (taken; NULL: out of memory) and a newline to out. */
static int append_json(struct gw_buf *out, json_t *root, size_t flags)
{
	char *text = root != NULL ? json_dumps(root, flags) : NULL;
	json_decref(root);
	if (text == NULL)
		return -1;
	int rc = gw_buf_appends(out, text);
	rc |= gw_buf_append(out, "\n", 1);
	free(text);
	return rc;
}

static json_t *class_status(const struct gw_server *srv, int k)
{
	const struct gw_account *a = &srv->account;
	const struct conf_class_cfg *cc = &srv->conf->classes[k];
	struct gw_hist all, minute;
	gw_hist_init(&all);
	gw_hist_init(&minute);
	for (size_t p = 0; p <= a->npools; p++)
		gw_hist_merge(&all, &a->cp[gw__account_cp(a, k, p)].request);
	gw_hist_merge(&minute, &a->window[k][0]);
	gw_hist_merge(&minute, &a->window[k][1]);
	struct gw_hist served;
	gw_hist_init(&served);
	gw_hist_merge(&served, &a->served[k][0]);
	gw_hist_merge(&served, &a->served[k][1]);
	/* Cumulative counts at the metric bounds: `sluice top` draws the
	 * histogram of an interval from the difference of two polls. */
	json_t *buckets = json_array();
	for (size_t i = 0; i < srv->conf->metrics.nbuckets; i++)
		json_array_append_new(buckets, json_integer((json_int_t)gw_hist_count_le(
			&all, (uint64_t)(srv->conf->metrics.buckets[i] * 1e9))));
	json_array_append_new(buckets, json_integer((json_int_t)gw_hist_count(&all)));
	json_t *rej = json_object();
	uint64_t rejected = 0;
	for (int r = 0; r < GW_R_COUNT; r++) {
		if (a->rejections[k][r] == 0)
			continue;
		rejected += a->rejections[k][r];
		json_object_set_new(rej, gw_reason_info((enum gw_reason)r)->code,
				    json_integer((json_int_t)a->rejections[k][r]));
	}
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:I, s:o, s:o}",
		"queue_depth", (json_int_t)srv->queue.classes[k].count,
		"queue_bytes", (json_int_t)srv->queue.classes[k].bytes,
		"oldest_wait_ms", (json_int_t)oldest_wait_ms(srv, k),
		"max_queue", (json_int_t)cc->max_queue,
		"max_wait_ms", (json_int_t)cc->max_wait_ms,
		"p50_ms_last_minute", gw_hist_percentile(&minute, 50) / 1e6,
		"p99_ms_last_minute", gw_hist_percentile(&minute, 99) / 1e6,
		"served_p50_ms_last_minute", gw_hist_percentile(&served, 50) / 1e6,
		"served_p99_ms_last_minute", gw_hist_percentile(&served, 99) / 1e6,
		"requests_total", (json_int_t)gw_hist_count(&all),
		"rejected_total", (json_int_t)rejected,
		"rejections", rej,
		"latency_buckets", buckets);
}

/* A tenant's slots held now, per class and pool, only where it holds some
 * ({"interactive": {"gold": 2}}), for the tenant slot shares
 * (queue/share.h). */
static json_t *tenant_slots(const struct gw_server *srv, const struct queue_tenant *qt)
{
	json_t *held = json_object();
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		if (queue_share_held_total(qt, (enum conf_class)k) == 0)
			continue;
		json_t *pools = json_object();
		for (size_t p = 0; p < srv->backends.npools; p++) {
			unsigned n = queue_share_held(qt, (enum conf_class)k, p);
			if (n > 0)
				json_object_set_new(pools, srv->backends.pools[p]->cfg->name, json_integer(n));
		}
		json_object_set_new(held, conf_class_name((enum conf_class)k), pools);
	}
	return held;
}

/* How a backend's slots adapt (slots.adapt), with the last signal read. */
static json_t *adapt_status(const struct backend_pool *p, const struct backend *b)
{
	const struct backend_adapt *a = &b->adapt;
	if (!a->on)
		return json_pack("{s:s}", "mode", "off");
	json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:b, s:I, s:I}", "mode",
		conf_slots_adapt_words[p->cfg->slots.adapt], "limit", (json_int_t)a->limit, "min", (json_int_t)a->min,
		"max", (json_int_t)a->max, "signal_lost", a->lost, "increases", (json_int_t)a->increases,
		"decreases", (json_int_t)a->decreases);
	if (p->cfg->slots.adapt == CONF_SLOTS_VLLM_METRICS)
		json_object_set_new(o, "backend", json_pack("{s:f, s:f, s:f}", "num_requests_running",
			a->load.running, "num_requests_waiting", a->load.waiting, "kv_cache_usage_perc",
			a->load.kv_usage));
	else
		json_object_set_new(o, "ttft_ms", json_pack("{s:f, s:f}", "last", a->ttft_last_ms, "baseline",
			a->ttft_base_ms));
	return o;
}

/* One backend: whether it may be picked, and each reason it may not. */
static json_t *backend_status(const struct backend_pool *p, const struct backend *b, uint64_t now)
{
	const struct backend_health *h = &b->health;
	json_t *last = json_null();
	if (h->last_result >= 0) {
		last = json_pack("{s:s, s:I}", "result",
				 backend_check_result_name((enum backend_check_result)h->last_result),
				 "age_ms", (json_int_t)(now - h->last_ms));
		if (h->last_status != 0)
			json_object_set_new(last, "http_status", json_integer(h->last_status));
	}
	json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:b, s:I, s:s, s:o, s:b, s:I, s:b}",
		"address", b->name, "slots", (json_int_t)b->max_inflight, "max_inflight", (json_int_t)b->total,
		"inflight", (json_int_t)b->inflight, "up", backend_is_up(b, now),
		"idle_connections", (json_int_t)b->nidle,
		"health", !p->cfg->health.enabled ? "off" : h->down ? "down" : "up",
		"last_check", last,
		"ejected", now < b->outlier.until_ms,
		"ejections", (json_int_t)b->outlier.ejections,
		"connect_failing", now < b->down_until_ms);
	if (b->last_error[0] != '\0')
		json_object_set_new(o, "last_error", json_pack("{s:s, s:I}", "error", b->last_error, "age_ms",
							       (json_int_t)(now - b->last_error_ms)));
	if (now < b->outlier.until_ms)
		json_object_set_new(o, "ejected_for_ms", json_integer((json_int_t)(b->outlier.until_ms - now)));
	json_object_set_new(o, "slots_adapt", adapt_status(p, b));
	return o;
}

/* How many replicas split the backends' slots, and where N comes from. */
static json_t *replicas_status(const struct gw_server *srv)
{
	const struct conf_replicas *r = &srv->conf->replicas;
	const struct gw_fleet_stats *fs = gw__fleet_replica_stats(srv);
	json_t *o = json_pack("{s:I, s:s}", "count", (json_int_t)srv->backends.replicas, "source",
			      r->dns_host != NULL ? "dns" : "count");
	if (o != NULL && fs != NULL)
		json_object_update_new(o, json_pack("{s:s, s:I, s:I, s:I, s:s?}", "dns", r->dns_host,
			"refresh_ms", (json_int_t)r->refresh_ms, "lookups_ok", (json_int_t)fs->lookups_ok,
			"lookups_failed", (json_int_t)fs->lookups_failed, "last_error", fs->last_error));
	return o;
}

static int render_status(const struct gw_server *srv, struct gw_buf *out)
{
	const struct gw_account *a = &srv->account;
	uint64_t now = gw_now_ms(srv);
	json_t *root = json_object();
	json_t *classes = json_object();
	json_t *pools = json_object();
	json_t *tenants = json_object();
	json_t *bounds = json_array();
	for (size_t i = 0; i < srv->conf->metrics.nbuckets; i++)
		json_array_append_new(bounds, json_real(srv->conf->metrics.buckets[i]));
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		if (!srv->conf->classes[k].defined)
			continue;
		json_t *cj = class_status(srv, k);
		json_object_set_new(cj, "tenant_slot_share",
				    json_string(conf_tenant_slot_share_words[srv->conf->classes[k].tenant_slot_share]));
		json_object_set_new(classes, conf_class_name((enum conf_class)k), cj);
	}
	for (size_t i = 0; i < srv->backends.npools; i++) {
		const struct backend_pool *p = srv->backends.pools[i];
		json_t *backends = json_array();
		for (size_t j = 0; j < p->nbackends; j++) {
			json_array_append_new(backends, backend_status(p, p->backends[j], now));
		}
		json_t *pj = json_pack("{s:s, s:I, s:I, s:o}",
			"slice", p->cfg->slice == CONF_SLICE_RESERVED ? "reserved" : "elastic",
			"slots", (json_int_t)p->slots, "inflight", (json_int_t)p->inflight,
			"backends", backends);
		const struct gw_fleet_stats *fs = gw__fleet_stats(srv, i);
		if (fs != NULL)
			json_object_set_new(pj, "discovery", json_pack("{s:s, s:i, s:I, s:I, s:s?}",
				"dns", p->cfg->discovery.dns_host, "port", (int)p->cfg->discovery.dns_port,
				"lookups_ok", (json_int_t)fs->lookups_ok, "lookups_failed",
				(json_int_t)fs->lookups_failed, "last_error", fs->last_error));
		const struct conf_pool *pc = &srv->conf->pools[i];
		if (pj != NULL && pc->models != NULL) {	/* absent: any model */
			json_t *models = json_array();
			for (size_t m = 0; m < pc->nmodels; m++)
				json_array_append_new(models, json_string(pc->models[m]));
			json_object_set_new(pj, "models", models);
		}
		json_object_set_new(pools, p->cfg->name, pj);
	}
	for (size_t t = 0; t < srv->tenants.n; t++) {
		struct queue_tenant *qt = srv->tenants.v[t];
		const struct gw_tenant_acct *ta = &a->tenants[t];
		uint64_t requests = 0;
		double gpu = 0;
		for (int k = 0; k < CONF_CLASS_COUNT; k++)
			requests += ta->requests[k];
		for (size_t p = 0; p < a->npools; p++)
			gpu += (double)ta->gpu_ns[p] / 1e9;
		uint64_t rejected = 0;
		for (int r = 0; r < GW_R_COUNT; r++)
			rejected += ta->rejections[r];
		json_t *tj = json_pack("{s:I, s:I, s:f, s:f, s:f}", "requests_total", (json_int_t)requests,
				       "rejected_total", (json_int_t)rejected,
				       "tokens_estimated", ta->tokens_estimated, "tokens_reported", ta->tokens_reported,
				       "gpu_seconds", gpu);
		if (!queue_bucket_unlimited(&qt->requests))
			json_object_set_new(tj, "requests_bucket", json_real(queue_bucket_level(&qt->requests, now)));
		if (!queue_bucket_unlimited(&qt->tokens))
			json_object_set_new(tj, "tokens_bucket", json_real(queue_bucket_level(&qt->tokens, now)));
		json_object_set_new(tj, "slots_held", tenant_slots(srv, qt));
		json_object_set_new(tenants, qt->cfg->name, tj);
	}
	json_object_set_new(root, "version", json_string(SLUICE_VERSION));
	json_object_set_new(root, "draining", json_boolean(srv->draining));
	json_object_set_new(root, "connections", json_integer(srv->nconns));
	json_object_set_new(root, "bucket_bounds_seconds", bounds);
	json_object_set_new(root, "replicas", replicas_status(srv));
	json_object_set_new(root, "classes", classes);
	json_object_set_new(root, "pools", pools);
	json_object_set_new(root, "tenants", tenants);
	return append_json(out, root, JSON_COMPACT);
}

/* The running config without secrets (conf_dump()), with its generation
 * and file, for operators and `sluice -t --diff`. */
static int render_config(const struct gw_server *srv, struct gw_buf *out)
{
	json_t *root = json_pack("{s:I, s:s, s:o*}", "generation", (json_int_t)srv->generation, "path",
				 srv->conf->path, "config", conf_dump(srv->conf));
	if (root != NULL && json_object_get(root, "config") == NULL) {
		json_decref(root);
		return -1;
	}
	return append_json(out, root, JSON_INDENT(2));
}

void gw__admin_handle(struct gw_conn *c)
{
	struct gw_server *srv = c->srv;
	const struct gw_msg *m = &c->http.msg;
	size_t len = m->start_len;
	const char *q = memchr(gw_msg_start(m), '?', len);
	if (q != NULL)
		len = (size_t)(q - gw_msg_start(m));
	struct gw_buf body = GW_BUF_INIT;

	if (m->method != HTTP_GET) {
		gw__conn_reject(c, GW_R_METHOD_NOT_ALLOWED, "the admin listener only answers GET", 0);
	} else if (gw_token_eq(gw_msg_start(m), len, "/healthz")) {
		gw_buf_appends(&body, "ok\n");
		gw__conn_respond(c, 200, "text/plain", &body);
	} else if (gw_token_eq(gw_msg_start(m), len, "/readyz")) {
		/* A load balancer should send nothing here while no request
		 * could be served: draining, or no backend up for any class. */
		bool ready = !srv->draining && gw__health_ready(srv);
		gw_buf_appends(&body, srv->draining ? "draining\n"
				      : ready ? "ready\n"
					      : "not ready: no class has a healthy backend\n");
		gw__conn_respond(c, ready ? 200 : 503, "text/plain", &body);
	} else if (gw_token_eq(gw_msg_start(m), len, "/metrics")) {
		if (gw__metrics_render(srv, &body) < 0) {
			gw_buf_finish(&body);
			gw__conn_reject(c, GW_R_INTERNAL, "out of memory", 0);
			return;
		}
		gw__conn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", &body);
	} else if (gw_token_eq(gw_msg_start(m), len, "/status") || gw_token_eq(gw_msg_start(m), len, "/config")) {
		bool status = gw_token_eq(gw_msg_start(m), len, "/status");
		if ((status ? render_status(srv, &body) : render_config(srv, &body)) < 0) {
			gw_buf_finish(&body);
			gw__conn_reject(c, GW_R_INTERNAL, "out of memory", 0);
			return;
		}
		gw__conn_respond(c, 200, "application/json", &body);
	} else {
		gw__conn_reject(c, GW_R_NOT_FOUND, "no such admin endpoint", 0);
	}
}
