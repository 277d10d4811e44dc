/*
 * pool.c - pools, slots and the choice of a backend.
 *
 * Slot counts are kept twice, per backend and summed per pool, so that
 * "does pool P have a free slot" is O(1) on the dispatch path.  Picking a
 * backend is a scan of the pool's backends; pools hold a handful of them.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "backends/backend.h"

int backend_set_init(struct backend_set *s, const struct conf *c)
{
	s->npools = c->npools;
	s->pools = calloc(c->npools ? c->npools : 1, sizeof(*s->pools));
	if (s->pools == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < c->npools; i++) {
		const struct conf_pool *cp = &c->pools[i];
		struct backend_pool *p = &s->pools[i];
		p->cfg = cp;
		p->index = i;
		p->nbackends = cp->nbackends;
		p->backends = calloc(cp->nbackends ? cp->nbackends : 1, sizeof(*p->backends));
		if (p->backends == NULL) {
			backend_set_finish(s);
			return -ENOMEM;
		}
		for (size_t j = 0; j < cp->nbackends; j++) {
			struct backend *b = &p->backends[j];
			b->cfg = &cp->backends[j];
			b->pool = p;
			b->max_inflight = cp->backends[j].max_inflight;
			p->slots += b->max_inflight;
		}
	}
	return 0;
}

void backend_set_reconfigure(struct backend_set *s, const struct conf *c)
{
	for (size_t i = 0; i < s->npools; i++) {
		struct backend_pool *p = &s->pools[i];
		p->cfg = &c->pools[i];
		p->slots = 0;
		for (size_t j = 0; j < p->nbackends; j++) {
			p->backends[j].cfg = &c->pools[i].backends[j];
			p->backends[j].max_inflight = c->pools[i].backends[j].max_inflight;
			p->slots += p->backends[j].max_inflight;
		}
	}
}

void backend_set_finish(struct backend_set *s)
{
	if (s->pools == NULL)
		return;
	for (size_t i = 0; i < s->npools; i++) {
		for (size_t j = 0; j < s->pools[i].nbackends; j++)
			assert(s->pools[i].backends == NULL || s->pools[i].backends[j].idle == NULL);
		free(s->pools[i].backends);
	}
	free(s->pools);
	s->pools = NULL;
	s->npools = 0;
}

struct backend *backend_pool_pick(struct backend_pool *p, uint64_t now_ms)
{
	/* No shortcut on the pool's totals: after a reload shrank one
	 * backend below its inflight, its excess would hide the others'
	 * free slots. */
	struct backend *best = NULL;
	for (size_t i = 0; i < p->nbackends; i++) {
		struct backend *b = &p->backends[i];
		if (b->inflight >= b->max_inflight || !backend_is_up(b, now_ms))
			continue;
		/* Compare load as a share of capacity so that a backend with
		 * twice the slots takes twice the requests. */
		if (best == NULL ||
		    (uint64_t)b->inflight * best->max_inflight < (uint64_t)best->inflight * b->max_inflight)
			best = b;
	}
	return best;
}

void backend_acquire(struct backend *b)
{
	assert(b->inflight < b->max_inflight);
	b->inflight++;
	b->pool->inflight++;
	b->requests++;
}

void backend_release(struct backend *b)
{
	assert(b->inflight > 0 && b->pool->inflight > 0);
	b->inflight--;
	b->pool->inflight--;
}

void backend_mark_failed(struct backend *b, uint64_t now_ms)
{
	uint64_t hold = 1000;
	for (unsigned i = 0; i < b->failures && hold < 30000; i++)
		hold *= 2;
	b->failures++;
	b->connect_failures++;
	b->down_until_ms = now_ms + (hold < 30000 ? hold : 30000);
}

void backend_mark_ok(struct backend *b)
{
	b->failures = 0;
	b->down_until_ms = 0;
}

bool backend_pool_has_up(const struct backend_pool *p, uint64_t now_ms)
{
	for (size_t i = 0; i < p->nbackends; i++)
		if (backend_is_up(&p->backends[i], now_ms))
			return true;
	return false;
}
