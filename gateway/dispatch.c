/*
 * dispatch.c - admission and dispatch: from a complete request to a slot.
 *
 * For each request, in this order, before any expensive work:
 *   1. identify the tenant from its API key (401 when missing or unknown,
 *      unless the config names an anonymous tenant);
 *   2. classify it (x-sluice-class, service_tier, tenant default; capped at
 *      the tenant's max_class);
 *   3. charge the tenant's buckets: one request, and an estimate of its
 *      tokens (prompt from the body size, plus max_tokens or the configured
 *      default); 429 rate_limit_exceeded / tokens_exceeded when empty;
 *   4. start it at once on the first pool of its class (preference order)
 *      with a free slot, when its class has no one waiting already;
 *   5. else queue it (429 queue_full, or deadline_unmeetable when the
 *      wait that fair order predicts for it passes its deadline; a full
 *      class makes room for a lighter tenant by evicting the fattest
 *      tenant's newest request), to be started by a later
 *      gw_dispatch_kick() in the order of queue/queue.c.
 * A request that never got a slot (refused, evicted, timed out, or whose
 * client left) gets its bucket charges back: quota pays for service.
 *
 * Slots: every start calls queue_on_dispatch() and backend_acquire(); every
 * end, gw_dispatch_release(), which gives both back and kicks the queue.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <strings.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "backends/backend.h"
#include "gateway/conn.h"
#include "gateway/dispatch.h"
#include "gateway/log.h"
#include "gateway/proxy.h"
#include "gateway/server.h"

#define CHARS_PER_TOKEN 4

static struct gw_conn *conn_of_item(struct queue_item *it)
{
	return gw_conn_from((char *)it - offsetof(struct gw_conn, qi));
}

/* Re-arm the server's queue timer for the earliest deadline. */
static void rearm(struct gw_server *srv)
{
	uint64_t next = queue_next_deadline(&srv->queue);
	if (next == UINT64_MAX) {
		uv_timer_stop(&srv->queue_timer);
		return;
	}
	uint64_t now = gw_now_ms(srv);
	uv_timer_start(&srv->queue_timer, gw_dispatch_on_deadline, next > now ? next - now : 0, 0);
}

/* The key the request presents: "Authorization: Bearer K" or "x-api-key: K". */
static const char *api_key(const struct gw_msg *m, size_t *len)
{
	const struct gw_field *f = gw_msg_field(m, "authorization");
	if (f != NULL && f->value_len > 7 && strncasecmp(gw_field_value(m, f), "bearer ", 7) == 0) {
		*len = f->value_len - 7;
		return gw_field_value(m, f) + 7;
	}
	f = gw_msg_field(m, "x-api-key");
	if (f != NULL && f->value_len > 0) {
		*len = f->value_len;
		return gw_field_value(m, f);
	}
	return NULL;
}

/* What admission reads from an OpenAI-style JSON body. */
struct body_info {
	char tier[16];
	size_t tier_len;
	int64_t max_tokens;		/* -1 when absent */
};

static void read_body(const struct gw_msg *m, struct body_info *bi)
{
	bi->tier_len = 0;
	bi->max_tokens = -1;
	size_t i = 0;
	while (i < m->body.len && (m->body.data[i] == ' ' || m->body.data[i] == '\n' ||
				   m->body.data[i] == '\r' || m->body.data[i] == '\t'))
		i++;
	if (i == m->body.len || m->body.data[i] != '{')
		return;
	json_t *root = json_loadb(m->body.data, m->body.len, 0, NULL);
	if (root == NULL)
		return;	/* the backend answers invalid JSON in its own words */
	const char *tier = json_string_value(json_object_get(root, "service_tier"));
	if (tier != NULL && strlen(tier) < sizeof(bi->tier)) {
		bi->tier_len = strlen(tier);
		memcpy(bi->tier, tier, bi->tier_len);
	}
	json_t *mt = json_object_get(root, "max_completion_tokens");
	if (!json_is_integer(mt))
		mt = json_object_get(root, "max_tokens");
	if (json_is_integer(mt) && json_integer_value(mt) >= 0)
		bi->max_tokens = json_integer_value(mt);
	json_decref(root);
}

