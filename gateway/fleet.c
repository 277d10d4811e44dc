/*
 * fleet.c - which backends each pool has; see fleet.h.
 */
#include "gateway/fleet.h"
#include "gateway/log.h"
#include "gateway/server.h"

/* Is b one of the static backends of cp? */
static const struct conf_backend *listed(const struct conf_pool *cp, const struct backend *b)
{
	for (size_t j = 0; j < cp->nbackends; j++)
		if (backend_pool_find(b->pool, (const struct sockaddr *)&cp->backends[j].addr.sa) == b)
			return &cp->backends[j];
	return NULL;
}

static void apply_pool(struct gw_server *srv, struct backend_pool *p, const struct conf_pool *cp, bool log)
{
	uint64_t now = gw_now_ms(srv);
	/* Retire first, so that the scan below sees only members that stay. */
	for (size_t i = p->nbackends; i-- > 0;) {
		struct backend *b = p->backends[i];
		if (listed(cp, b) != NULL)
			continue;
		if (log)
			gw_info("pool '%s': backend %s removed (%u requests in flight finish)", cp->name, b->name,
				b->inflight);
		backend_pool_retire(b);
	}
	for (size_t j = 0; j < cp->nbackends; j++) {
		const struct conf_backend *cb = &cp->backends[j];
		struct backend *b = backend_pool_find(p, (const struct sockaddr *)&cb->addr.sa);
		if (b != NULL) {
			if (b->max_inflight != cb->max_inflight && log)
				gw_info("pool '%s': backend %s max_inflight %u -> %u", cp->name, b->name,
					b->max_inflight, cb->max_inflight);
			backend_set_slots(b, cb->max_inflight);
			continue;
		}
		/* At start every backend is there at once; later ones ramp up. */
		if (backend_pool_add(p, (const struct sockaddr *)&cb->addr.sa, cb->max_inflight, now,
				     log ? cp->slow_start_ms : 0, &b) < 0) {
			gw_error("pool '%s': backend %s not added: out of memory", cp->name, cb->addr.text);
			continue;
		}
		if (log)
			gw_info("pool '%s': backend %s added (%u slots)", cp->name, b->name, cb->max_inflight);
	}
}

void gw__fleet_apply(struct gw_server *srv, const struct conf *c, bool log)
{
	for (size_t i = 0; i < srv->backends.npools; i++)
		apply_pool(srv, &srv->backends.pools[i], &c->pools[i], log);
}
