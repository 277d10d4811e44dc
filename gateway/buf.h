/*
 * buf.h - a growable byte buffer.
 *
 * The buffer owns `data`; gw_buf_finish() frees it.  Ownership can be handed
 * to someone else (a write request) with gw_buf_take(), which leaves the
 * buffer empty.  Growth is geometric; callers bound the size themselves by
 * checking `len` against a limit from the config before appending.
 */
#ifndef SLUICE_GATEWAY_BUF_H
#define SLUICE_GATEWAY_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct gw_buf {
	char *data;
	size_t len;
	size_t cap;
};

#define GW_BUF_INIT { NULL, 0, 0 }

/* Free the storage and reset to empty. */
void gw_buf_finish(struct gw_buf *b);

/* Make room for `extra` more bytes; returns 0 or -ENOMEM. */
int gw_buf_reserve(struct gw_buf *b, size_t extra);

/* The same, growing to exactly what is asked (a size known in advance, such
 * as a Content-Length: no copy on the way, no slack after). */
int gw_buf_reserve_exact(struct gw_buf *b, size_t extra);

/* Append bytes; returns 0 or -ENOMEM (the buffer is unchanged on failure). */
int gw_buf_append(struct gw_buf *b, const void *p, size_t n);
int gw_buf_appends(struct gw_buf *b, const char *s);
int gw_buf_appendf(struct gw_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int gw_buf_vappendf(struct gw_buf *b, const char *fmt, va_list ap);

/*
 * Fast appenders for the request path, where printf's parsing of a format
 * string costs more than the formatting itself.
 */
int gw_buf_append_u64(struct gw_buf *b, uint64_t v);
int gw_buf_append_hex(struct gw_buf *b, uint64_t v);	/* lower case, no prefix */
int gw_buf_append_ms(struct gw_buf *b, uint64_t ns);	/* milliseconds, 3 decimals */

/* Append `s` as a JSON string literal (quotes included, escaped: control
 * bytes and non-ASCII as \u00XX, byte by byte). */
int gw_buf_append_json(struct gw_buf *b, const char *s, size_t len);

/* Append `s` escaped as a Prometheus label value (\\, \", \n). */
int gw_buf_append_label(struct gw_buf *b, const char *s);

/* Hand the storage to the caller (who must free() it); the buffer is left empty. */
char *gw_buf_take(struct gw_buf *b);

#endif