/* First pool of class k with a healthy backend and a free slot the class
 * may take; the backend is returned, slot not yet taken. */
static struct backend *place(struct gw_server *srv, enum conf_class k)
{
	const struct conf_class_cfg *cc = &srv->conf->classes[k];
	uint64_t now = gw_now_ms(srv);
	for (size_t i = 0; i < cc->npools; i++) {
		size_t p = cc->pools[i];
		if (!queue_share_allows(&srv->queue, p, k))
			continue;
		struct backend *b = backend_pool_pick(&srv->backends.pools[p], now);
		if (b != NULL)
			return b;
	}
	return NULL;
}

static bool class_has_backend(struct gw_server *srv, enum conf_class k)
{
	const struct conf_class_cfg *cc = &srv->conf->classes[k];
	for (size_t i = 0; i < cc->npools; i++)
		if (backend_pool_has_up(&srv->backends.pools[cc->pools[i]], gw_now_ms(srv)))
			return true;
	return false;
}

static void start(struct gw_conn *c, struct backend *b)
{
	c->rec.t_dispatch = uv_hrtime();
	c->rec.backend = b;
	gw_account_queue(&c->srv->account, (enum conf_class)c->klass, GW_QOUT_DISPATCHED,
			 c->rec.t_dispatch - c->rec.t_ready);
	queue_on_dispatch(&c->srv->queue, b->pool->index, (enum conf_class)c->klass);
	backend_acquire(b);
	gw_exchange_start(c, b);
}

static void refund(struct gw_conn *c)
{
	uint64_t now = gw_now_ms(c->srv);
	queue_bucket_adjust(&c->tenant->requests, 1, now);
	queue_bucket_adjust(&c->tenant->tokens, c->est_tokens, now);
	c->est_tokens = 0;
	c->rec.tokens_estimated = 0;	/* nor is it charged in the metrics */
}

/* Off the queue, charges given back: it used nothing. */
static void unqueue(struct gw_conn *c)
{
	queue_remove(&c->srv->queue, &c->qi);
	refund(c);
}

/* A full class makes room for a lighter tenant: the fattest flow's newest
 * request leaves the queue with queue_full, as it would have on arrival. */
static void evict(struct gw_conn *v)
{
	struct gw_server *srv = v->srv;
	char msg[200];
	unqueue(v);
	v->state = GW_CONN_BODY;	/* read, not queued: being answered */
	uint64_t retry = queue_predicted_wait(&srv->queue, (enum conf_class)v->klass, v->tenant);
	snprintf(msg, sizeof(msg), "class '%s' queue is full and tenant '%s' holds the most of it; "
		 "retry in %llu ms", conf_class_name((enum conf_class)v->klass), v->tenant->cfg->name,
		 (unsigned long long)(retry ? retry : 1000));
	gw_conn_reject(v, GW_R_QUEUE_FULL, msg, retry ? retry : 1000);
}

