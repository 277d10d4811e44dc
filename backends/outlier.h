/*
 * outlier.h - passive outlier ejection: a backend whose real requests fail
 * in a row is taken out for a while.
 *
 * The gateway reports the outcome of every request that reached a backend
 * (a response status is known, or the exchange failed): a 5xx, a reset or
 * a timeout is a failure, anything else a success, which resets the count.
 * consecutive_failures failures in a row eject the backend for eject_ms,
 * doubled with each ejection after the first (eject_ms << level) up to
 * max_eject_ms.  The doubling starts over once the backend has stayed in
 * for max_eject_ms since its last ejection ended.
 *
 * A bad rollout must not empty a pool: a backend is never ejected when that
 * would put more than max_ejected_share of its pool's members out by
 * ejection at once (floor(share x members)); it stays in and its failures
 * keep counting, so it goes as soon as another comes back.
 *
 * Nothing here runs a timer: an ejection ends by the clock (backend_is_up()
 * compares), and backend_outlier_returned() tells the caller, once, that
 * it has, for the log.
 */
#ifndef SLUICE_BACKENDS_OUTLIER_H
#define SLUICE_BACKENDS_OUTLIER_H

#include "backends/backend.h"

enum backend_outlier_change {
	BACKEND_OUTLIER_SAME = 0,
	BACKEND_OUTLIER_EJECTED,	/* b is out until b->outlier.until_ms */
	BACKEND_OUTLIER_KEPT,		/* b reached the threshold, but the pool's share is spent */
};

/*
 * The outcome of one request on b at now_ms: ok, or a failure (5xx, reset,
 * timeout).  A no-op for a pool without an outlier section and for a
 * retired backend.  Returns what changed; BACKEND_OUTLIER_KEPT only when
 * the threshold is first reached, so that a caller logging it logs once.
 */
enum backend_outlier_change backend_outlier_report(struct backend *b, bool ok, uint64_t now_ms);

/* True once when b's ejection is over at now_ms (and false after that, or
 * when b was not ejected). */
bool backend_outlier_returned(struct backend *b, uint64_t now_ms);

/* Members of p ejected at now_ms. */
size_t backend_pool_ejected(const struct backend_pool *p, uint64_t now_ms);

#endif
