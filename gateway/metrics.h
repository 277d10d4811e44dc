/*
 * metrics.h - Prometheus text exposition of the gateway's counters.
 *
 * Names carry the `sluice_` prefix and base units; every family has HELP and
 * TYPE lines so that `promtool check metrics` accepts the output.
 */
#ifndef SLUICE_GATEWAY_METRICS_H
#define SLUICE_GATEWAY_METRICS_H

#include "gateway/buf.h"

struct gw_server;

/* Append the exposition of srv's metrics to out; returns 0 or -ENOMEM. */
int gw_metrics_render(const struct gw_server *srv, struct gw_buf *out);

#endif
