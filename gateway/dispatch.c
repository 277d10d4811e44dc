/*
 * dispatch.c - from a complete request to a slot; see dispatch.h.
 *
 * This file is glue.  The decisions are the admission policy's
 * (queue/admit.h: class, charges, start / wait / refuse, eviction, refunds)
 * and the dispatch order's (queue/queue.h: which queued request a free slot
 * goes to); the slot ledger is slot.h; the exchange with the backend is
 * exchange.h.  Here a request's facts are read off the connection (its key,
 * its OpenAI body fields, its headers), the pools' state is read off
 * backends/, and the verdict is carried out on sockets.
 *
 * What runs synchronously, and what may not.  Answering a request (a
 * rejection, an eviction, a timeout) writes to that request's connection
 * and finishes it; that is allowed from anywhere, because finishing never
 * parses the connection's next request: the connection schedules its own
 * resume (conn.c).  Starting a request is allowed only on the request's
 * own stack (its connection just read it) or from the queue kick, which
 * runs from the loop (defer.h): giving a slot back only schedules the
 * kick.  So no request is ever admitted or started inside the admission,
 * release or answer of another.
 *
 * Routing by model.  The body's `model` goes to admission with the other
 * facts; a request that waits keeps a copy of it (c->model, pointed at by
 * its queue item) so that a reload can work out again which pools may take
 * it, and answers model_not_found, at the reload, to those whose model no
 * pool of their class serves any more.  When some pool lists models,
 * `GET /v1/models` is answered here, after the key is checked, with every
 * model listed: the backends each know only their own.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "gateway/conn.h"
#include "gateway/dispatch.h"
#include "gateway/exchange.h"
#include "gateway/openai.h"
#include "gateway/preempt.h"
#include "gateway/server.h"
#include "gateway/shared.h"
#include "gateway/slot.h"
#include "queue/admit.h"
#include "queue/share.h"

/* Every configured model name fits the body scan's buffer. */
_Static_assert(GW_OPENAI_MODEL_MAX > CONF_MODEL_MAX, "the body scan must keep any configured model name");

static struct gw_conn *conn_of_item(struct queue_item *it)
{
	return gw__conn_from((char *)it - offsetof(struct gw_conn, qi));
}

static void on_deadline(uv_timer_t *t);

/* Re-arm the server's queue timer for the earliest deadline, or for the
 * moment an idle tenant's slot share stops being kept free while work
 * waits (queue/share.h): the slots it kept may then go to the queue. */
static void rearm(struct gw_server *srv)
{
	uint64_t now = gw_now_ms(srv);
	uint64_t next = queue_next_deadline(&srv->queue);
	if (srv->queue.count > 0) {
		uint64_t share = queue_share_next_change(&srv->queue, now);
		next = share < next ? share : next;
	}
	if (next == UINT64_MAX) {
		uv_timer_stop(&srv->queue_timer);
		return;
	}
	uv_timer_start(&srv->queue_timer, on_deadline, next > now ? next - now : 0, 0);
}

/* Answer a request the queues let go of (expired, evicted, flushed). */
static void answer_unqueued(struct gw_conn *c, enum queue_reason why)
{
	struct gw_server *srv = c->srv;
	struct queue_verdict v = {
		.reason = why,
		.klass = (enum conf_class)c->qi.klass,
		.budget_ms = c->qi.deadline_ms - c->qi.enqueued_ms,
		.retry_ms = queue_retry_hint(&srv->queue, (enum conf_class)c->qi.klass, c->qi.tenant),
		.model = c->qi.model,
		.model_len = c->qi.model_len,
	};
	if (why == QUEUE_R_MODEL_NOT_FOUND || why == QUEUE_R_NO_BACKEND)
		v.retry_ms = 0;	/* a config change, not load: retrying will not help */
	char msg[GW_ERROR_MSG_MAX];
	c->state = GW_CONN_BODY;	/* read, not queued: being answered */
	enum gw_reason r = gw_error_refusal(&v, c->qi.tenant, msg, sizeof(msg));
	gw__conn_reject(c, r, msg, v.retry_ms);
}

static void on_deadline(uv_timer_t *t)
{
	struct gw_server *srv = t->data;
	struct queue_item *it;
	while ((it = queue_expire(&srv->queue, gw_now_ms(srv))) != NULL)
		answer_unqueued(conn_of_item(it), QUEUE_R_QUEUE_TIMEOUT);
	if (srv->queue.count > 0)
		gw__dispatch_kick(srv);	/* a share kept free may have lapsed */
	rearm(srv);
}

