/*
 * health.c - the verdict of a backend's active health checks; see health.h.
 */
#include <string.h>

#include "backends/health.h"

const char *backend_check_result_name(enum backend_check_result r)
{
	static const char *const names[BACKEND_CHECK_COUNT] = {
		[BACKEND_CHECK_OK] = "ok",
		[BACKEND_CHECK_FAILED] = "failed",
		[BACKEND_CHECK_TIMEOUT] = "timeout",
		[BACKEND_CHECK_REFUSED] = "refused",
	};
	return (unsigned)r < BACKEND_CHECK_COUNT ? names[r] : "failed";
}

enum backend_health_change backend_health_record(struct backend *b, const struct conf_health *cfg,
						 enum backend_check_result r, uint16_t status, uint64_t now_ms)
{
	struct backend_health *h = &b->health;
	if ((unsigned)r >= BACKEND_CHECK_COUNT)
		r = BACKEND_CHECK_FAILED;
	h->checks[r]++;
	h->last_result = (int)r;
	h->last_status = status;
	h->last_ms = now_ms;
	if (r == BACKEND_CHECK_OK) {
		h->fails = 0;
		h->passes++;
		if (h->down && h->passes >= cfg->healthy_after) {
			h->down = false;
			return BACKEND_HEALTH_WENT_UP;
		}
		return BACKEND_HEALTH_SAME;
	}
	h->passes = 0;
	h->fails++;
	if (!h->down && h->fails >= cfg->unhealthy_after) {
		h->down = true;
		return BACKEND_HEALTH_WENT_DOWN;
	}
	return BACKEND_HEALTH_SAME;
}

void backend_health_reset(struct backend *b)
{
	uint64_t checks[BACKEND_CHECK_COUNT];
	memcpy(checks, b->health.checks, sizeof(checks));	/* counters stay monotonic */
	b->health = (struct backend_health){ .last_result = -1 };
	memcpy(b->health.checks, checks, sizeof(checks));
}
