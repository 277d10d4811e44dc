/*
 * alog.c - the access log writer; see alog.h.
 *
 * Two buffers: `buf` takes lines, `out` is what the thread pool is writing.
 * A flush swaps them when no write is in flight, so a line is copied once
 * and the loop never waits for the disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "gateway/alog.h"
#include "gateway/log.h"

#define FLUSH_AT (64 * 1024)
#define UNWRITTEN_MAX (4 * 1024 * 1024)	/* lines waiting for the writer; dropped beyond */

int gw__alog_open(struct gw_alog *al, uv_loop_t *loop, const char *path)
{
	*al = (struct gw_alog){ .loop = loop, .fd = -1 };
	if (path == NULL)
		return 0;
	if (path[0] == '-' && path[1] == '\0') {
		al->fd = dup(STDOUT_FILENO);
	} else {
		al->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	}
	if (al->fd < 0) {
		int e = errno;
		gw_error("access_log: cannot open %s: %s", path, strerror(e));
		return -e;
	}
	return 0;
}

static void start_write(struct gw_alog *al);

static void on_written(uv_fs_t *req)
{
	struct gw_alog *al = req->data;
	ssize_t n = req->result;
	uv_fs_req_cleanup(req);
	al->writing = false;
	if (n < 0) {
		if (!al->failed)
			gw_error("access_log: write failed: %s; lines are dropped until it works again",
				 uv_strerror((int)n));
		al->failed = true;
		al->dropped += 1;	/* at least one line; the exact count is not kept */
		al->out.len = 0;
		al->out_done = 0;
		return;
	}
	al->failed = false;
	al->out_done += (size_t)n;
	if (al->out_done < al->out.len) {
		start_write(al);	/* a short write: the rest first, in order */
		return;
	}
	al->out.len = 0;
	al->out_done = 0;
	if (al->buf.len >= FLUSH_AT)
		gw__alog_flush(al);
}

static void start_write(struct gw_alog *al)
{
	uv_buf_t b = uv_buf_init(al->out.data + al->out_done, (unsigned)(al->out.len - al->out_done));
	al->req.data = al;
	if (uv_fs_write(al->loop, &al->req, al->fd, &b, 1, -1, on_written) == 0)
		al->writing = true;
	else {
		al->dropped++;
		al->out.len = 0;
		al->out_done = 0;
	}
}

void gw__alog_flush(struct gw_alog *al)
{
	if (al->fd < 0 || al->writing || al->buf.len == 0)
		return;
	struct gw_buf t = al->out;
	al->out = al->buf;
	al->buf = t;
	al->buf.len = 0;
	al->out_done = 0;
	start_write(al);
}

void gw__alog_append(struct gw_alog *al, const char *line, size_t len)
{
	if (al->fd < 0)
		return;
	if (al->buf.len + len > UNWRITTEN_MAX || gw_buf_append(&al->buf, line, len) < 0) {
		al->dropped++;
		return;
	}
	al->lines++;
	if (al->buf.len >= FLUSH_AT)
		gw__alog_flush(al);
}

void gw__alog_close(struct gw_alog *al)
{
	if (al->fd < 0)
		return;
	/* The loop has ended, so no write is in flight: finish synchronously. */
	struct gw_buf *bufs[2] = { &al->out, &al->buf };
	for (int i = 0; i < 2; i++) {
		size_t off = i == 0 ? al->out_done : 0;
		while (off < bufs[i]->len) {
			ssize_t n = write(al->fd, bufs[i]->data + off, bufs[i]->len - off);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
	}
	gw_buf_finish(&al->out);
	gw_buf_finish(&al->buf);
	close(al->fd);
	al->fd = -1;
}
