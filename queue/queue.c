/*
 * queue.c - class queues, fair order, deadlines, dispatch order; see queue.h.
 *
 * Invariants:
 *  - an item is queued iff it is in exactly one flow and in the heap;
 *  - a flow is on its class's active list iff its count is non-zero;
 *  - class, global counts and bytes are the sums over queued items;
 *  - by_class[k] of a pool is the number of slots of that pool held by class
 *    k right now (the gateway reports every dispatch and release);
 *  - when routing, waiting[k] of pool p is the number of queued items of
 *    class k whose mask has p (when not routing it stays 0 and is not read:
 *    every item may use every pool of its class);
 *  - a queued item's mask shares a pool with its class (admission refuses
 *    the others, a reload takes them off).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"
#include "queue/share.h"
#include "queue/tenant.h"

/* Dispatch counts decay by half every this many dispatches of a pool, so
 * min_share looks at recent history, not the whole uptime. */
#define SHARE_WINDOW 1000.0
#define RETRY_MAX_MS 59000
#define RETRY_MIN_MS 1

static uint64_t pools_mask(const struct conf_class_cfg *cc)
{
	uint64_t m = 0;
	for (size_t i = 0; i < cc->npools; i++)
		m |= UINT64_C(1) << cc->pools[i];
	return m;
}

int queue_init(struct queue *q, const struct conf *c)
{
	memset(q, 0, sizeof(*q));
	q->conf = c;
	q->routing = c->nmodels > 0;
	q->npools = c->npools;
	q->pools = calloc(c->npools ? c->npools : 1, sizeof(*q->pools));
	if (q->pools == NULL)
		return -ENOMEM;
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		struct queue_class *qc = &q->classes[k];
		qc->cfg = &c->classes[k];
		if (!qc->cfg->defined)
			continue;
		qc->pools = pools_mask(qc->cfg);
		for (size_t i = 0; i < qc->cfg->npools; i++)
			q->pools[qc->cfg->pools[i]].serves[k] = true;
	}
	return 0;
}

static void waiting_add(struct queue *q, const struct queue_item *it, int d)
{
	/* Only the class's pools: the others never pop the item anyway. */
	uint64_t m = it->pools & q->classes[it->klass].pools;
	while (m != 0) {
		int p = __builtin_ctzll(m);
		m &= m - 1;
		q->pools[p].waiting[it->klass] += (unsigned)d;
	}
}

static void unlink_item(struct queue *q, struct queue_item *it);

int queue_pools_prepare(size_t npools, struct queue_pools_next *next)
{
	next->n = npools;
	next->v = calloc(npools ? npools : 1, sizeof(*next->v));
	return next->v != NULL ? 0 : -ENOMEM;
}

void queue_pools_discard(struct queue_pools_next *next)
{
	free(next->v);
	next->v = NULL;
	next->n = 0;
}

/* Bits of mask m (old pool indexes) moved to the new indexes; removed
 * pools drop out. */
static uint64_t remap(uint64_t m, const size_t *to)
{
	uint64_t r = 0;
	while (m != 0) {
		int p = __builtin_ctzll(m);
		m &= m - 1;
		if (to[p] != CONF_POOL_NEW)
			r |= UINT64_C(1) << to[p];
	}
	return r;
}

uint64_t queue_pools_remap(uint64_t mask, const size_t *from, size_t n)
{
	if (mask == UINT64_MAX)
		return mask;
	uint64_t r = 0;
	for (size_t i = 0; i < n; i++)
		if (from[i] != CONF_POOL_NEW && ((mask >> from[i]) & 1))
			r |= UINT64_C(1) << i;
	return r;
}

struct queue_item *queue_reconfigure(struct queue *q, const struct conf *c)
{
	struct queue_gone gone;
	queue_reconfigure_pools(q, c, NULL, NULL, &gone);
	/* The same pools: nothing loses its pools, only its model. */
	return gone.model_not_found;
}

