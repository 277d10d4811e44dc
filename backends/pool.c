/*
 * pool.c - pools, their members, slots and the choice of a backend.
 *
 * Slot counts are kept twice, per backend and summed per pool, so that
 * "does pool P have a free slot" is O(1) on the dispatch path.  Picking a
 * backend is a scan of the pool's members; pools hold a handful of them,
 * a few dozen at most when DNS discovery lists every pod.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/upstream.h"

static struct backend *backend_from(struct backend *b)
{
	if (b == NULL || b->magic != BACKEND_MAGIC)
		abort();
	return b;
}

static struct backend_pool *pool_from(struct backend_pool *p)
{
	if (p == NULL || p->magic != BACKEND_POOL_MAGIC)
		abort();
	return p;
}

static void pool_free(struct backend_pool *p)
{
	assert(p->nbackends == 0 || !p->retired);
	conf_pool_free_copy(p->last);
	free(p->backends);
	p->magic = 0;
	free(p);
}

/* Off the set's retired list, and freed. */
static void pool_forget(struct backend_set *s, struct backend_pool *p)
{
	for (struct backend_pool **pp = &s->retired; *pp != NULL; pp = &(*pp)->next_retired)
		if (*pp == p) {
			*pp = p->next_retired;
			break;
		}
	pool_free(p);
}

static void pool_unref(struct backend_pool *p)
{
	assert(p->refs > 0);
	if (--p->refs == 0 && p->retired)
		pool_forget(p->set, p);
}

struct backend_pool *backend_pool_hold(struct backend_pool *p)
{
	pool_from(p)->refs++;
	return p;
}

void backend_pool_put(struct backend_pool **pp)
{
	struct backend_pool *p = *pp;
	*pp = NULL;
	if (p != NULL)
		pool_unref(pool_from(p));
}

/* A retired backend goes when nothing refers to it any more. */
static void maybe_free(struct backend *b)
{
	if (!b->retired || b->inflight > 0 || b->nconns > 0)
		return;
	struct backend_pool *p = b->pool;
	b->magic = 0;
	free(b);
	pool_unref(p);
}

static void name_of(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(a6->sin6_port));
	} else {
		const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(a4->sin_port));
	}
}

static bool same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
		return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
	return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

static struct backend_pool *pool_create(void)
{
	struct backend_pool *p = calloc(1, sizeof(*p));
	if (p != NULL)
		p->magic = BACKEND_POOL_MAGIC;
	return p;
}

int backend_set_init(struct backend_set *s, const struct conf *c)
{
	s->npools = c->npools;
	s->retired = NULL;
	s->replicas = c->replicas.count > 0 ? c->replicas.count : 1;
	s->pools = calloc(c->npools ? c->npools : 1, sizeof(*s->pools));
	if (s->pools == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < c->npools; i++) {
		const struct conf_pool *cp = &c->pools[i];
		struct backend_pool *p = s->pools[i] = pool_create();
		if (p == NULL) {
			backend_set_finish(s);
			return -ENOMEM;
		}
		p->cfg = cp;
		p->index = i;
		p->replicas = s->replicas;
		for (size_t j = 0; j < cp->nbackends; j++) {
			const struct conf_backend *cb = &cp->backends[j];
			if (backend_pool_add(p, (const struct sockaddr *)&cb->addr.sa, cb->max_inflight, 0, 0,
					     NULL) < 0) {
				backend_set_finish(s);
				return -ENOMEM;
			}
		}
	}
	return 0;
}

void backend_set_reconfigure(struct backend_set *s, const struct conf *c)
{
	for (size_t i = 0; i < s->npools; i++)
		s->pools[i]->cfg = &c->pools[i];
}

void backend_set_discard(struct backend_set_next *next)
{
	for (size_t i = 0; next->fresh != NULL && i < next->n; i++)
		if (next->fresh[i] != NULL)
			pool_free(next->fresh[i]);
	for (size_t i = 0; next->last != NULL && i < next->nold; i++)
		conf_pool_free_copy(next->last[i]);
	free(next->v);
	free(next->fresh);
	free(next->last);
	memset(next, 0, sizeof(*next));
}

int backend_set_prepare(const struct backend_set *s, const struct conf *c, const size_t *from,
			struct backend_set_next *next)
{
	memset(next, 0, sizeof(*next));
	next->n = c->npools;
	next->nold = s->npools;
	next->v = calloc(c->npools ? c->npools : 1, sizeof(*next->v));
	next->fresh = calloc(c->npools ? c->npools : 1, sizeof(*next->fresh));
	next->last = calloc(s->npools ? s->npools : 1, sizeof(*next->last));
	if (next->v == NULL || next->fresh == NULL || next->last == NULL)
		goto nomem;
	bool kept[CONF_POOLS_MAX] = { false };
	for (size_t i = 0; i < c->npools; i++) {
		if (from[i] != CONF_POOL_NEW) {
			kept[from[i]] = true;
			next->v[i] = s->pools[from[i]];
		} else if ((next->v[i] = next->fresh[i] = pool_create()) == NULL) {
			goto nomem;
		}
	}
	for (size_t i = 0; i < s->npools; i++)
		if (!kept[i] && (next->last[i] = conf_pool_copy(s->pools[i]->cfg)) == NULL)
			goto nomem;
	return 0;
nomem:
	backend_set_discard(next);
	return -ENOMEM;
}