/* Take a slot of b for c's request and start its exchange. */
static void start(struct gw_conn *c, struct backend *b)
{
	struct gw_server *srv = c->srv;
	struct gw_slot *slot;
	if (gw__slot_take(srv, b, c, &slot) < 0) {
		queue_refund(&c->qi, gw_now_ms(srv));	/* never served */
		gw__conn_reject(c, GW_R_INTERNAL, "out of memory", 0);
		return;
	}
	c->rec.t_dispatch = uv_hrtime();
	backend_pool_put(&c->rec.pool);	/* a retry: the pool of the failed start */
	c->rec.pool = backend_pool_hold(b->pool);
	memcpy(c->rec.backend, b->name, sizeof(c->rec.backend));
	gw__account_queue(&srv->account, (enum conf_class)c->qi.klass, GW_QOUT_DISPATCHED,
			 c->rec.t_dispatch - c->rec.t_ready);
	gw__exchange_start(c, &slot);
}

static void kick(struct gw_defer *d)
{
	struct gw_server *srv = (struct gw_server *)((char *)d - offsetof(struct gw_server, kick));
	uint64_t now = gw_now_ms(srv);
	for (size_t p = 0; p < srv->backends.npools && srv->queue.count > 0; p++) {
		struct backend_pool *pool = srv->backends.pools[p];
		struct backend *b;
		while (srv->queue.count > 0 && (b = backend_pool_pick(pool, now)) != NULL) {
			struct queue_item *it = queue_pop_at(&srv->queue, p, now);
			if (it == NULL)
				break;
			struct gw_conn *c = conn_of_item(it);
			c->state = GW_CONN_BODY;	/* off the queue: never withdrawn twice */
			start(c, b);
		}
	}
	rearm(srv);	/* popped items, and shares kept free by the slots given back */
}

void gw__dispatch_kick(struct gw_server *srv)
{
	gw_defer_schedule(&srv->defer, &srv->kick);
}

/* What every pool can do now, as admission reads it; remembers the backend
 * a start on each pool would take. */
static const uint8_t *pool_view(struct gw_server *srv, uint64_t now)
{
	for (size_t p = 0; p < srv->backends.npools; p++) {
		struct backend_pool *pool = srv->backends.pools[p];
		struct backend *b = backend_pool_pick(pool, now);
		srv->pool_pick[p] = b;
		srv->pool_view[p] = b != NULL ? QUEUE_POOL_UP | QUEUE_POOL_FREE
					      : backend_pool_has_up(pool, now) ? QUEUE_POOL_UP : 0;
	}
	return srv->pool_view;
}

/* The client's x-sluice-deadline-ms, or UINT64_MAX. */
static uint64_t client_deadline(const struct gw_msg *m)
{
	const struct gw_field *f = gw_msg_field(m, "x-sluice-deadline-ms");
	if (f == NULL)
		return UINT64_MAX;
	char num[24];
	size_t n = f->value_len < sizeof(num) - 1 ? f->value_len : sizeof(num) - 1;
	memcpy(num, gw_field_value(m, f), n);
	num[n] = '\0';
	char *end;
	unsigned long long d = strtoull(num, &end, 10);
	return end != num && *end == '\0' ? d : UINT64_MAX;
}

/* Keep the model of a request that waits: its queue item points at the
 * body scan's copy, which does not outlive admission.  False when there is
 * no memory for it (the request is then still queued). */
static bool keep_model(struct gw_conn *c)
{
	if (c->qi.model == NULL || c->qi.model_len > CONF_MODEL_MAX)
		return true;	/* none, or a name too long to match: nothing to read again */
	c->model = malloc(c->qi.model_len + 1);
	if (c->model == NULL)
		return false;
	memcpy(c->model, c->qi.model, c->qi.model_len);
	c->model[c->qi.model_len] = '\0';
	c->qi.model = c->model;
	return true;
}

/* GET /v1/models (query aside), which sluice answers when it routes by model. */
static bool is_models_list(const struct gw_conn *c)
{
	const struct gw_msg *m = &c->http.msg;
	if (m->method != HTTP_GET || c->srv->conf->nmodels == 0)
		return false;
	size_t len;
	const char *path = gw_msg_origin_form(m, &len);
	const char *q = memchr(path, '?', len);
	if (q != NULL)
		len = (size_t)(q - path);
	return len == strlen("/v1/models") && memcmp(path, "/v1/models", len) == 0;
}

