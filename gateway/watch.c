/*
 * watch.c - reload the config file when it changes; see watch.h.
 *
 * States: polling (the poll timer runs; at most one stat request in
 * flight), settling (a change seen, the settle timer armed; every further
 * change restarts it), closed.  The stat callback only arms the settle
 * timer; the reload runs from that timer, with nothing of ours up the
 * stack.
 *
 * The poll is ours rather than uv_fs_poll's because uv_fs_poll takes its
 * first stat as the baseline asynchronously, after it starts: a file
 * changed in between would never be reloaded.  Here the baseline is taken
 * at gw_watch_start(), before the first request can be served.
 *
 * Lifetime: the timers close with the server's handles; a stat request
 * still in flight then completes on its own (the loop runs until it has)
 * and its callback, seeing the watch closed, only cleans up.
 */
#include <stdlib.h>
#include <string.h>

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

/* Anything that tells one version of the file from another: a symlink
 * swap is a new inode, an edit a new mtime or ctime. */
static bool same_file(const uv_stat_t *a, const uv_stat_t *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mode == b->st_mode && a->st_uid == b->st_uid && a->st_gid == b->st_gid &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
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

static void on_stat(uv_fs_t *req)
{
	struct gw_watch *w = watch_from(req->data);
	int status = (int)req->result;
	uv_stat_t st = req->statbuf;
	uv_fs_req_cleanup(req);
	w->stating = false;
	if (!w->started)
		return;
	if (status < 0) {
		/* Said once per error, not once per poll. */
		if (status != w->error)
			gw_warn("config watch: %s: %s; the running config (generation %llu) stays",
				w->srv->conf->path, uv_strerror(status), (unsigned long long)w->srv->generation);
		w->error = status;
		uv_timer_stop(&w->settle);
		return;
	}
	if (w->error == 0 && same_file(&st, &w->seen))
		return;
	w->error = 0;
	w->seen = st;
	uv_timer_start(&w->settle, on_settled, GW_WATCH_SETTLE_MS, 0);
}

static void on_poll(uv_timer_t *t)
{
	struct gw_watch *w = watch_from(t->data);
	if (w->stating)
		return;		/* a slow filesystem: one stat at a time */
	int rc = uv_fs_stat(w->srv->loop, &w->req, w->srv->conf->path, on_stat);
	if (rc == 0)
		w->stating = true;
}

int gw_watch_start(struct gw_watch *w, struct gw_server *srv)
{
	memset(w, 0, sizeof(*w));
	w->magic = GW_WATCH_MAGIC;
	w->srv = srv;
	w->req.data = w;
	/* The baseline, synchronously: the file as it is now. */
	int rc = uv_fs_stat(srv->loop, &w->req, srv->conf->path, NULL);
	w->seen = w->req.statbuf;
	uv_fs_req_cleanup(&w->req);
	if (rc < 0) {
		gw_error("config watch: %s: %s", srv->conf->path, uv_strerror(rc));
		return rc;
	}
	uv_timer_init(srv->loop, &w->poll);
	uv_timer_init(srv->loop, &w->settle);
	w->poll.data = w->settle.data = w;
	uv_timer_start(&w->poll, on_poll, GW_WATCH_POLL_MS, GW_WATCH_POLL_MS);
	w->started = true;
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
