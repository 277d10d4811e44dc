/*
 * share.c - tenant slot shares inside a class; see share.h.
 *
 * Invariants:
 *  - a tenant with slots held in class k (total > 0) or items queued in k
 *    is on k's member list; an inactive one may linger there until the
 *    next take or give prunes it, and is skipped by every decision;
 *  - held[p] summed over the tenants of class k is by_class[k] of pool p
 *    (both follow the same take and give), and total is the sum of held[].
 */
#include <math.h>
#include <string.h>

#include "queue/queue.h"
#include "queue/share.h"
#include "queue/tenant.h"

static double weight_of(const struct queue_tenant *t)
{
	return t->cfg->weight > 0 ? t->cfg->weight : 1;
}

static bool active(const struct queue_tenant *t, enum conf_class k, uint64_t now_ms)
{
	const struct queue_share_hold *h = &t->share[k];
	return h->total > 0 || t->flows[k].count > 0 || now_ms < h->last_ms + QUEUE_SHARE_IDLE_MS;
}

static bool fair(const struct queue *q, enum conf_class k)
{
	return q->classes[k].cfg->tenant_slot_share == CONF_TENANT_SLOT_SHARE_FAIR;
}

/* ceil(quota) - held, when positive: the slots of p owed to t. */
static unsigned room_of(const struct queue_tenant *t, size_t p, enum conf_class k, unsigned usable,
			double weights)
{
	double quota = usable * weight_of(t) / weights;
	unsigned owed = (unsigned)ceil(quota - 1e-9);
	unsigned held = t->share[k].held[p];
	return owed > held ? owed - held : 0;
}

static void join(struct queue *q, struct queue_tenant *t, enum conf_class k)
{
	struct queue_share_hold *h = &t->share[k];
	if (h->pprev != NULL)
		return;
	struct queue_class *qc = &q->classes[k];
	h->next = qc->share_members;
	if (h->next != NULL)
		h->next->share[k].pprev = &h->next;
	h->pprev = &qc->share_members;
	qc->share_members = t;
}

static void leave(struct queue_tenant *t, enum conf_class k)
{
	struct queue_share_hold *h = &t->share[k];
	if (h->pprev == NULL)
		return;
	*h->pprev = h->next;
	if (h->next != NULL)
		h->next->share[k].pprev = h->pprev;
	h->next = NULL;
	h->pprev = NULL;
}

/* Take the inactive members of class k off its list. */
static void prune(struct queue *q, enum conf_class k, uint64_t now_ms)
{
	struct queue_tenant *m = q->classes[k].share_members;
	while (m != NULL) {
		struct queue_tenant *next = m->share[k].next;
		if (!active(m, k, now_ms))
			leave(m, k);
		m = next;
	}
}

void queue__share_view(const struct queue *q, size_t p, enum conf_class k, uint64_t now_ms,
		       struct queue_share_view *v)
{
	memset(v, 0, sizeof(*v));
	v->q = q;
	v->p = p;
	v->k = k;
	v->now_ms = now_ms;
	v->fair = fair(q, k);
	if (!v->fair)
		return;
	v->usable = queue_class_slot_cap(q, p, k);
	unsigned used = q->pools[p].by_class[k];
	v->free = v->usable > used ? v->usable - used : 0;
	for (const struct queue_tenant *m = q->classes[k].share_members; m != NULL; m = m->share[k].next)
		if (active(m, k, now_ms))
			v->weights += weight_of(m);
	for (const struct queue_tenant *m = q->classes[k].share_members; m != NULL; m = m->share[k].next)
		if (active(m, k, now_ms))
			v->room += room_of(m, p, k, v->usable, v->weights);
}

bool queue__share_view_allows(const struct queue_share_view *v, const struct queue_tenant *t)
{
	if (!v->fair)
		return true;
	/* A tenant not active yet holds nothing, and its share, whatever the
	 * others', is above nothing. */
	if (!active(t, v->k, v->now_ms))
		return true;
	if (t->share[v->k].held[v->p] < v->usable * weight_of(t) / v->weights - 1e-9)
		return true;
	unsigned own = room_of(t, v->p, v->k, v->usable, v->weights);
	return v->free > (v->room > own ? v->room - own : 0);
}

