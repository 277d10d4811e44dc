/*
 * adapt.c - polls of vLLM's /metrics and the steps of each backend's slot
 * controller; see adapt.h.
 *
 * A poll is one GET /metrics on a connection of its own, closed after the
 * answer (bget.h: a poll a second does not need keep-alive, and a
 * connection that outlives its poll would hold a retired backend).  While
 * the GET's connection is open its backend cannot be freed (backends/
 * counts the connection), so `b` is valid until poll_done() cancels the
 * GET or the GET's answer returns; the backend points back at its poll
 * (adapt_poll) so that it is never polled twice at once.  Every end of a
 * poll goes through poll_done(), which steps the controller, lets go of
 * the backend and of the GET, and frees the poll.  Polls in flight are on
 * the state's list, which the timer scans for deadlines: a retired backend
 * is no longer among the pool's members, but its poll still ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/promtext.h"
#include "gateway/adapt.h"
#include "gateway/bget.h"
#include "gateway/dispatch.h"
#include "gateway/log.h"
#include "gateway/server.h"
#include "gateway/slot.h"

#define GW_ADAPT_MAGIC 0x41445054u	/* "ADPT" */
#define GW_APOLL_MAGIC 0x41504f4cu	/* "APOL" */

struct gw_apoll {
	uint32_t magic;
	struct gw_adapt *st;
	struct backend *b;
	struct gw_bget *get;		/* NULL once answered */
	uint64_t deadline_ms;
	struct gw_apoll *next;		/* in gw_adapt.polls while not done */
};

struct gw_adapt {
	uint32_t magic;
	struct gw_server *srv;
	uv_timer_t timer;
	struct gw_apoll *polls;
	bool stopped;
};

static struct gw_adapt *adapt_from(void *data)
{
	struct gw_adapt *a = data;
	if (a == NULL || a->magic != GW_ADAPT_MAGIC)
		abort();
	return a;
}

static struct gw_apoll *poll_from(void *data)
{
	struct gw_apoll *p = data;
	if (p == NULL || p->magic != GW_APOLL_MAGIC)
		abort();
	return p;
}

/* The controller moved: the backend's share, the queues, maybe a start. */
static void applied(struct gw_server *srv, struct backend *b, enum backend_adapt_change ch)
{
	if (ch == BACKEND_ADAPT_SAME || b->retired)
		return;
	backend_slots_apply(b);
	gw_debug("pool '%s': backend %s slots %s to %u (%u for this replica)", b->pool->cfg->name, b->name,
		 ch == BACKEND_ADAPT_UP ? "up" : "down", b->adapt.limit, b->max_inflight);
	gw__slot_sync_pools(srv);
	if (ch == BACKEND_ADAPT_UP)
		gw__dispatch_kick(srv);
}

/* Do requests that b's pool could take wait in the queue now? */
static bool pool_queued(const struct gw_server *srv, const struct backend *b)
{
	size_t p = b->pool->index;
	if (p >= srv->backends.npools)
		return false;
	for (int k = 0; k < CONF_CLASS_COUNT; k++)
		if ((queue_class_pools(&srv->queue, (enum conf_class)k) >> p & 1) &&
		    queue_waiting_for(&srv->queue, p, (enum conf_class)k) > 0)
			return true;
	return false;
}

static struct backend_adapt_use use_of(const struct gw_server *srv, const struct backend *b)
{
	struct backend_adapt_use u = {
		.binding = b->adapt.peak >= b->max_inflight,
		.queued = pool_queued(srv, b),
		.draining = b->inflight > b->max_inflight,
	};
	return u;
}

