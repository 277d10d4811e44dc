/* buf.c - growable byte buffer; see buf.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/buf.h"

void gw_buf_finish(struct gw_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Make room for `extra` more bytes: doubling, or exactly what is asked. */
static int reserve(struct gw_buf *b, size_t extra, bool exact)
{
	if (b->cap - b->len >= extra)
		return 0;
	size_t need = b->len + extra;
	if (need < b->len)
		return -ENOMEM;
	size_t cap = exact ? need : b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (p == NULL)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int gw_buf_reserve(struct gw_buf *b, size_t extra)
{
	return reserve(b, extra, false);
}

int gw_buf_reserve_exact(struct gw_buf *b, size_t extra)
{
	return reserve(b, extra, true);
}

int gw_buf_append(struct gw_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	int rc = gw_buf_reserve(b, n);
	if (rc < 0)
		return rc;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int gw_buf_appends(struct gw_buf *b, const char *s)
{
	return gw_buf_append(b, s, strlen(s));
}

int gw_buf_vappendf(struct gw_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	char small[256];
	int n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return gw_buf_append(b, small, (size_t)n);
	int rc = gw_buf_reserve(b, (size_t)n + 1);
	if (rc < 0)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int gw_buf_appendf(struct gw_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = gw_buf_vappendf(b, fmt, ap);
	va_end(ap);
	return rc;
}

int gw_buf_append_u64(struct gw_buf *b, uint64_t v)
{
	char tmp[20];
	int i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return gw_buf_append(b, tmp + i, sizeof(tmp) - (size_t)i);
}

int gw_buf_append_hex(struct gw_buf *b, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[16];
	int i = sizeof(tmp);
	do {
		tmp[--i] = digits[v & 15];
		v >>= 4;
	} while (v != 0);
	return gw_buf_append(b, tmp + i, sizeof(tmp) - (size_t)i);
}

int gw_buf_append_ms(struct gw_buf *b, uint64_t ns)
{
	uint64_t us = ns / 1000;
	char frac[4] = { '.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10), (char)('0' + us % 10) };
	int rc = gw_buf_append_u64(b, us / 1000);
	return rc | gw_buf_append(b, frac, sizeof(frac));
}

char *gw_buf_take(struct gw_buf *b)
{
	char *p = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

int gw_buf_append_json(struct gw_buf *b, const char *s, size_t len)
{
	int rc = gw_buf_append(b, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch != '"' && ch != '\\' && ch < 0x7f)
			continue;
		rc |= gw_buf_append(b, s + run, i - run);
		run = i + 1;
		if (ch == '"' || ch == '\\')
			rc |= gw_buf_appendf(b, "\\%c", ch);
		else
			rc |= gw_buf_appendf(b, "\\u%04x", ch);	/* control bytes and non-ASCII, byte by byte */
	}
	rc |= gw_buf_append(b, s + run, len - run);
	rc |= gw_buf_append(b, "\"", 1);
	return rc;
}

int gw_buf_append_label(struct gw_buf *b, const char *s)
{
	int rc = 0;
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			rc |= gw_buf_appendf(b, "\\%c", *s);
		else if (*s == '\n')
			rc |= gw_buf_append(b, "\\n", 2);
		else
			rc |= gw_buf_append(b, s, 1);
	}
	return rc;
}