bool queue_share_may_take(const struct queue *q, const struct queue_tenant *t, size_t p, enum conf_class k,
			  uint64_t now_ms)
{
	if (!fair(q, k))
		return true;
	struct queue_share_view v;
	queue__share_view(q, p, k, now_ms, &v);
	return queue__share_view_allows(&v, t);
}

void queue__share_join(struct queue *q, struct queue_tenant *t, enum conf_class k, uint64_t now_ms)
{
	if (now_ms > t->share[k].last_ms)
		t->share[k].last_ms = now_ms;
	join(q, t, k);
}

void queue_share_take(struct queue *q, struct queue_tenant *t, size_t p, enum conf_class k, uint64_t now_ms)
{
	struct queue_share_hold *h = &t->share[k];
	if (fair(q, k))
		prune(q, k, now_ms);	/* off: no decision reads the list, so it may wait */
	h->held[p]++;
	h->total++;
	if (now_ms > h->last_ms)
		h->last_ms = now_ms;
	join(q, t, k);
	if (now_ms > q->clock_ms)
		q->clock_ms = now_ms;
}

void queue_share_give(struct queue *q, struct queue_tenant *t, size_t p, enum conf_class k, uint64_t now_ms)
{
	struct queue_share_hold *h = &t->share[k];
	if (h->held[p] > 0) {
		h->held[p]--;
		h->total--;
	}
	if (now_ms > h->last_ms)
		h->last_ms = now_ms;
	if (now_ms > q->clock_ms)
		q->clock_ms = now_ms;
	if (fair(q, k))
		prune(q, k, now_ms);
}

unsigned queue_share_held(const struct queue_tenant *t, enum conf_class k, size_t p)
{
	return p < CONF_POOLS_MAX ? t->share[k].held[p] : 0;
}

unsigned queue_share_held_total(const struct queue_tenant *t, enum conf_class k)
{
	return t->share[k].total;
}

uint64_t queue_share_next_change(const struct queue *q, uint64_t now_ms)
{
	uint64_t next = UINT64_MAX;
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		if (!q->classes[k].cfg->defined || !fair(q, (enum conf_class)k))
			continue;
		for (const struct queue_tenant *m = q->classes[k].share_members; m != NULL; m = m->share[k].next) {
			const struct queue_share_hold *h = &m->share[k];
			uint64_t end = h->last_ms + QUEUE_SHARE_IDLE_MS;
			/* Only the idle ones: a tenant queued or in flight
			 * changes the shares when it takes or gives. */
			if (h->total == 0 && m->flows[k].count == 0 && end > now_ms && end < next)
				next = end;
		}
	}
	return next;
}

void queue_share_leave(struct queue_tenant *t)
{
	for (int k = 0; k < CONF_CLASS_COUNT; k++)
		leave(t, (enum conf_class)k);
}

void queue__share_remap(struct queue *q, const size_t *to, size_t nold)
{
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		for (struct queue_tenant *m = q->classes[k].share_members; m != NULL; m = m->share[k].next) {
			struct queue_share_hold *h = &m->share[k];
			unsigned held[CONF_POOLS_MAX] = { 0 };
			unsigned total = 0;
			for (size_t p = 0; p < nold && p < CONF_POOLS_MAX; p++) {
				if (to[p] == CONF_POOL_NEW || to[p] >= CONF_POOLS_MAX)
					continue;
				held[to[p]] = h->held[p];
				total += h->held[p];
			}
			memcpy(h->held, held, sizeof(held));
			h->total = total;
		}
	}
}

void queue__share_finish(struct queue *q)
{
	for (int k = 0; k < CONF_CLASS_COUNT; k++)
		while (q->classes[k].share_members != NULL)
			leave(q->classes[k].share_members, (enum conf_class)k);
}
