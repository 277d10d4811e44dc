/*
 * alog.h - the access log: one JSON line per request, never blocking.
 *
 * Lines are appended to a memory buffer; the buffer goes to the file in the
 * libuv thread pool (uv_fs_write) when it passes 64 KiB or once a second,
 * with at most one write in flight.  While a write is in flight new lines
 * keep accumulating; beyond 4 MiB waiting (a disk that stalls), lines are
 * dropped and counted instead of growing memory or blocking the loop.
 */
#ifndef SLUICE_GATEWAY_ALOG_H
#define SLUICE_GATEWAY_ALOG_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "gateway/buf.h"

struct gw_alog {
	uv_loop_t *loop;
	uv_file fd;			/* -1: no access log */
	struct gw_buf buf;		/* lines waiting */
	struct gw_buf out;		/* lines being written */
	size_t out_done;
	uv_fs_t req;
	bool writing;
	bool failed;			/* a write error was logged already */
	uint64_t lines, dropped;
};

/* "-" is stdout; NULL disables the log.  Returns 0 or a negative errno. */
int gw__alog_open(struct gw_alog *al, uv_loop_t *loop, const char *path);

/* Take one complete line (ending in '\n'). */
void gw__alog_append(struct gw_alog *al, const char *line, size_t len);

/* Start writing what is buffered, if nothing is being written. */
void gw__alog_flush(struct gw_alog *al);

/* Write what is left synchronously and close.  After the loop has ended. */
void gw__alog_close(struct gw_alog *al);

#endif