void queue_reconfigure_pools(struct queue *q, const struct conf *c, const size_t *from,
			     struct queue_pools_next *next, struct queue_gone *gone)
{
	bool was_routing = q->routing;
	gone->model_not_found = gone->no_backend = NULL;
	/* to[p]: the new index of the running pool p, or CONF_POOL_NEW when the
	 * reload removes it.  A pool that a reload keeps keeps its counts:
	 * slots held per class, recent dispatches, how long slots are held. */
	size_t to[CONF_POOLS_MAX];
	bool lost = false;
	for (size_t p = 0; p < q->npools; p++)
		to[p] = from != NULL ? CONF_POOL_NEW : p;
	if (from != NULL) {
		for (size_t i = 0; i < next->n; i++) {
			if (from[i] == CONF_POOL_NEW)
				continue;
			to[from[i]] = i;
			next->v[i] = q->pools[from[i]];
		}
		queue__share_remap(q, to, q->npools);
		for (size_t p = 0; p < q->npools; p++)
			lost |= to[p] == CONF_POOL_NEW;
		free(q->pools);
		q->pools = next->v;
		q->npools = next->n;
		next->v = NULL;
		next->n = 0;
	}
	/* What each queued item could use before, in the new indexes: an item
	 * left with none of its pools lost them to this reload (no_backend). */
	uint64_t before[CONF_CLASS_COUNT];
	for (int k = 0; k < CONF_CLASS_COUNT; k++)
		before[k] = q->classes[k].pools;
	bool orphans = false;
	for (size_t i = 0; lost && i < q->heap_len; i++) {
		struct queue_item *it = q->heap[i];
		it->lost = remap(it->pools & before[it->klass], to) == 0;
		orphans |= it->lost;
	}
	q->conf = c;
	q->routing = c->nmodels > 0;
	for (size_t p = 0; p < q->npools; p++) {
		memset(q->pools[p].serves, 0, sizeof(q->pools[p].serves));
		memset(q->pools[p].waiting, 0, sizeof(q->pools[p].waiting));
	}
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		q->classes[k].cfg = &c->classes[k];
		q->classes[k].pools = 0;
		if (!c->classes[k].defined)
			continue;
		q->classes[k].pools = pools_mask(&c->classes[k]);
		for (size_t i = 0; i < c->classes[k].npools; i++)
			q->pools[c->classes[k].pools[i]].serves[k] = true;
	}
	/* The masks again, from each item's model (pool indexes may have
	 * moved); then the items left with no pool of their class come off
	 * (flow by flow: the heap reorders as items leave it), and the rest
	 * are counted. */
	for (size_t i = 0; (was_routing || q->routing) && i < q->heap_len; i++) {
		struct queue_item *it = q->heap[i];
		it->pools = it->model != NULL ? conf_model_pools(c, it->model, it->model_len) : UINT64_MAX;
		orphans |= (it->pools & q->classes[it->klass].pools) == 0;
	}
	for (int k = 0; orphans && k < CONF_CLASS_COUNT; k++) {
		struct queue_class *qc = &q->classes[k];
		for (struct queue_flow *f = qc->active, *fnext; f != NULL; f = fnext) {
			fnext = f->next_active;
			for (struct queue_item *it = f->head, *inext; it != NULL; it = inext) {
				inext = it->next;
				if (!it->lost && (it->pools & qc->pools) != 0)
					continue;
				struct queue_item **list = it->lost ? &gone->no_backend : &gone->model_not_found;
				it->lost = false;
				unlink_item(q, it);
				it->next = *list;
				*list = it;
			}
		}
	}
	if (q->routing)
		for (size_t i = 0; i < q->heap_len; i++)
			waiting_add(q, q->heap[i], 1);
}

uint64_t queue_class_pools(const struct queue *q, enum conf_class k)
{
	return q->classes[k].pools;
}

unsigned queue_waiting_for(const struct queue *q, size_t p, enum conf_class k)
{
	return q->routing ? q->pools[p].waiting[k] : q->classes[k].count;
}

void queue_set_pool_slots(struct queue *q, size_t p, unsigned slots)
{
	q->pools[p].slots = slots;
}

void queue_finish(struct queue *q)
{
	queue__share_finish(q);
	free(q->pools);
	free(q->heap);
	memset(q, 0, sizeof(*q));
}

/* --- deadline heap ------------------------------------------------------ */

static void heap_set(struct queue *q, size_t i, struct queue_item *it)
{
	q->heap[i] = it;
	it->heap_idx = (uint32_t)i;
}

static void heap_up(struct queue *q, size_t i)
{
	struct queue_item *it = q->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (q->heap[parent]->deadline_ms <= it->deadline_ms)
			break;
		heap_set(q, i, q->heap[parent]);
		i = parent;
	}
	heap_set(q, i, it);
}