void gw_dispatch_request(struct gw_conn *c)
{
	struct gw_server *srv = c->srv;
	const struct gw_msg *m = &c->http.msg;
	uint64_t now = gw_now_ms(srv);
	char msg[200];

	size_t keylen = 0;
	const char *key = api_key(m, &keylen);
	struct queue_tenant *t = key ? queue_tenant_by_key(&srv->tenants, key, keylen) : srv->tenants.anonymous;
	if (t == NULL) {
		if (key == NULL)
			gw_conn_reject(c, GW_R_MISSING_KEY, "an API key is required: "
				       "send 'Authorization: Bearer KEY' or 'x-api-key: KEY'", 0);
		else
			gw_conn_reject(c, GW_R_INVALID_KEY, "the API key is not valid", 0);
		return;
	}

	struct body_info bi;
	read_body(m, &bi);
	const struct gw_field *f = gw_msg_field(m, "x-sluice-class");
	bool capped;
	enum conf_class k = queue_classify(t, f ? gw_field_value(m, f) : NULL, f ? f->value_len : 0,
					   bi.tier_len ? bi.tier : NULL, bi.tier_len, &capped);
	if (!srv->conf->classes[k].defined)
		k = t->cfg->default_class;
	c->tenant = t;
	c->klass = (uint8_t)k;
	c->capped = capped;
	c->classified = true;
	const char *kname = conf_class_name(k);

	if (!class_has_backend(srv, k)) {
		snprintf(msg, sizeof(msg), "no healthy backend in any pool of class '%s'", kname);
		gw_conn_reject(c, GW_R_NO_BACKEND, msg, 0);
		return;
	}

	uint64_t wait;
	c->est_tokens = 0;
	if (!queue_bucket_take(&t->requests, 1, now, &wait)) {
		snprintf(msg, sizeof(msg), "tenant '%s' exceeded %g requests/s (burst %g); retry in %llu ms",
			 t->cfg->name, t->cfg->requests_per_s, t->cfg->burst, (unsigned long long)wait);
		gw_conn_reject(c, GW_R_RATE_LIMITED, msg, wait);
		return;
	}
	double out_tokens = bi.max_tokens >= 0 ? (double)bi.max_tokens : srv->conf->limits.default_max_tokens;
	double est = (double)m->body.len / CHARS_PER_TOKEN + out_tokens;
	if (!queue_bucket_take(&t->tokens, est, now, &wait)) {
		queue_bucket_adjust(&t->requests, 1, now);
		snprintf(msg, sizeof(msg), "tenant '%s' exceeded %g tokens/min (this request: ~%.0f); "
			 "retry in %llu ms", t->cfg->name, t->cfg->tokens_per_min, est, (unsigned long long)wait);
		gw_conn_reject(c, GW_R_TOKENS_EXCEEDED, msg, wait);
		return;
	}
	c->est_tokens = est;
	c->rec.tokens_estimated = est;

	struct queue_class *qc = &srv->queue.classes[k];
	struct backend *b = qc->count == 0 ? place(srv, k) : NULL;
	if (b != NULL) {
		start(c, b);
		return;
	}

	uint64_t deadline = now + qc->cfg->max_wait_ms;
	f = gw_msg_field(m, "x-sluice-deadline-ms");
	if (f != NULL) {
		/* A client deadline may only shorten the class's. */
		char num[24];
		size_t n = f->value_len < sizeof(num) - 1 ? f->value_len : sizeof(num) - 1;
		memcpy(num, gw_field_value(m, f), n);
		num[n] = '\0';
		char *end;
		unsigned long long d = strtoull(num, &end, 10);
		if (end != num && *end == '\0' && now + d < deadline)
			deadline = now + d;
	}
	uint64_t retry;
	struct queue_item *victim;
	switch (queue_check(&srv->queue, k, t, m->body.len, now, deadline, &retry, &victim)) {
	case QUEUE_FULL:
		refund(c);
		snprintf(msg, sizeof(msg), "class '%s' queue is full (%u requests queued); retry in %llu ms",
			 kname, qc->count, (unsigned long long)retry);
		gw_conn_reject(c, GW_R_QUEUE_FULL, msg, retry);
		return;
	case QUEUE_UNMEETABLE:
		refund(c);
		snprintf(msg, sizeof(msg), "class '%s' cannot start this request within its deadline "
			 "(%llu ms; predicted wait %llu ms); retry in %llu ms", kname,
			 (unsigned long long)(deadline - now),
			 (unsigned long long)queue_predicted_wait(&srv->queue, k, t), (unsigned long long)retry);
		gw_conn_reject(c, GW_R_DEADLINE_UNMEETABLE, msg, retry);
		return;
	case QUEUE_OK:
		break;
	}
	if (victim != NULL)
		evict(conn_of_item(victim));
	c->qi.tenant = t;
	c->qi.klass = (uint8_t)k;
	c->qi.deadline_ms = deadline;
	c->qi.cost = est;
	c->qi.bytes = m->body.len;
	if (queue_push(&srv->queue, &c->qi, now) < 0) {
		refund(c);
		gw_conn_reject(c, GW_R_INTERNAL, "out of memory", 0);
		return;
	}
	c->state = GW_CONN_QUEUED;
	gw_conn_disarm(c);
	if (deadline <= queue_next_deadline(&srv->queue))
		rearm(srv);
}

