/* log.c - operator log lines, text or JSON; see log.h. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gateway/log.h"

enum gw_log_level gw_log_min = GW_LOG_INFO;

_Static_assert(GW_LOG_ERROR == 3, "conf_log_level (conf/conf.h) follows these levels");

static const char *const level_names[] = { "debug", "info", "warn", "error" };
static enum gw_log_format log_format = GW_LOG_TEXT;
static bool forced_debug;

void gw_log_configure(enum gw_log_level min, enum gw_log_format format)
{
	gw_log_min = forced_debug ? GW_LOG_DEBUG : min;
	log_format = format;
}

void gw_log_force_debug(void)
{
	forced_debug = true;
	gw_log_min = GW_LOG_DEBUG;
}

/* Append s[0..len) to out as the inside of a JSON string: quotes, the
 * backslash and every byte outside printable ASCII escaped, so that a line
 * is valid JSON (and valid UTF-8) whatever the message holds.  Returns the
 * new length, never past cap. */
static size_t json_escape(char *out, size_t n, size_t cap, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
			if (n + 1 > cap)
				break;
			out[n++] = (char)ch;
		} else if (ch == '"' || ch == '\\') {
			if (n + 2 > cap)
				break;
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else {
			if (n + 6 > cap)
				break;
			memcpy(out + n, "\\u00", 4);
			out[n + 4] = hex[ch >> 4];
			out[n + 5] = hex[ch & 15];
			n += 6;
		}
	}
	return n;
}

static size_t json_lit(char *out, size_t n, size_t cap, const char *lit)
{
	size_t len = strlen(lit);
	if (n + len > cap)
		return n;
	memcpy(out + n, lit, len);
	return n + len;
}

static bool key_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || ch == '_';
}

/*
 * The message's `key=value` tokens as fields: a key of [a-z_] at the start
 * or after a space, a value up to the next space, less one trailing ':' or
 * ','.  The fields follow msg, so a key that repeats one of the first three
 * is ignored by readers that keep the first and visible to the others.
 */
static size_t json_fields(char *out, size_t n, size_t cap, const char *msg)
{
	for (const char *p = msg; *p != '\0'; p++) {
		if (p != msg && p[-1] != ' ')
			continue;
		const char *k = p;
		while (key_char(*p))
			p++;
		if (p == k || *p != '=' || (p - k == 4 && memcmp(k, "time", 4) == 0) ||
		    (p - k == 5 && memcmp(k, "level", 5) == 0) || (p - k == 3 && memcmp(k, "msg", 3) == 0)) {
			if (*p == '\0')
				break;
			continue;
		}
		const char *v = ++p;
		while (*p != '\0' && *p != ' ')
			p++;
		size_t vlen = (size_t)(p - v);
		if (vlen > 0 && (v[vlen - 1] == ':' || v[vlen - 1] == ','))
			vlen--;
		n = json_lit(out, n, cap, ",\"");
		n = json_escape(out, n, cap, k, (size_t)(v - 1 - k));
		n = json_lit(out, n, cap, "\":\"");
		n = json_escape(out, n, cap, v, vlen);
		n = json_lit(out, n, cap, "\"");
		if (*p == '\0')
			break;
	}
	return n;
}

void gw_log(enum gw_log_level level, const char *fmt, ...)
{
	if (level < gw_log_min)
		return;
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

	/* Format into one buffer and write it with one call so that lines from
	 * sluice never interleave with each other in a shared log stream. */
	char line[1024];
	va_list ap;
	if (log_format == GW_LOG_JSON) {
		char msg[1024], json[4096];
		va_start(ap, fmt);
		int m = vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		size_t mlen = m < 0 ? 0 : (size_t)m >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)m;
		msg[mlen] = '\0';
		/* Keep 2 bytes for the closing brace and the newline: a line cut
		 * short loses fields, never its validity. */
		size_t cap = sizeof(json) - 2;
		int n = snprintf(json, cap, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"", stamp,
				 ts.tv_nsec / 1000000, level_names[level]);
		size_t len = json_escape(json, (size_t)n, cap - 1, msg, mlen);
		json[len++] = '"';
		len = json_fields(json, len, cap, msg);
		json[len++] = '}';
		json[len++] = '\n';
		fwrite(json, 1, len, stderr);
		return;
	}
	int n = snprintf(line, sizeof(line), "%s.%03ldZ %s ", stamp, ts.tv_nsec / 1000000,
			 level_names[level]);
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}

const char *gw_log_text(char *buf, size_t size, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		bool plain = ch >= 0x20 && ch < 0x7f && ch != '\\';
		if (n + (plain ? 1 : 4) >= size)
			break;
		if (plain) {
			buf[n++] = (char)ch;
		} else {
			buf[n++] = '\\';
			buf[n++] = 'x';
			buf[n++] = hex[ch >> 4];
			buf[n++] = hex[ch & 15];
		}
	}
	buf[n] = '\0';
	return buf;
}
