/*
 * health.h - the verdict of a backend's active health checks.
 *
 * The gateway runs the checks (gateway/probe.c: a GET of the pool's
 * health.path on a connection of its own, every interval_ms); this file
 * turns their results into a verdict, with no socket and no clock of its
 * own, so that tests drive it by hand.
 *
 * A backend starts *up*: a gateway that starts, or a backend that joins,
 * serves at once instead of refusing traffic for unhealthy_after intervals,
 * and the first check comes soon after (the passive marks and the outlier
 * ejection cover the first moments).  unhealthy_after consecutive failed
 * checks take it out (backend_is_up() is false, it is never picked);
 * healthy_after consecutive passed checks put it back.  A check that agrees
 * with the verdict resets the count of the other kind.
 */
#ifndef SLUICE_BACKENDS_HEALTH_H
#define SLUICE_BACKENDS_HEALTH_H

#include "backends/backend.h"

/* What a check changed. */
enum backend_health_change {
	BACKEND_HEALTH_SAME = 0,
	BACKEND_HEALTH_WENT_DOWN,
	BACKEND_HEALTH_WENT_UP,
};

/* The metric label of a result: "ok", "failed", "timeout", "refused". */
const char *backend_check_result_name(enum backend_check_result r);

/*
 * Record one check of b that ended at now_ms with result r (`status`: the
 * HTTP status when a response head came, else 0), under the thresholds of
 * cfg.  Returns what changed.
 */
enum backend_health_change backend_health_record(struct backend *b, const struct conf_health *cfg,
						 enum backend_check_result r, uint16_t status, uint64_t now_ms);

/* Forget every check: b is up again (its pool's checks were turned off). */
void backend_health_reset(struct backend *b);

#endif