void gw_dispatch_kick(struct gw_server *srv)
{
	uint64_t now = gw_now_ms(srv);
	bool popped = false;
	for (size_t p = 0; p < srv->backends.npools && srv->queue.count > 0; p++) {
		struct backend_pool *pool = &srv->backends.pools[p];
		struct backend *b;
		while (srv->queue.count > 0 && (b = backend_pool_pick(pool, now)) != NULL) {
			struct queue_item *it = queue_pop(&srv->queue, p);
			if (it == NULL)
				break;
			popped = true;
			struct gw_conn *c = conn_of_item(it);
			c->state = GW_CONN_BODY;	/* off the queue: never withdrawn twice */
			start(c, b);
		}
	}
	if (popped)
		rearm(srv);
}

void gw_dispatch_release(struct gw_conn *c, struct backend *b, uint64_t held_ms)
{
	struct gw_server *srv = c->srv;
	backend_release(b);
	queue_on_release(&srv->queue, b->pool->index, (enum conf_class)c->klass, held_ms);
	gw_dispatch_kick(srv);
}

void gw_dispatch_withdraw(struct gw_conn *c)
{
	unqueue(c);
	gw_account_queue(&c->srv->account, (enum conf_class)c->klass, GW_QOUT_CANCELLED,
			 uv_hrtime() - c->rec.t_ready);
}

void gw_dispatch_on_deadline(uv_timer_t *t)
{
	struct gw_server *srv = t->data;
	uint64_t now = gw_now_ms(srv);
	struct queue_item *it;
	while ((it = queue_expired(&srv->queue, now)) != NULL) {
		struct gw_conn *c = conn_of_item(it);
		char msg[160];
		unqueue(c);	/* it used nothing: its charges come back */
		c->state = GW_CONN_BODY;	/* read, not queued: being answered */
		uint64_t retry = queue_predicted_wait(&srv->queue, (enum conf_class)c->klass, c->tenant);
		snprintf(msg, sizeof(msg), "no slot for class '%s' within the deadline (%llu ms)",
			 conf_class_name((enum conf_class)c->klass),
			 (unsigned long long)(it->deadline_ms - it->enqueued_ms));
		gw_conn_reject(c, GW_R_QUEUE_TIMEOUT, msg, retry > 0 ? retry : 1000);
	}
	rearm(srv);
}

void gw_dispatch_flush(struct gw_server *srv)
{
	struct queue_item *it;
	while ((it = queue_expired(&srv->queue, UINT64_MAX)) != NULL) {
		struct gw_conn *c = conn_of_item(it);
		unqueue(c);
		c->state = GW_CONN_BODY;
		gw_conn_reject(c, GW_R_SHUTTING_DOWN, "sluice is shutting down", 0);
	}
	uv_timer_stop(&srv->queue_timer);
}

void gw_dispatch_ratelimit_headers(const struct gw_conn *c, struct gw_buf *out)
{
	struct queue_tenant *t = c->tenant;
	uint64_t now = gw_now_ms(c->srv);
	if (!queue_bucket_unlimited(&t->requests)) {
		double level = queue_bucket_level(&t->requests, now);
		gw_buf_appendf(out, "x-ratelimit-limit-requests: %.0f\r\nx-ratelimit-remaining-requests: %.0f\r\n"
			       "x-ratelimit-reset-requests: %llums\r\n", t->cfg->burst, level > 0 ? floor(level) : 0,
			       (unsigned long long)queue_bucket_full_in(&t->requests, now));
	}
	if (!queue_bucket_unlimited(&t->tokens)) {
		double level = queue_bucket_level(&t->tokens, now);
		gw_buf_appendf(out, "x-ratelimit-limit-tokens: %.0f\r\nx-ratelimit-remaining-tokens: %.0f\r\n"
			       "x-ratelimit-reset-tokens: %llums\r\n", t->cfg->tokens_per_min,
			       level > 0 ? floor(level) : 0,
			       (unsigned long long)queue_bucket_full_in(&t->tokens, now));
	}
}

void gw_dispatch_reconcile(struct gw_conn *c, double used_tokens)
{
	queue_bucket_adjust(&c->tenant->tokens, c->est_tokens - used_tokens, gw_now_ms(c->srv));
	c->est_tokens = used_tokens;
	c->rec.tokens_reported = used_tokens;
}
