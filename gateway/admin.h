/*
 * admin.h - the admin listener's endpoints.
 *
 *   GET /healthz   200 while the process runs.
 *   GET /readyz    200 while accepting traffic; 503 while draining.
 *   GET /metrics   Prometheus text exposition format.
 *   GET /status    JSON view of classes, queues, pools and backends.
 */
#ifndef SLUICE_GATEWAY_ADMIN_H
#define SLUICE_GATEWAY_ADMIN_H

struct gw_conn;

/* Answer c's current request synchronously. */
void gw__admin_handle(struct gw_conn *c);

#endif