/* A removed pool: out of the set, its members retired, kept (on the set's
 * retired list) while anything still refers to it. */
static void pool_retire(struct backend_set *s, struct backend_pool *p, struct conf_pool *last)
{
	p->retired = true;
	p->index = BACKEND_POOL_RETIRED;
	p->last = last;
	p->cfg = last;
	p->set = s;
	p->next_retired = s->retired;
	s->retired = p;
	p->refs++;	/* retiring its last member must not free it under this loop */
	while (p->nbackends > 0)
		backend_pool_retire(p->backends[p->nbackends - 1]);
	pool_unref(p);
}

void backend_set_commit(struct backend_set *s, const struct conf *c, struct backend_set_next *next)
{
	struct backend_pool **old = s->pools;
	size_t nold = s->npools;
	for (size_t i = 0; i < next->n; i++) {
		next->v[i]->cfg = &c->pools[i];
		next->v[i]->index = i;
		next->v[i]->replicas = s->replicas;
	}
	s->pools = next->v;
	s->npools = next->n;
	for (size_t i = 0; i < nold; i++)
		if (next->last[i] != NULL)
			pool_retire(s, old[i], next->last[i]);
	free(old);
	free(next->fresh);
	free(next->last);
	memset(next, 0, sizeof(*next));
}

void backend_set_finish(struct backend_set *s)
{
	if (s->pools == NULL)
		return;
	for (size_t i = 0; i < s->npools; i++) {
		struct backend_pool *p = s->pools[i];
		if (p == NULL)
			continue;
		for (size_t j = 0; j < p->nbackends; j++) {
			assert(p->backends[j]->idle == NULL && p->backends[j]->retire_cb == NULL);
			p->backends[j]->magic = 0;
			free(p->backends[j]);
		}
		p->nbackends = 0;
		pool_free(p);
	}
	/* Retired pools left only by holds nobody gave back (a bug, but the
	 * loop has ended: nothing can read them now). */
	while (s->retired != NULL) {
		struct backend_pool *p = s->retired;
		s->retired = p->next_retired;
		pool_free(p);
	}
	free(s->pools);
	s->pools = NULL;
	s->npools = 0;
}

struct backend *backend_pool_find(const struct backend_pool *p, const struct sockaddr *sa)
{
	for (size_t i = 0; i < p->nbackends; i++)
		if (same_addr((const struct sockaddr *)&p->backends[i]->sa, sa))
			return p->backends[i];
	return NULL;
}

