/*
 * log.h - operator log lines on stderr.
 *
 * One line per event: an RFC 3339 UTC timestamp, a level, the message.  API
 * keys and request bodies are never logged.  Levels below the configured
 * one are dropped before any formatting happens.
 */
#ifndef SLUICE_GATEWAY_LOG_H
#define SLUICE_GATEWAY_LOG_H

#include <stddef.h>

enum gw_log_level { GW_LOG_DEBUG = 0, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

extern enum gw_log_level gw_log_min;

void gw_log(enum gw_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Text that may hold a client's bytes (a model name), made safe for one log
 * line: every byte outside printable ASCII, and the backslash, is written
 * as \xNN.  Writes into buf (size > 0; cut at a whole byte's escape) and
 * returns it.
 */
const char *gw_log_text(char *buf, size_t size, const char *s);

#define gw_debug(...) do { if (gw_log_min <= GW_LOG_DEBUG) gw_log(GW_LOG_DEBUG, __VA_ARGS__); } while (0)
#define gw_info(...)  gw_log(GW_LOG_INFO, __VA_ARGS__)
#define gw_warn(...)  gw_log(GW_LOG_WARN, __VA_ARGS__)
#define gw_error(...) gw_log(GW_LOG_ERROR, __VA_ARGS__)

#endif
