/*
 * metrics.c - Prometheus text exposition; see metrics.h.
 *
 * Rendering walks the server's counters and the pools at scrape time; the
 * request path only increments plain integers.
 */
#include "backends/backend.h"
#include "gateway/errors.h"
#include "gateway/metrics.h"
#include "gateway/server.h"

static int family(struct gw_buf *o, const char *name, const char *type, const char *help)
{
	return gw_buf_appendf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int gw_metrics_render(const struct gw_server *srv, struct gw_buf *o)
{
	const struct gw_metrics *m = &srv->metrics;
	const struct backend_set *bs = &srv->backends;
	int rc = 0;

	rc |= family(o, "sluice_requests_total", "counter",
		     "Responses sent to clients, by HTTP status code.");
	for (int s = 100; s < 600; s++)
		if (m->by_status[s] != 0)
			rc |= gw_buf_appendf(o, "sluice_requests_total{code=\"%d\"} %llu\n", s,
					     (unsigned long long)m->by_status[s]);

	rc |= family(o, "sluice_rejections_total", "counter",
		     "Requests answered by sluice itself, by reason.");
	for (int r = 0; r < GW_R_COUNT; r++)
		rc |= gw_buf_appendf(o, "sluice_rejections_total{reason=\"%s\"} %llu\n",
				     gw_reason_info((enum gw_reason)r)->code,
				     (unsigned long long)m->rejections[r]);

	rc |= family(o, "sluice_connections_accepted_total", "counter", "Client connections accepted.");
	rc |= gw_buf_appendf(o, "sluice_connections_accepted_total %llu\n",
			     (unsigned long long)m->connections);
	rc |= family(o, "sluice_connections_refused_total", "counter",
		     "Client connections closed at once because limits.max_connections was reached.");
	rc |= gw_buf_appendf(o, "sluice_connections_refused_total %llu\n",
			     (unsigned long long)m->connections_refused);
	rc |= family(o, "sluice_connections_open", "gauge", "Client connections open now (both listeners).");
	rc |= gw_buf_appendf(o, "sluice_connections_open %u\n", srv->nconns);
	rc |= family(o, "sluice_client_aborts_total", "counter",
		     "Clients that disconnected while their request was queued or in flight.");
	rc |= gw_buf_appendf(o, "sluice_client_aborts_total %llu\n", (unsigned long long)m->client_aborts);

	rc |= family(o, "sluice_queue_depth", "gauge", "Requests waiting for a slot, by class.");
	for (int k = 0; k < CONF_CLASS_COUNT; k++)
		if (srv->conf->classes[k].defined)
			rc |= gw_buf_appendf(o, "sluice_queue_depth{class=\"%s\"} %u\n",
					     conf_class_name((enum conf_class)k), srv->queue.classes[k].count);

	rc |= family(o, "sluice_upstream_reused_total", "counter",
		     "Requests sent on a pooled keep-alive upstream connection.");
	rc |= gw_buf_appendf(o, "sluice_upstream_reused_total %llu\n", (unsigned long long)m->upstream_reused);
	rc |= family(o, "sluice_upstream_retries_total", "counter",
		     "Requests resent because a pooled upstream connection was found closed.");
	rc |= gw_buf_appendf(o, "sluice_upstream_retries_total %llu\n", (unsigned long long)m->upstream_retries);
	rc |= family(o, "sluice_upstream_truncated_total", "counter",
		     "Responses cut short because the backend failed mid-response.");
	rc |= gw_buf_appendf(o, "sluice_upstream_truncated_total %llu\n",
			     (unsigned long long)m->upstream_truncated);

	static const struct {
		const char *name, *type, *help;
	} per_backend[] = {
		{ "sluice_backend_inflight", "gauge", "Slots of the backend held by requests now." },
		{ "sluice_backend_slots", "gauge", "Slots of the backend (max_inflight)." },
		{ "sluice_backend_requests_total", "counter", "Requests sent to the backend." },
		{ "sluice_backend_connections_total", "counter", "TCP connections opened to the backend." },
		{ "sluice_backend_connect_failures_total", "counter", "Failed TCP connects to the backend." },
		{ "sluice_backend_idle_connections", "gauge", "Idle pooled connections to the backend." },
	};
	for (size_t f = 0; f < sizeof(per_backend) / sizeof(per_backend[0]); f++) {
		rc |= family(o, per_backend[f].name, per_backend[f].type, per_backend[f].help);
		for (size_t i = 0; i < bs->npools; i++) {
			const struct backend_pool *p = &bs->pools[i];
			for (size_t j = 0; j < p->nbackends; j++) {
				const struct backend *b = &p->backends[j];
				unsigned long long v[] = { b->inflight, b->max_inflight, b->requests,
							   b->connects, b->connect_failures, b->nidle };
				rc |= gw_buf_appendf(o, "%s{pool=\"%s\",backend=\"%s\"} %llu\n",
						     per_backend[f].name, p->cfg->name, b->cfg->addr.text, v[f]);
			}
		}
	}
	return rc == 0 ? 0 : -1;
}