/* A step on what a poll read (load NULL: nothing), with its log lines. */
static void metrics_step(struct gw_server *srv, struct backend *b, const struct backend_vllm_load *load,
			 const char *why)
{
	if (!b->adapt.on || b->retired || b->pool->cfg->slots.adapt != CONF_SLOTS_VLLM_METRICS)
		return;	/* a reload turned it off, or to latency, while the poll was out */
	bool was_lost = b->adapt.lost;
	enum backend_adapt_change ch = backend_adapt_metrics(&b->adapt, load, use_of(srv, b), gw_now_ms(srv));
	if (load == NULL && !was_lost)
		gw_warn("pool '%s': backend %s slots no longer adapt: metrics unreachable (%s); holding %u slots",
			b->pool->cfg->name, b->name, why, b->adapt.limit);
	else if (load != NULL && was_lost)
		gw_info("pool '%s': backend %s slots adapt again: metrics answer (%u slots)", b->pool->cfg->name,
			b->name, b->adapt.limit);
	applied(srv, b, ch);
}

/* End a poll: step the controller, let go of the backend, close. */
static void poll_done(struct gw_apoll *p, const struct backend_vllm_load *load, const char *why)
{
	struct gw_adapt *st = p->st;
	struct backend *b = p->b;
	for (struct gw_apoll **pp = &st->polls; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	if (!st->stopped)
		metrics_step(st->srv, b, load, why);
	b->adapt_poll = NULL;
	if (p->get != NULL)
		gw__bget_cancel(p->get);	/* may free a retired b */
	p->magic = 0;
	free(p);
}

static void on_answer(void *arg, const struct gw_bget_answer *a)
{
	struct gw_apoll *p = poll_from(arg);
	p->get = NULL;	/* done: closed when this returns */
	char why[48];
	if (a->result != GW_BGET_ANSWERED) {
		poll_done(p, NULL, a->detail);
		return;
	}
	if (a->status != 200) {
		snprintf(why, sizeof(why), "HTTP %u", a->status);
		poll_done(p, NULL, why);
		return;
	}
	struct backend_vllm_load load;
	if (backend_promtext_vllm(a->body, a->body_len, &load) < 0) {
		poll_done(p, NULL, "no vllm:num_requests_running/waiting");
		return;
	}
	poll_done(p, &load, "");
}

static void poll_start(struct gw_adapt *st, struct backend *b, uint64_t now)
{
	struct gw_apoll *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		metrics_step(st->srv, b, NULL, "out of memory");
		return;
	}
	p->magic = GW_APOLL_MAGIC;
	p->st = st;
	p->b = b;
	p->deadline_ms = now + b->pool->cfg->slots.interval_ms;
	p->next = st->polls;
	st->polls = p;
	b->adapt_poll = p;
	const struct gw_bget_req req = {
		.path = "/metrics",
		.user_agent = "sluice-slots",
		.accept = "text/plain",
		.max_body = BACKEND_PROMTEXT_MAX,
		.cb = on_answer,
		.arg = p,
	};
	int rc = gw__bget_start(st->srv, b, &req, &p->get);
	if (rc < 0)
		poll_done(p, NULL, uv_strerror(rc));
}

static void sync_backend(struct backend *b, const struct conf_slots *s, const char *pool)
{
	bool want = s->adapt != CONF_SLOTS_OFF;
	if (want) {
		bool was = b->adapt.on;
		unsigned lo = b->adapt.min, hi = b->adapt.max;
		backend_adapt_start(&b->adapt, b->total, s->min, s->max);
		if (!was)
			gw_info("pool '%s': backend %s slots adapt (%s) between %u and %u, from %u", pool, b->name,
				conf_slots_adapt_words[s->adapt], s->min, s->max, b->adapt.limit);
		else if (lo != s->min || hi != s->max)
			gw_info("pool '%s': backend %s slots adapt between %u and %u now (%u)", pool, b->name, s->min,
				s->max, b->adapt.limit);
	} else if (b->adapt.on) {
		backend_adapt_stop(&b->adapt);
		gw_info("pool '%s': backend %s slots no longer adapt: max_inflight %u", pool, b->name, b->total);
	}
	backend_slots_apply(b);
}