int backend_pool_add(struct backend_pool *p, const struct sockaddr *sa, unsigned total,
		     uint64_t now_ms, uint64_t ramp_ms, struct backend **out)
{
	if (p->nbackends == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 4;
		struct backend **v = realloc(p->backends, cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		p->backends = v;
		p->cap = cap;
	}
	struct backend *b = calloc(1, sizeof(*b));
	if (b == NULL)
		return -ENOMEM;
	b->magic = BACKEND_MAGIC;
	b->salen = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	memcpy(&b->sa, sa, b->salen);
	name_of(sa, b->name, sizeof(b->name));
	b->pool = p;
	p->refs++;
	b->total = total;
	b->max_inflight = backend_slots_share(total, p->replicas);
	b->health.last_result = -1;
	if (ramp_ms > 0) {
		b->ramp_from_ms = now_ms;
		b->ramp_ms = ramp_ms;
	}
	p->backends[p->nbackends++] = b;
	p->slots += b->max_inflight;
	if (out != NULL)
		*out = b;
	return 0;
}

/* Retired backends keep their share: they take no new request anyway. */
static void share_set(struct backend *b, unsigned total, unsigned replicas)
{
	unsigned share = backend_slots_share(b->adapt.on ? b->adapt.limit : total, replicas);
	if (!b->retired)
		b->pool->slots = b->pool->slots - b->max_inflight + share;
	b->total = total;
	b->max_inflight = share;
}

void backend_set_slots(struct backend *b, unsigned total)
{
	share_set(b, total, b->pool->replicas);
}

void backend_slots_apply(struct backend *b)
{
	share_set(b, b->total, b->pool->replicas);
}

void backend_set_replicas(struct backend_set *s, unsigned n)
{
	s->replicas = n > 0 ? n : 1;
	for (size_t i = 0; i < s->npools; i++) {
		struct backend_pool *p = s->pools[i];
		p->replicas = s->replicas;
		for (size_t j = 0; j < p->nbackends; j++)
			share_set(p->backends[j], p->backends[j]->total, s->replicas);
	}
}

void backend_pool_retire(struct backend *b)
{
	struct backend_pool *p = backend_from(b)->pool;
	if (b->retired)
		return;
	for (size_t i = 0; i < p->nbackends; i++)
		if (p->backends[i] == b) {
			memmove(&p->backends[i], &p->backends[i + 1], (p->nbackends - i - 1) * sizeof(*p->backends));
			p->nbackends--;
			break;
		}
	p->slots -= b->max_inflight;
	b->retired = true;
	if (b->retire_cb != NULL) {
		backend_retire_cb cb = b->retire_cb;
		b->retire_cb = NULL;
		cb(b, b->retire_arg);
	}
	while (b->idle != NULL) {
		struct backend_conn *bc = backend_conn_take(b);
		backend_conn_close(&bc);
	}
	maybe_free(b);
}

/* Slots b may hold now: all of this replica's share, or fewer while it
 * ramps up after joining (slow start ramps the share, not the total),
 * never fewer than one. */
static unsigned usable_slots(const struct backend *b, uint64_t now_ms)
{
	if (b->ramp_ms == 0)
		return b->max_inflight;
	uint64_t t = now_ms - b->ramp_from_ms;
	if (now_ms < b->ramp_from_ms || t >= b->ramp_ms)
		return b->max_inflight;
	unsigned n = (unsigned)((uint64_t)b->max_inflight * t / b->ramp_ms);
	return n > 0 ? n : 1;
}

struct backend *backend_pool_pick(struct backend_pool *p, uint64_t now_ms)
{
	/* No shortcut on the pool's totals: after a reload shrank one
	 * backend below its inflight, its excess would hide the others'
	 * free slots. */
	struct backend *best = NULL;
	size_t n = p->nbackends, first = n ? p->rotor++ % n : 0;
	/* Ties go round the members (the scan starts one further each time),
	 * so that light traffic, one request at a time, still spreads. */
	for (size_t k = 0; k < n; k++) {
		struct backend *b = p->backends[(first + k) % n];
		if (b->inflight >= usable_slots(b, now_ms) || !backend_is_up(b, now_ms))
			continue;
		/* Compare load as a share of capacity so that a backend with
		 * twice the slots takes twice the requests. */
		if (best == NULL ||
		    (uint64_t)b->inflight * best->max_inflight < (uint64_t)best->inflight * b->max_inflight)
			best = b;
	}
	return best;
}

bool backend_frees_on_release(const struct backend *b, uint64_t now_ms)
{
	return !b->retired && backend_is_up(b, now_ms) && b->inflight <= usable_slots(b, now_ms);
}

void backend_acquire(struct backend *b)
{
	assert(!b->retired && b->inflight < b->max_inflight);
	b->inflight++;
	b->pool->inflight++;
	b->requests++;
	backend_adapt_note(&b->adapt, b->inflight);
}

void backend_release(struct backend *b)
{
	assert(b->inflight > 0 && b->pool->inflight > 0);
	b->inflight--;
	b->pool->inflight--;
	maybe_free(b);
}

void backend__conn_opened(struct backend *b)
{
	b->nconns++;
	b->connects++;
}

void backend__conn_gone(struct backend *b)
{
	assert(b->nconns > 0);
	b->nconns--;
	maybe_free(b);
}

void backend_mark_failed(struct backend *b, uint64_t now_ms)
{
	b->connect_failures++;
	/* Connects that were already under way when the backend went down
	 * fail together; they are one failure, not sixteen doublings (which
	 * would hold a restarted server out for the full 30 s). */
	if (!backend_is_up(b, now_ms))
		return;
	uint64_t hold = 1000;
	for (unsigned i = 0; i < b->failures && hold < 30000; i++)
		hold *= 2;
	b->failures++;
	b->down_until_ms = now_ms + (hold < 30000 ? hold : 30000);
}

void backend_note_error(struct backend *b, const char *why, uint64_t now_ms)
{
	snprintf(b->last_error, sizeof(b->last_error), "%s", why);
	b->last_error_ms = now_ms;
}

void backend_mark_ok(struct backend *b)
{
	b->failures = 0;
	b->down_until_ms = 0;
}

bool backend_pool_has_up(const struct backend_pool *p, uint64_t now_ms)
{
	for (size_t i = 0; i < p->nbackends; i++)
		if (backend_is_up(p->backends[i], now_ms))
			return true;
	return false;
}
