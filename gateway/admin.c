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
#include "gateway/admin.h"
#include "gateway/conn.h"
#include "gateway/metrics.h"
#include "gateway/server.h"

static void respond(struct gw_conn *c, int status, const char *type, struct gw_buf *body)
{
	struct gw_buf out = GW_BUF_INIT;
	int rc = gw_buf_appendf(&out, "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
				"cache-control: no-store\r\n\r\n",
				status, gw_status_text(status), type, body->len);
	rc |= gw_buf_append(&out, body->data, body->len);
	gw_buf_finish(body);
	if (rc != 0) {
		gw_buf_finish(&out);
		gw_conn_reject(c, GW_R_INTERNAL, "out of memory", 0);
		return;
	}
	gw_conn_write(c, &out);
	gw_conn_finish_request(c, true);
}

static int render_status(const struct gw_server *srv, struct gw_buf *out)
{
	json_t *root = json_object();
	json_t *classes = json_object();
	json_t *pools = json_object();
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		const struct conf_class_cfg *cc = &srv->conf->classes[k];
		if (!cc->defined)
			continue;
		json_object_set_new(classes, conf_class_name((enum conf_class)k),
				    json_pack("{s:I, s:I, s:I}", "queue_depth", (json_int_t)srv->queue.classes[k].count,
					      "max_queue", (json_int_t)cc->max_queue,
					      "max_wait_ms", (json_int_t)cc->max_wait_ms));
	}
	for (size_t i = 0; i < srv->backends.npools; i++) {
		const struct backend_pool *p = &srv->backends.pools[i];
		json_t *backends = json_array();
		for (size_t j = 0; j < p->nbackends; j++) {
			const struct backend *b = &p->backends[j];
			json_array_append_new(backends, json_pack("{s:s, s:I, s:I, s:I}",
				"address", b->cfg->addr.text, "slots", (json_int_t)b->max_inflight,
				"inflight", (json_int_t)b->inflight, "idle_connections", (json_int_t)b->nidle));
		}
		json_object_set_new(pools, p->cfg->name, json_pack("{s:s, s:I, s:I, s:o}",
			"slice", p->cfg->slice == CONF_SLICE_RESERVED ? "reserved" : "elastic",
			"slots", (json_int_t)p->slots, "inflight", (json_int_t)p->inflight,
			"backends", backends));
	}
	json_object_set_new(root, "version", json_string(SLUICE_VERSION));
	json_object_set_new(root, "draining", json_boolean(srv->draining));
	json_object_set_new(root, "connections", json_integer(srv->nconns));
	json_object_set_new(root, "classes", classes);
	json_object_set_new(root, "pools", pools);
	char *text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (text == NULL)
		return -1;
	int rc = gw_buf_appends(out, text);
	rc |= gw_buf_append(out, "\n", 1);
	free(text);
	return rc;
}

void gw_admin_handle(struct gw_conn *c)
{
	struct gw_server *srv = c->srv;
	const struct gw_msg *m = &c->http.msg;
	size_t len = m->start_len;
	const char *q = memchr(gw_msg_start(m), '?', len);
	if (q != NULL)
		len = (size_t)(q - gw_msg_start(m));
	struct gw_buf body = GW_BUF_INIT;

	if (m->method != HTTP_GET) {
		gw_conn_reject(c, GW_R_METHOD_NOT_ALLOWED, "the admin listener only answers GET", 0);
	} else if (gw_token_eq(gw_msg_start(m), len, "/healthz")) {
		gw_buf_appends(&body, "ok\n");
		respond(c, 200, "text/plain", &body);
	} else if (gw_token_eq(gw_msg_start(m), len, "/readyz")) {
		gw_buf_appends(&body, srv->draining ? "draining\n" : "ready\n");
		respond(c, srv->draining ? 503 : 200, "text/plain", &body);
	} else if (gw_token_eq(gw_msg_start(m), len, "/metrics")) {
		if (gw_metrics_render(srv, &body) < 0) {
			gw_buf_finish(&body);
			gw_conn_reject(c, GW_R_INTERNAL, "out of memory", 0);
			return;
		}
		respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", &body);
	} else if (gw_token_eq(gw_msg_start(m), len, "/status")) {
		if (render_status(srv, &body) < 0) {
			gw_buf_finish(&body);
			gw_conn_reject(c, GW_R_INTERNAL, "out of memory", 0);
			return;
		}
		respond(c, 200, "application/json", &body);
	} else {
		gw_conn_reject(c, GW_R_NOT_FOUND, "no such admin endpoint", 0);
	}
}
