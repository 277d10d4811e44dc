/*
 * log.h - operator log lines on stderr.
 *
 * One line per event.  In the text format (the default): an RFC 3339 UTC
 * timestamp, a level, the message.  In the json format (log_format: json):
 * one JSON object per line with `time`, `level` and `msg`, plus a string
 * field for each `key=value` token of the message (peer=, backend=,
 * request_id=, ...), so that a log pipeline can index them without a
 * parser of its own.  API keys and request bodies are never logged.  Levels
 * below the configured one are dropped before any formatting happens.  The
 * access log (alog.h) is separate and has its own format.
 */
#ifndef SLUICE_GATEWAY_LOG_H
#define SLUICE_GATEWAY_LOG_H

#include <stddef.h>

enum gw_log_level { GW_LOG_DEBUG = 0, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

extern enum gw_log_level gw_log_min;

enum gw_log_format { GW_LOG_TEXT = 0, GW_LOG_JSON };

/*
 * Apply the config's log_level and log_format (at start and at each
 * reload).  Once gw_log_force_debug() has been called (sluice -v), the
 * level stays debug whatever the config says.
 */
void gw_log_configure(enum gw_log_level min, enum gw_log_format format);
void gw_log_force_debug(void);

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