static void heap_down(struct queue *q, size_t i)
{
	struct queue_item *it = q->heap[i];
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		uint64_t best = it->deadline_ms;
		if (l < q->heap_len && q->heap[l]->deadline_ms < best)
			m = l, best = q->heap[l]->deadline_ms;
		if (l + 1 < q->heap_len && q->heap[l + 1]->deadline_ms < best)
			m = l + 1;
		if (m == i)
			break;
		heap_set(q, i, q->heap[m]);
		i = m;
	}
	heap_set(q, i, it);
}

int queue_reserve(struct queue *q)
{
	if (q->heap_len < q->heap_cap)
		return 0;
	size_t cap = q->heap_cap ? q->heap_cap * 2 : 64;
	struct queue_item **h = realloc(q->heap, cap * sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	q->heap = h;
	q->heap_cap = cap;
	return 0;
}

static void heap_push(struct queue *q, struct queue_item *it)
{
	heap_set(q, q->heap_len++, it);
	heap_up(q, q->heap_len - 1);
}

static void heap_remove(struct queue *q, struct queue_item *it)
{
	size_t i = it->heap_idx;
	struct queue_item *last = q->heap[--q->heap_len];
	if (i == q->heap_len)
		return;
	heap_set(q, i, last);
	heap_up(q, i);
	heap_down(q, last->heap_idx);
}

uint64_t queue_next_deadline(const struct queue *q)
{
	return q->heap_len ? q->heap[0]->deadline_ms : UINT64_MAX;
}

struct queue_item *queue_expired(const struct queue *q, uint64_t now_ms)
{
	return q->heap_len && q->heap[0]->deadline_ms <= now_ms ? q->heap[0] : NULL;
}

/* --- slots and shares --------------------------------------------------- */

unsigned queue_class_slot_cap(const struct queue *q, size_t p, enum conf_class k)
{
	double share = q->classes[k].cfg->max_slot_share;
	unsigned slots = q->pools[p].slots;
	unsigned cap = (unsigned)floor(share * slots + 1e-9);
	/* A class with any share at all may hold at least one slot. */
	return cap < 1 ? 1 : cap;
}

bool queue_share_allows(const struct queue *q, size_t p, enum conf_class k)
{
	return q->pools[p].by_class[k] < queue_class_slot_cap(q, p, k);
}

void queue_on_dispatch(struct queue *q, size_t p, enum conf_class k)
{
	struct queue_pool *pl = &q->pools[p];
	pl->by_class[k]++;
	pl->dispatched[k] += 1;
	pl->dispatched_total += 1;
	if (pl->dispatched_total >= SHARE_WINDOW) {
		for (int j = 0; j < CONF_CLASS_COUNT; j++)
			pl->dispatched[j] /= 2;
		pl->dispatched_total /= 2;
	}
}

/* Fold a duration in ms into a pool's average (0: none yet); 0 ms counts
 * as half of one, so that a known average is never 0. */
static void ewma_ms(double *avg, uint64_t ms)
{
	double x = ms > 0 ? (double)ms : 0.5;
	*avg = *avg == 0 ? x : 0.9 * *avg + 0.1 * x;
}

void queue_on_release(struct queue *q, size_t p, enum conf_class k, uint64_t held_ms)
{
	struct queue_pool *pl = &q->pools[p];
	if (pl->by_class[k] > 0)
		pl->by_class[k]--;
	ewma_ms(&pl->held_ms, held_ms);
}

void queue_on_first_token(struct queue *q, size_t p, uint64_t ttft_ms)
{
	ewma_ms(&q->pools[p].ttft_ms, ttft_ms);
}

/* --- admission checks ---------------------------------------------------- */

double queue_recent_ttft(const struct queue *q, enum conf_class k, uint64_t mask)
{
	const struct conf_class_cfg *cc = q->classes[k].cfg;
	double best = 0;
	for (size_t i = 0; i < cc->npools; i++) {
		double t = q->pools[cc->pools[i]].ttft_ms;
		if (((mask >> cc->pools[i]) & 1) && t > 0 && (best == 0 || t < best))
			best = t;
	}
	return best;
}

/* Requests per ms that class k's pools complete (0 when not yet known). */
static double class_rate(const struct queue *q, enum conf_class k)
{
	const struct conf_class_cfg *cc = q->classes[k].cfg;
	double rate = 0;
	for (size_t i = 0; i < cc->npools; i++) {
		const struct queue_pool *pl = &q->pools[cc->pools[i]];
		if (pl->held_ms > 0)
			rate += queue_class_slot_cap(q, cc->pools[i], k) / pl->held_ms;
	}
	return rate;
}

/*
 * Work that would start before a new item of tenant t in class k: in its own
 * class, what fair order serves first (t's own queued items, and from every
 * other flow at most as many as its weight lets it send per item of t's),
 * plus everything queued in more urgent classes that share a pool with k.
 * Counting the whole class would make a light tenant pay for a heavy one's
 * backlog, which fair order never makes it wait for.
 */
static double work_ahead(const struct queue *q, enum conf_class k, const struct queue_tenant *t)
{
	const struct queue_class *qc = &q->classes[k];
	const struct queue_flow *own = &t->flows[k];
	double wt = t->cfg->weight > 0 ? t->cfg->weight : 1;
	double rounds = own->count + 1;
	double ahead = own->count;
	for (const struct queue_flow *f = qc->active; f != NULL; f = f->next_active) {
		if (f == own)
			continue;
		double wf = f->head->tenant->cfg->weight > 0 ? f->head->tenant->cfg->weight : 1;
		double share = rounds * wf / wt;
		ahead += f->count < share ? f->count : share;
	}
	for (int j = 0; j < (int)k; j++) {
		if (!q->classes[j].cfg->defined || q->classes[j].count == 0)
			continue;
		for (size_t i = 0; i < qc->cfg->npools; i++) {
			if (q->pools[qc->cfg->pools[i]].serves[j]) {
				ahead += q->classes[j].count;
				break;
			}
		}
	}
	return ahead;
}

uint64_t queue_predicted_wait(const struct queue *q, enum conf_class k, const struct queue_tenant *t)
{
	double rate = class_rate(q, k);
	if (rate <= 0)
		return 0;
	return (uint64_t)ceil((work_ahead(q, k, t) + 1) / rate);
}

uint64_t queue_retry_clamp(double ms)
{
	if (!(ms >= RETRY_MIN_MS))
		return RETRY_MIN_MS;
	return ms > RETRY_MAX_MS ? RETRY_MAX_MS : (uint64_t)ceil(ms);
}

uint64_t queue_retry_hint(const struct queue *q, enum conf_class k, const struct queue_tenant *t)
{
	uint64_t wait = queue_predicted_wait(q, k, t);
	return wait > 0 ? queue_retry_clamp((double)wait) : 1000;
}

/* The flow of class k holding the most items, if it holds more than `than`. */
static struct queue_flow *fattest(const struct queue_class *qc, unsigned than)
{
	struct queue_flow *fat = NULL;
	for (struct queue_flow *f = qc->active; f != NULL; f = f->next_active)
		if (f->count > than && (fat == NULL || f->count > fat->count))
			fat = f;
	return fat;
}

enum queue_check queue_check(const struct queue *q, enum conf_class k, const struct queue_tenant *t,
			       uint64_t bytes, uint64_t now_ms, uint64_t deadline_ms, uint64_t *retry_ms,
			       struct queue_item **victim)
{
	const struct queue_class *qc = &q->classes[k];
	double rate = class_rate(q, k);
	*victim = NULL;
	if (qc->count >= qc->cfg->max_queue || qc->bytes + bytes > qc->cfg->max_queue_bytes ||
	    q->bytes + bytes > q->conf->limits.max_queued_bytes) {
		/* A full class makes room for a tenant with fewer queued than
		 * the fattest flow by pushing out that flow's newest item, so
		 * that one tenant cannot hold the whole queue.  Only when the
		 * count is the bound: a byte bound is not freed by one item. */
		struct queue_flow *fat = fattest(qc, t->flows[k].count + 1);
		/* Exactly at the bound: a reload that shrank max_queue below the
		 * count leaves the class full until it drains, evicting nobody. */
		if (fat != NULL && qc->count == qc->cfg->max_queue && qc->bytes + bytes <= qc->cfg->max_queue_bytes &&
		    q->bytes + bytes <= q->conf->limits.max_queued_bytes + fat->tail->bytes) {
			*victim = fat->tail;
		} else {
			/* Room appears when the work ahead has moved on by one slot. */
			*retry_ms = queue_retry_clamp(rate > 0 ? 1.0 / rate : 1000);
			return QUEUE_CHECK_FULL;
		}
	}
	if (rate > 0) {
		double wait = (work_ahead(q, k, t) + 1) / rate;
		double budget = deadline_ms > now_ms ? (double)(deadline_ms - now_ms) : 0;
		if (wait > budget) {
			/* By then the queue ahead will have drained enough. */
			*retry_ms = queue_retry_clamp(wait - budget);
			*victim = NULL;
			return QUEUE_CHECK_UNMEETABLE;
		}
	}
	return QUEUE_CHECK_OK;
}

/* --- queues ------------------------------------------------------------- */

/* Put it in its flow, at the head or the tail, and in the deadline heap. */
static int push(struct queue *q, struct queue_item *it, bool head)
{
	struct queue_class *qc = &q->classes[it->klass];
	struct queue_flow *f = &it->tenant->flows[it->klass];
	if (queue_reserve(q) < 0)
		return -ENOMEM;
	if (f->count == 0) {
		if (f->vtime < qc->vclock)
			f->vtime = qc->vclock;
		f->prev_active = NULL;
		f->next_active = qc->active;
		if (qc->active != NULL)
			qc->active->prev_active = f;
		qc->active = f;
	}
	if (head) {
		it->prev = NULL;
		it->next = f->head;
		if (f->head != NULL)
			f->head->prev = it;
		else
			f->tail = it;
		f->head = it;
	} else {
		it->next = NULL;
		it->prev = f->tail;
		if (f->tail != NULL)
			f->tail->next = it;
		else
			f->head = it;
		f->tail = it;
	}
	f->count++;
	qc->count++;
	qc->bytes += it->bytes;
	q->count++;
	q->bytes += it->bytes;
	it->queued = true;
	heap_push(q, it);
	queue__share_join(q, it->tenant, (enum conf_class)it->klass, it->enqueued_ms);
	if (q->routing)
		waiting_add(q, it, 1);
	return 0;
}

int queue_push(struct queue *q, struct queue_item *it, uint64_t now_ms)
{
	it->enqueued_ms = now_ms;
	if (now_ms > q->clock_ms)
		q->clock_ms = now_ms;
	return push(q, it, false);
}

int queue_requeue(struct queue *q, struct queue_item *it)
{
	return push(q, it, true);
}

void queue_remove(struct queue *q, struct queue_item *it)
{
	if (!it->queued)
		return;
	if (q->routing)
		waiting_add(q, it, -1);
	unlink_item(q, it);
}

/* Off its flow, its class's and the global counts, and the heap. */
static void unlink_item(struct queue *q, struct queue_item *it)
{
	struct queue_class *qc = &q->classes[it->klass];
	struct queue_flow *f = &it->tenant->flows[it->klass];
	if (it->prev != NULL)
		it->prev->next = it->next;
	else
		f->head = it->next;
	if (it->next != NULL)
		it->next->prev = it->prev;
	else
		f->tail = it->prev;
	it->next = it->prev = NULL;
	if (--f->count == 0) {
		if (f->prev_active != NULL)
			f->prev_active->next_active = f->next_active;
		else
			qc->active = f->next_active;
		if (f->next_active != NULL)
			f->next_active->prev_active = f->prev_active;
		f->next_active = f->prev_active = NULL;
	}
	qc->count--;
	qc->bytes -= it->bytes;
	q->count--;
	q->bytes -= it->bytes;
	heap_remove(q, it);
	it->queued = false;
}

/* The first item of flow f that pool p serves the model of, or NULL. */
static struct queue_item *first_for(const struct queue_flow *f, size_t p)
{
	for (struct queue_item *it = f->head; it != NULL; it = it->next)
		if ((it->pools >> p) & 1)
			return it;
	return NULL;
}

/*
 * The item of class k that a free slot of pool p goes to, in fair order
 * among the flows holding an item for p whose tenant's slot share lets it
 * take the slot (share.h), or NULL.  *flow is its flow.  A flow is walked
 * only when it would come before the best so far.
 */
static struct queue_item *best_of(const struct queue *q, size_t p, enum conf_class k, uint64_t now_ms,
				  struct queue_flow **flow)
{
	const struct queue_class *qc = &q->classes[k];
	struct queue_share_view v;
	struct queue_flow *best = NULL;
	struct queue_item *it = NULL;
	queue__share_view(q, p, k, now_ms, &v);
	for (struct queue_flow *f = qc->active; f != NULL; f = f->next_active) {
		struct queue_item *cand;
		if (best != NULL && f->vtime >= best->vtime)
			continue;
		if ((cand = q->routing ? first_for(f, p) : f->head) == NULL)
			continue;
		if (!queue__share_view_allows(&v, cand->tenant))
			continue;
		best = f;
		it = cand;
	}
	*flow = best;
	return it;
}

/*
 * Has class k a queued item that a free slot of pool p could go to?  With
 * tenant slot shares, finding out is finding it: *it is that item and
 * *flow its flow; otherwise *it is NULL (best_of() finds it, if needed).
 */
static bool could_take(const struct queue *q, size_t p, enum conf_class k, uint64_t now_ms,
		       struct queue_item **it, struct queue_flow **flow)
{
	*it = NULL;
	if (queue_waiting_for(q, p, k) == 0)
		return false;
	if (q->classes[k].cfg->tenant_slot_share != CONF_TENANT_SLOT_SHARE_FAIR)
		return true;
	*it = best_of(q, p, k, now_ms, flow);
	return *it != NULL;
}

bool queue_waiting_could_take(const struct queue *q, size_t p, enum conf_class k, uint64_t now_ms)
{
	struct queue_item *it;
	struct queue_flow *f;
	return could_take(q, p, k, now_ms, &it, &f);
}

/* May class k take a free slot of pool p for one of its queued items?
 * *it and *flow as could_take(). */
static bool class_ready(const struct queue *q, size_t p, enum conf_class k, uint64_t now_ms,
			struct queue_item **it, struct queue_flow **flow)
{
	*it = NULL;
	return q->pools[p].serves[k] && queue_share_allows(q, p, k) && could_take(q, p, k, now_ms, it, flow);
}

/* The class a free slot of pool p goes to, or -1; *it and *flow as
 * could_take() for that class. */
static int pick_class(const struct queue *q, size_t p, uint64_t now_ms, struct queue_item **it,
		      struct queue_flow **flow)
{
	const struct queue_pool *pl = &q->pools[p];
	int chosen = -1;
	double worst = 0;
	/* min_share first: the class furthest below its share of recent
	 * dispatches of this pool. */
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		const struct queue_class *qc = &q->classes[k];
		double deficit = qc->cfg->min_share * pl->dispatched_total - pl->dispatched[k];
		struct queue_item *cand;
		struct queue_flow *f = NULL;
		if (qc->cfg->min_share > 0 && deficit > 0 && deficit > worst &&
		    class_ready(q, p, (enum conf_class)k, now_ms, &cand, &f)) {
			chosen = k;
			worst = deficit;
			*it = cand;
			*flow = f;
		}
	}
	if (chosen >= 0)
		return chosen;
	for (int k = 0; k < CONF_CLASS_COUNT; k++)
		if (class_ready(q, p, (enum conf_class)k, now_ms, it, flow))
			return k;
	*it = NULL;
	return -1;
}

struct queue_item *queue_pop_at(struct queue *q, size_t p, uint64_t now_ms)
{
	if (now_ms > q->clock_ms)
		q->clock_ms = now_ms;
	struct queue_item *it;
	struct queue_flow *best;
	int k = pick_class(q, p, now_ms, &it, &best);
	if (k < 0)
		return NULL;
	struct queue_class *qc = &q->classes[k];
	if (it == NULL)	/* no tenant slot shares: not found on the way */
		it = best_of(q, p, (enum conf_class)k, now_ms, &best);
	if (it == NULL)
		return NULL;	/* impossible: pick_class() found one */
	double weight = it->tenant->cfg->weight > 0 ? it->tenant->cfg->weight : 1;
	double cost = it->cost >= 1 ? it->cost : 1;
	qc->vclock = best->vtime;
	best->vtime += cost / weight;
	queue_remove(q, it);
	return it;
}

struct queue_item *queue_pop(struct queue *q, size_t p)
{
	return queue_pop_at(q, p, q->clock_ms);
}
