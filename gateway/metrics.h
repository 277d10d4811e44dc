/*
 * metrics.h - Prometheus text exposition of the gateway's counters.
 *
 * Names carry the `sluice_` prefix and base units; every family has HELP and
 * TYPE lines so that `promtool check metrics` accepts the output.
 */
#ifndef SLUICE_GATEWAY_METRICS_H
#define SLUICE_GATEWAY_METRICS_H

#include <stdint.h>

#include "gateway/buf.h"

struct gw_server;

/* Counters for /metrics; all monotonic except where noted. */
struct gw_metrics {
	uint64_t connections;		/* client connections accepted */
	uint64_t connections_refused;	/* over limits.max_connections */
	uint64_t client_aborts;		/* clients gone while queued or in flight */
	uint64_t upstream_reused;	/* requests sent on a pooled connection */
	uint64_t upstream_retries;	/* resent after a pooled connection was found dead */
	uint64_t upstream_failovers;	/* started on another backend after a failed connect */
	uint64_t upstream_truncated;	/* responses cut short by the backend */
	uint64_t reloads_ok, reloads_failed;
	double start_time;		/* wall clock at start, seconds since the epoch (a gauge) */
};

/* Append the exposition of srv's metrics to out; returns 0 or -ENOMEM. */
int gw__metrics_render(const struct gw_server *srv, struct gw_buf *out);

#endif
