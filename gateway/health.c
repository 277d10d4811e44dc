/*
 * health.c - active health checks, outlier outcomes and their log lines;
 * see health.h.
 *
 * A probe is in one of two states, and its one timer serves both:
 *
 *   waiting   no connection; the timer fires when the next check is due.
 *   checking  `get` is the check's GET (bget.h); the timer fires at the
 *             check's deadline.
 *
 * Every end of a check goes through check_done(), which cancels the GET if
 * it is still out, records the verdict and arms the next check.  A probe
 * let go of (its backend retired, its pool's checks turned off, the drain
 * over) has b == NULL and waits only for its timer's close callback.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/health.h"
#include "backends/outlier.h"
#include "gateway/bget.h"
#include "gateway/dispatch.h"
#include "gateway/health.h"
#include "gateway/log.h"
#include "gateway/server.h"

#define GW_PROBE_MAGIC 0x50524f42u	/* "PROB" */

struct gw_probe {
	uint32_t magic;
	struct gw_server *srv;
	struct backend *b;		/* NULL once let go of */
	uv_timer_t timer;
	struct gw_bget *get;		/* the check's GET, while checking */
	uint64_t started_ms;		/* when the current or last check started */
	bool timer_closed;
};

static struct gw_probe *probe_from(void *data)
{
	struct gw_probe *p = data;
	if (p == NULL || p->magic != GW_PROBE_MAGIC)
		abort();
	return p;
}

static void maybe_free(struct gw_probe *p)
{
	if (p->b != NULL || !p->timer_closed)
		return;
	p->magic = 0;
	free(p);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct gw_probe *p = probe_from(h->data);
	p->timer_closed = true;
	maybe_free(p);
}

/* Give up on the check's GET, if it is still out. */
static void check_close(struct gw_probe *p)
{
	if (p->get != NULL)
		gw__bget_cancel(p->get);
	p->get = NULL;
}

static void on_retired(struct backend *b, void *arg);

/* Let go of the backend: no check runs again, and the probe goes once
 * libuv is done with it. */