/* Every model some pool lists, in the OpenAI list shape (conf.models is
 * sorted and has no repeats). */
static void answer_models(struct gw_conn *c)
{
	const struct conf *conf = c->srv->conf;
	json_t *data = json_array();
	for (size_t i = 0; data != NULL && i < conf->nmodels; i++) {
		json_t *m = json_pack("{s:s, s:s, s:i, s:s}", "id", conf->models[i].name, "object", "model",
				      "created", 0, "owned_by", "sluice");
		if (m == NULL || json_array_append_new(data, m) < 0) {
			json_decref(data);
			data = NULL;
		}
	}
	json_t *list = data ? json_pack("{s:s, s:o}", "object", "list", "data", data) : NULL;
	char *text = list ? json_dumps(list, JSON_COMPACT) : NULL;
	json_decref(list);
	struct gw_buf body = GW_BUF_INIT;
	if (text == NULL || gw_buf_appends(&body, text) < 0) {
		free(text);
		gw_buf_finish(&body);
		gw__conn_reject(c, GW_R_INTERNAL, "out of memory", 0);
		return;
	}
	free(text);
	gw__conn_respond(c, 200, "application/json", &body);
}

/* The request's tenant, or NULL after answering 401. */
static struct queue_tenant *identify(struct gw_conn *c)
{
	if (c->srv->tenants.open)
		return c->srv->tenants.anonymous;	/* an open gateway: keys mean nothing */
	size_t len = 0;
	const char *key = gw_openai_api_key(&c->http.msg, &len);
	struct queue_tenant *t = key ? queue_tenant_by_key(&c->srv->tenants, key, len) : c->srv->tenants.anonymous;
	if (t == NULL && key == NULL)
		gw__conn_reject(c, GW_R_MISSING_KEY, "an API key is required: "
				"send 'Authorization: Bearer KEY' or 'x-api-key: KEY'", 0);
	else if (t == NULL)
		gw__conn_reject(c, GW_R_INVALID_KEY, "the API key is not valid", 0);
	return t;
}

void gw__dispatch_request(struct gw_conn *c)
{
	struct gw_server *srv = c->srv;
	const struct gw_msg *m = &c->http.msg;
	uint64_t now = gw_now_ms(srv);
	struct queue_tenant *t = identify(c);
	if (t == NULL)
		return;
	struct gw_openai_body body;
	gw__conn_body_fields(c, &body);
	if (is_models_list(c)) {
		answer_models(c);
		return;
	}
	const struct gw_field *cls = gw_msg_field(m, "x-sluice-class");
	struct queue_facts facts = {
		.class_header = cls ? gw_field_value(m, cls) : NULL,
		.class_header_len = cls ? cls->value_len : 0,
		.body_class = gw_openai_tier_class(&body),
		.body_bytes = m->body.len,
		.prompt_tokens = gw_openai_prompt_tokens(&body, m->body.len),
		.output_tokens = gw_openai_output_tokens(&body),
		.deadline_ms = client_deadline(m),
		.pools = pool_view(srv, now),
		/* A name too long to keep matches no list; "" stands for it. */
		.model = body.model_len ? body.model : body.model_long ? "" : NULL,
		.model_len = body.model_len ? body.model_len : CONF_MODEL_MAX + 1,
	};
	struct queue_verdict v;
	queue_admit(&srv->queue, t, &facts, now, &c->qi, &v);
	if (v.action == QUEUE_REJECT && v.reason == QUEUE_R_DEADLINE_UNMEETABLE &&
	    gw__preempt_admission(srv, c, &v)) {
		/* A slot was freed for it: ask again, with the pools as they are now. */
		facts.pools = pool_view(srv, now);
		queue_admit(&srv->queue, t, &facts, now, &c->qi, &v);
	}
	gw__shared_poke(srv, t);	/* a renewal, if the lease runs low; never waits */
	c->classified = true;
	c->rec.tokens_estimated = c->qi.charge.tokens;
	if (v.action != QUEUE_WAIT)
		c->qi.model = NULL;	/* only a queued request reads it again */
	if (v.action == QUEUE_START) {
		start(c, srv->pool_pick[v.pool]);
	} else if (v.action == QUEUE_WAIT) {
		bool kept = keep_model(c);
		if (!kept) {
			queue_withdraw(&srv->queue, &c->qi, now);
			c->qi.model = NULL;
		} else {
			c->state = GW_CONN_QUEUED;
			gw__conn_disarm(c);
			if (c->qi.deadline_ms <= queue_next_deadline(&srv->queue))
				rearm(srv);
			gw__preempt_watch(srv, c);
		}
		if (v.victim != NULL)
			answer_unqueued(conn_of_item(v.victim), QUEUE_R_EVICTED);
		if (!kept)
			gw__conn_reject(c, GW_R_INTERNAL, "out of memory", 0);
	} else {
		char msg[GW_ERROR_MSG_MAX];
		enum gw_reason r = gw_error_refusal(&v, t, msg, sizeof(msg));
		gw__conn_reject(c, r, msg, v.retry_ms);
	}
}

