/*
 * watch.h - reload the config file when it changes (sluice --watch).
 *
 * A Kubernetes ConfigMap volume never rewrites a file in place: the kubelet
 * writes a new directory and swaps the `..data` symlink that the file's own
 * symlink goes through.  An inotify watch on the file would be left on the
 * old inode; one on the directory sees the swap but not an edit behind a
 * symlink that points elsewhere.  So the file is polled instead: a stat()
 * every GW_WATCH_POLL_MS, on libuv's thread pool, follows every symlink,
 * and any change of the file it ends at (inode, device, size, mtime, ctime,
 * mode, owner) counts, whatever way it was made (an editor, `mv` over it,
 * a symlink swap, a new mount).  Nothing needs to be re-armed after a swap.
 * The first stat is the baseline, taken when the watch starts (right after
 * the listeners are bound): a change between the config's load and then
 * is not seen.
 *
 * A change is acted on once the file has been quiet for GW_WATCH_SETTLE_MS,
 * which is longer than a poll interval: a writer that truncates and then
 * writes is seen as one change, not as an empty file.  The reload is
 * exactly SIGHUP's (gw_server_reload(): same validation, same refusal, same
 * log lines), preceded by "config watch: FILE changed".  A file that
 * disappears is logged once and the running config stays; its return is a
 * change.  Nothing is reloaded while the server drains.
 *
 * A gw_watch is embedded in the server; its two timers are closed by
 * gw_watch_close() with the server's other handles, and a stat still in
 * flight completes before the loop ends.
 */
#ifndef SLUICE_GATEWAY_WATCH_H
#define SLUICE_GATEWAY_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define GW_WATCH_MAGIC 0x57544348u	/* "WTCH" */
#define GW_WATCH_POLL_MS 200
#define GW_WATCH_SETTLE_MS 300

struct gw_server;

struct gw_watch {
	uint32_t magic;
	struct gw_server *srv;
	uv_timer_t poll;		/* every GW_WATCH_POLL_MS: stat the path */
	uv_timer_t settle;		/* restarted by every change; fires once quiet */
	uv_fs_t req;			/* the stat in flight */
	uv_stat_t seen;			/* the file as last seen */
	int error;			/* the last stat's error (logged once), or 0 */
	bool stating;			/* req is in flight */
	bool started;			/* the timers are open */
};

/*
 * Start watching the server's config file (srv->conf->path, as given on
 * the command line: a reload reads that path again).  Returns 0, or a
 * negative uv error when the file cannot be stat()ed (logged; nothing is
 * left running).
 */
int gw_watch_start(struct gw_watch *w, struct gw_server *srv);

/* Close the watch's handles (no-op when it never started or is closed). */
void gw_watch_close(struct gw_watch *w);

#endif
