/*
 * watch.c - reload the config file when it changes; see watch.h.
 *
 * States: idle (polling), settling (a change seen, the settle timer armed;
 * every further change restarts it), and closed.  The poll callback only
 * arms the timer; the reload runs from the timer, on the loop, with
 * nothing of ours up the stack.
 */
#include <stdlib.h>

#include "gateway/log.h"
#include "gateway/server.h"
#include "gateway/watch.h"

static struct gw_watch *watch_from(void *data)
{
	struct gw_watch *w = data;
	if (w == NULL || w->magic != GW_WATCH_MAGIC)
		abort();
	return w;
}

static void on_settled(uv_timer_t *t)
{
	struct gw_watch *w = watch_from(t->data);
	struct gw_server *srv = w->srv;
	if (srv->draining)
		return;
	gw_info("config watch: %s changed", srv->conf->path);
	gw_server_reload(srv);
}

static void on_poll(uv_fs_poll_t *p, int status, const uv_stat_t *prev, const uv_stat_t *curr)
{
	struct gw_watch *w = watch_from(p->data);
	if (status < 0) {
		/* libuv calls again only when the error changes or the file
		 * comes back: each line here is news. */
		gw_warn("config watch: %s: %s; the running config (generation %llu) stays", w->srv->conf->path,
			uv_strerror(status), (unsigned long long)w->srv->generation);
		uv_timer_stop(&w->settle);
		return;
	}
	uv_timer_start(&w->settle, on_settled, GW_WATCH_SETTLE_MS, 0);
}

int gw_watch_start(struct gw_watch *w, struct gw_server *srv)
{
	w->magic = GW_WATCH_MAGIC;
	w->srv = srv;
	uv_fs_poll_init(srv->loop, &w->poll);
	uv_timer_init(srv->loop, &w->settle);
	w->poll.data = w->settle.data = w;
	int rc = uv_fs_poll_start(&w->poll, on_poll, srv->conf->path, GW_WATCH_POLL_MS);
	w->started = true;
	if (rc < 0) {
		gw_error("config watch: %s: %s", srv->conf->path, uv_strerror(rc));
		gw_watch_close(w);
		return rc;
	}
	gw_info("config watch: reloading %s when it changes", srv->conf->path);
	return 0;
}

void gw_watch_close(struct gw_watch *w)
{
	if (!w->started)
		return;
	w->started = false;
	uv_close((uv_handle_t *)&w->poll, NULL);
	uv_close((uv_handle_t *)&w->settle, NULL);
}