static void probe_stop(struct gw_probe *p)
{
	if (p->b == NULL)
		return;
	if (p->b->retire_cb == on_retired)
		p->b->retire_cb = NULL;
	p->b->retire_arg = NULL;
	p->b = NULL;
	check_close(p);
	uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

static void on_retired(struct backend *b, void *arg)
{
	(void)b;
	probe_stop(probe_from(arg));
}

/* interval_ms +- 10%, so that checks from many gateways drift apart.  The
 * generator need not be good, only cheap and different per process. */
static uint64_t jittered(uint64_t interval_ms)
{
	static uint64_t state;
	if (state == 0)
		state = uv_hrtime() | 1;
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	uint64_t span = interval_ms / 5;	/* 20%: from -10% to +10% */
	return interval_ms - interval_ms / 10 + (span ? state % (span + 1) : 0);
}

static void on_timer(uv_timer_t *t);

/* Record the check's verdict, log a change, and arm the next check. */
static void check_done(struct gw_probe *p, enum backend_check_result r, uint16_t status, const char *detail)
{
	struct gw_server *srv = p->srv;
	struct backend *b = p->b;
	const struct conf_pool *cp = b->pool->cfg;
	const struct conf_health *cfg = &cp->health;
	uint64_t now = gw_now_ms(srv);
	check_close(p);
	uint32_t fails = b->health.fails + 1;
	switch (backend_health_record(b, cfg, r, status, now)) {
	case BACKEND_HEALTH_WENT_DOWN:
		if (status != 0)
			gw_warn("pool '%s': backend %s down: health check failed %u times (HTTP %u)", cp->name,
				b->name, fails, status);
		else
			gw_warn("pool '%s': backend %s down: health check failed %u times (%s)", cp->name, b->name,
				fails, detail);
		break;
	case BACKEND_HEALTH_WENT_UP:
		gw_info("pool '%s': backend %s up: %u health checks passed", cp->name, b->name, b->health.passes);
		gw__dispatch_kick(srv);	/* queued requests may start on it */
		break;
	case BACKEND_HEALTH_SAME:
		if (r != BACKEND_CHECK_OK && status != 0)
			gw_debug("pool '%s': backend %s health check failed (HTTP %u)", cp->name, b->name, status);
		else if (r != BACKEND_CHECK_OK)
			gw_debug("pool '%s': backend %s health check %s (%s)", cp->name, b->name,
				 backend_check_result_name(r), detail);
		break;
	}
	uint64_t next = jittered(cfg->interval_ms), spent = now - p->started_ms;
	uv_timer_start(&p->timer, on_timer, next > spent ? next - spent : 1, 0);
}

static void on_answer(void *arg, const struct gw_bget_answer *a)
{
	struct gw_probe *p = probe_from(arg);
	p->get = NULL;	/* done: gone when this returns */
	switch (a->result) {
	case GW_BGET_ANSWERED: {
		bool ok = a->status >= 200 && a->status < 300;
		check_done(p, ok ? BACKEND_CHECK_OK : BACKEND_CHECK_FAILED, a->status, "");
		return;
	}
	case GW_BGET_REFUSED:
		check_done(p, BACKEND_CHECK_REFUSED, 0, a->detail);
		return;
	case GW_BGET_FAILED:
		check_done(p, BACKEND_CHECK_FAILED, 0, a->detail);
		return;
	}
}

/* The checks are the better judge of a backend that refused connections a
 * while ago: one that connects ends the passive mark, which could otherwise
 * keep it out for up to 30 s after it is back. */
static void on_connected(void *arg)
{
	backend_mark_ok(probe_from(arg)->b);
}

static void check_start(struct gw_probe *p)
{
	struct gw_server *srv = p->srv;
	struct backend *b = p->b;
	p->started_ms = gw_now_ms(srv);
	/* The head is all a check needs: the body is never read. */
	const struct gw_bget_req req = {
		.path = b->pool->cfg->health.path,
		.user_agent = "sluice-health-check",
		.accept = "*/*",
		.cb = on_answer,
		.connected = on_connected,
		.arg = p,
	};
	int rc = gw__bget_start(srv, b, &req, &p->get);
	if (rc < 0) {
		check_done(p, BACKEND_CHECK_REFUSED, 0, uv_strerror(rc));
		return;
	}
	uv_timer_start(&p->timer, on_timer, b->pool->cfg->health.timeout_ms, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct gw_probe *p = probe_from(t->data);
	if (p->get != NULL) {
		char msg[64];
		snprintf(msg, sizeof(msg), "timeout after %llu ms",
			 (unsigned long long)p->b->pool->cfg->health.timeout_ms);
		check_done(p, BACKEND_CHECK_TIMEOUT, 0, msg);
		return;
	}
	check_start(p);
}

static void probe_start(struct gw_server *srv, struct backend *b)
{
	struct gw_probe *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		gw_error("pool '%s': backend %s: no health checks: out of memory", b->pool->cfg->name, b->name);
		return;
	}
	p->magic = GW_PROBE_MAGIC;
	p->srv = srv;
	p->b = b;
	uv_timer_init(srv->loop, &p->timer);
	p->timer.data = p;
	b->retire_cb = on_retired;
	b->retire_arg = p;
	/* Soon, but not all members of a pool at the same instant. */
	uv_timer_start(&p->timer, on_timer, jittered(b->pool->cfg->health.interval_ms) / 10, 0);
}

void gw__health_sync(struct gw_server *srv)
{
	if (srv->stopped)
		return;
	for (size_t i = 0; i < srv->backends.npools; i++) {
		struct backend_pool *pool = srv->backends.pools[i];
		bool want = pool->cfg->health.enabled;
		for (size_t j = 0; j < pool->nbackends; j++) {
			struct backend *b = pool->backends[j];
			bool has = b->retire_cb == on_retired;
			if (want && !has && b->retire_cb == NULL) {
				probe_start(srv, b);
			} else if (!want && has) {
				bool was_down = b->health.down;
				probe_stop(probe_from(b->retire_arg));
				backend_health_reset(b);
				if (was_down)
					gw_info("pool '%s': backend %s up: health checks turned off", pool->cfg->name,
						b->name);
			}
		}
	}
}

void gw__health_stop(struct gw_server *srv)
{
	for (size_t i = 0; i < srv->backends.npools; i++) {
		struct backend_pool *pool = srv->backends.pools[i];
		for (size_t j = 0; j < pool->nbackends; j++)
			if (pool->backends[j]->retire_cb == on_retired)
				probe_stop(probe_from(pool->backends[j]->retire_arg));
	}
}

void gw__health_outcome(struct gw_server *srv, struct backend *b, bool ok)
{
	const struct conf_outlier *cfg = &b->pool->cfg->outlier;
	uint64_t now = gw_now_ms(srv);
	switch (backend_outlier_report(b, ok, now)) {
	case BACKEND_OUTLIER_EJECTED:
		gw_warn("pool '%s': backend %s ejected for %llu ms: %u failed requests in a row (ejection %llu)",
			b->pool->cfg->name, b->name, (unsigned long long)(b->outlier.until_ms - now),
			cfg->consecutive_failures, (unsigned long long)b->outlier.ejections);
		break;
	case BACKEND_OUTLIER_KEPT:
		gw_warn("pool '%s': backend %s not ejected after %u failed requests in a row: "
			"max_ejected_share %g of the pool is already ejected",
			b->pool->cfg->name, b->name, cfg->consecutive_failures, cfg->max_ejected_share);
		break;
	case BACKEND_OUTLIER_SAME:
		break;
	}
}

void gw__health_tick(struct gw_server *srv)
{
	uint64_t now = gw_now_ms(srv);
	for (size_t i = 0; i < srv->backends.npools; i++) {
		struct backend_pool *pool = srv->backends.pools[i];
		for (size_t j = 0; j < pool->nbackends; j++)
			if (backend_outlier_returned(pool->backends[j], now))
				gw_info("pool '%s': backend %s back from ejection", pool->cfg->name,
					pool->backends[j]->name);
	}
	gw__health_sync(srv);
}

bool gw__health_ready(const struct gw_server *srv)
{
	uint64_t now = gw_now_ms(srv);
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		const struct conf_class_cfg *cc = &srv->conf->classes[k];
		if (!cc->defined)
			continue;
		for (size_t i = 0; i < cc->npools; i++)
			if (backend_pool_has_up(srv->backends.pools[cc->pools[i]], now))
				return true;
	}
	return false;
}