void gw__adapt_sync(struct gw_server *srv)
{
	unsigned before = 0, after = 0;
	for (size_t i = 0; i < srv->backends.npools; i++) {
		struct backend_pool *p = srv->backends.pools[i];
		before += p->slots;
		for (size_t j = 0; j < p->nbackends; j++)
			sync_backend(p->backends[j], &p->cfg->slots, p->cfg->name);
		after += p->slots;
	}
	/* Cheap to tell even when nothing moved; a per-pool change with an
	 * equal sum is rare enough to tell always after a reload. */
	gw__slot_sync_pools(srv);
	if (after > before)
		gw__dispatch_kick(srv);
}

/* Members that joined since the last tick start adapting. */
static bool needs_sync(const struct gw_server *srv)
{
	for (size_t i = 0; i < srv->backends.npools; i++) {
		const struct backend_pool *p = srv->backends.pools[i];
		bool want = p->cfg->slots.adapt != CONF_SLOTS_OFF;
		for (size_t j = 0; j < p->nbackends; j++)
			if (p->backends[j]->adapt.on != want)
				return true;
	}
	return false;
}

static void on_timer(uv_timer_t *t)
{
	struct gw_adapt *st = adapt_from(t->data);
	struct gw_server *srv = st->srv;
	uint64_t now = gw_now_ms(srv);
	if (st->stopped)
		return;
	/* Deadlines first: a poll's end may change the list. */
	for (struct gw_apoll *p = st->polls, *next; p != NULL; p = next) {
		next = p->next;
		if (now >= p->deadline_ms)
			poll_done(p, NULL, "timeout");
	}
	if (needs_sync(srv))
		gw__adapt_sync(srv);
	for (size_t i = 0; i < srv->backends.npools; i++) {
		struct backend_pool *pool = srv->backends.pools[i];
		const struct conf_slots *s = &pool->cfg->slots;
		if (s->adapt == CONF_SLOTS_OFF)
			continue;
		for (size_t j = 0; j < pool->nbackends; j++) {
			struct backend *b = pool->backends[j];
			if (b->adapt_poll != NULL || now - b->adapt.last_ms < s->interval_ms)
				continue;
			if (s->adapt == CONF_SLOTS_VLLM_METRICS) {
				b->adapt.last_ms = now;	/* the next poll is due an interval after this one started */
				poll_start(st, b, now);
			} else {
				applied(srv, b, backend_adapt_latency(&b->adapt, use_of(srv, b), now));
			}
		}
	}
}

int gw__adapt_init(struct gw_server *srv)
{
	struct gw_adapt *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return UV_ENOMEM;
	st->magic = GW_ADAPT_MAGIC;
	st->srv = srv;
	int rc = uv_timer_init(srv->loop, &st->timer);
	if (rc < 0) {
		free(st);
		return rc;
	}
	st->timer.data = st;
	uv_timer_start(&st->timer, on_timer, GW_ADAPT_TICK_MS, GW_ADAPT_TICK_MS);
	uv_unref((uv_handle_t *)&st->timer);
	srv->adapt = st;
	gw__adapt_sync(srv);
	return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct gw_adapt *st = adapt_from(h->data);
	st->magic = 0;
	free(st);
}

void gw__adapt_stop(struct gw_server *srv)
{
	struct gw_adapt *st = srv->adapt;
	if (st == NULL)
		return;
	srv->adapt = NULL;
	st->stopped = true;
	while (st->polls != NULL)
		poll_done(st->polls, NULL, "stopped");
	uv_close((uv_handle_t *)&st->timer, on_timer_closed);
}

void gw__adapt_first_token(struct backend *b, uint64_t ns)
{
	if (b->adapt.on && b->pool->cfg->slots.adapt == CONF_SLOTS_LATENCY)
		backend_adapt_ttft(&b->adapt, (double)ns / 1e6);
}