bool gw__dispatch_retry(struct gw_conn *c)
{
	struct gw_server *srv = c->srv;
	enum conf_class k = (enum conf_class)c->qi.klass;
	const struct conf_class_cfg *cc = &srv->conf->classes[k];
	uint64_t now = gw_now_ms(srv);
	bool any_up = false;
	/* The class's pools in its order, as a start from the queue takes
	 * them.  The backend that failed is marked down: it is not picked. */
	for (size_t i = 0; i < cc->npools; i++) {
		struct backend_pool *pool = srv->backends.pools[cc->pools[i]];
		if (!(c->qi.pools & (UINT64_C(1) << pool->index)))
			continue;	/* does not serve the request's model */
		any_up |= backend_pool_has_up(pool, now);
		if (!queue_share_allows(&srv->queue, pool->index, k) ||
		    !queue_share_may_take(&srv->queue, c->qi.tenant, pool->index, k, now))
			continue;
		struct backend *b = backend_pool_pick(pool, now);
		if (b != NULL) {
			start(c, b);
			return true;
		}
	}
	/* Every healthy backend is busy: back to the head of its queue, with
	 * its deadline, for the next free slot. */
	if (!any_up || queue_requeue(&srv->queue, &c->qi) < 0)
		return false;
	c->state = GW_CONN_QUEUED;
	gw__conn_disarm(c);
	if (c->qi.deadline_ms <= queue_next_deadline(&srv->queue))
		rearm(srv);
	gw__preempt_watch(srv, c);
	return true;
}

void gw__dispatch_reconfigured(struct gw_server *srv, struct queue_item *gone, enum queue_reason why)
{
	uint64_t now = gw_now_ms(srv);
	while (gone != NULL) {
		struct queue_item *it = gone;
		gone = it->next;
		it->next = NULL;
		queue_refund(it, now);	/* never served */
		answer_unqueued(conn_of_item(it), why);
	}
	rearm(srv);
}

void gw__dispatch_withdraw(struct gw_conn *c)
{
	queue_withdraw(&c->srv->queue, &c->qi, gw_now_ms(c->srv));
	gw__account_queue(&c->srv->account, (enum conf_class)c->qi.klass, GW_QOUT_CANCELLED,
			 uv_hrtime() - c->rec.t_ready);
}

void gw__dispatch_flush(struct gw_server *srv)
{
	struct queue_item *it;
	while ((it = queue_expire(&srv->queue, UINT64_MAX)) != NULL) {
		struct gw_conn *c = conn_of_item(it);
		c->state = GW_CONN_BODY;
		gw__conn_reject(c, GW_R_SHUTTING_DOWN, "sluice is shutting down", 0);
	}
	uv_timer_stop(&srv->queue_timer);
}

void gw__dispatch_settle(struct gw_conn *c, double used)
{
	queue_settle(&c->qi, used, gw_now_ms(c->srv));
	c->rec.tokens_reported = used;
}

int gw__dispatch_init(struct gw_server *srv)
{
	gw_defer_init(&srv->kick, kick);
	int rc = uv_timer_init(srv->loop, &srv->queue_timer);
	srv->queue_timer.data = srv;
	if (rc == 0)
		rc = gw__preempt_init(srv);
	return rc;
}

void gw__dispatch_close(struct gw_server *srv)
{
	gw_defer_cancel(&srv->kick);
	uv_close((uv_handle_t *)&srv->queue_timer, NULL);
	gw__preempt_close(srv);
}
