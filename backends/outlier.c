/*
 * outlier.c - passive outlier ejection; see outlier.h.
 */
#include <math.h>

#include "backends/outlier.h"

size_t backend_pool_ejected(const struct backend_pool *p, uint64_t now_ms)
{
	size_t n = 0;
	for (size_t i = 0; i < p->nbackends; i++)
		n += now_ms < p->backends[i]->outlier.until_ms;
	return n;
}

/* eject_ms << level, capped at max_eject_ms without overflowing. */
static uint64_t hold_ms(const struct conf_outlier *cfg, uint32_t level)
{
	uint64_t hold = cfg->eject_ms;
	for (uint32_t i = 0; i < level && hold < cfg->max_eject_ms; i++)
		hold *= 2;
	return hold < cfg->max_eject_ms ? hold : cfg->max_eject_ms;
}

enum backend_outlier_change backend_outlier_report(struct backend *b, bool ok, uint64_t now_ms)
{
	const struct conf_outlier *cfg = &b->pool->cfg->outlier;
	struct backend_outlier *o = &b->outlier;
	if (!cfg->enabled || b->retired)
		return BACKEND_OUTLIER_SAME;
	if (ok) {
		o->consecutive = 0;
		return BACKEND_OUTLIER_SAME;
	}
	/* Requests that were in flight when it was ejected end meanwhile:
	 * their failures are the same news, not a new ejection. */
	if (now_ms < o->until_ms)
		return BACKEND_OUTLIER_SAME;
	if (++o->consecutive < cfg->consecutive_failures)
		return BACKEND_OUTLIER_SAME;
	size_t allowed = (size_t)floor(cfg->max_ejected_share * (double)b->pool->nbackends + 1e-9);
	if (backend_pool_ejected(b->pool, now_ms) + 1 > allowed)
		return o->consecutive == cfg->consecutive_failures ? BACKEND_OUTLIER_KEPT : BACKEND_OUTLIER_SAME;
	/* Stayed in long enough since the last ejection: start over. */
	if (o->level > 0 && now_ms - o->until_ms >= cfg->max_eject_ms)
		o->level = 0;
	o->until_ms = now_ms + hold_ms(cfg, o->level);
	if (o->level < 63)
		o->level++;
	o->consecutive = 0;
	o->ejected = true;
	o->ejections++;
	return BACKEND_OUTLIER_EJECTED;
}

bool backend_outlier_returned(struct backend *b, uint64_t now_ms)
{
	if (!b->outlier.ejected || now_ms < b->outlier.until_ms)
		return false;
	b->outlier.ejected = false;
	return true;
}
