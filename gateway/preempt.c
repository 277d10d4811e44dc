/*
 * preempt.c - carrying out preemption; see preempt.h.
 *
 * One pass (the timer's or an admission's) looks at the pools once: which
 * have a free slot now (before this pass ends anything), and which
 * exchanges in flight the policy could end, with when each started.  The
 * candidates are gathered only when some request needs a victim, from the
 * slots held by the classes with preemption enabled (srv->held, slot.h):
 * a pass costs O(their slots), and passes are bounded by the judge points,
 * the recheck period and max_per_s.
 */
#include <stddef.h>
#include <stdlib.h>

#include "gateway/conn.h"
#include "gateway/exchange.h"
#include "gateway/log.h"
#include "gateway/preempt.h"
#include "gateway/server.h"
#include "gateway/slot.h"
#include "queue/admit.h"

struct pass {
	uint64_t now;
	bool free[CONF_POOLS_MAX];	/* a slot of the pool is free, before this pass */
	size_t ns;			/* candidates gathered; SIZE_MAX: not yet */
};

static void arm(struct gw_server *srv, uint64_t at);

static void sync_policy(struct gw_server *srv)
{
	struct gw_preempt *p = &srv->preempt;
	if (p->generation == srv->generation)
		return;
	bool was = p->policy.any;
	queue_preempt_reconfigure(&p->policy, srv->conf, gw_now_ms(srv));
	p->generation = srv->generation;
	if (!was && p->policy.any)
		arm(srv, gw_now_ms(srv));	/* requests queued before it was on are judged too */
}

static void pass_begin(struct gw_server *srv, struct pass *ps)
{
	ps->now = gw_now_ms(srv);
	ps->ns = SIZE_MAX;
	for (size_t i = 0; i < srv->backends.npools && i < CONF_POOLS_MAX; i++)
		ps->free[i] = backend_pool_pick(srv->backends.pools[i], ps->now) != NULL;
}

/* What the policy needs to know of c's request. */
static void need_of(struct gw_server *srv, const struct pass *ps, const struct gw_conn *c,
		    struct queue_preempt_need *n)
{
	enum conf_class k = (enum conf_class)c->qi.klass;
	uint64_t pools = c->qi.pools & queue_class_pools(&srv->queue, k);
	*n = (struct queue_preempt_need){
		.klass = c->qi.klass,
		.enqueued_ms = c->qi.enqueued_ms,
		.deadline_ms = c->qi.deadline_ms,
	};
	for (size_t p = 0; p < srv->backends.npools && p < CONF_POOLS_MAX; p++) {
		if (!((pools >> p) & 1) || !queue_share_allows(&srv->queue, p, k))
			continue;	/* a slot there would not be its to take */
		n->pools |= UINT64_C(1) << p;
		n->slot_free |= ps->free[p];
	}
}

/* Candidate n: c's exchange.  0, or -1 when there is no memory for it. */
static int add_candidate(struct gw_preempt *p, size_t n, struct gw_conn *c)
{
	if (n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct queue_preempt_slot *s = realloc(p->slots, cap * sizeof(*s));
		if (s != NULL)
			p->slots = s;
		struct gw_conn **o = s ? realloc(p->owners, cap * sizeof(*o)) : NULL;
		if (o == NULL)
			return -1;
		p->owners = o;
		p->cap = cap;
	}
	p->slots[n] = (struct queue_preempt_slot){ .klass = c->qi.klass, .pool = c->rec.pool->index,
						   .started_ms = c->rec.t_dispatch / 1000000 };
	p->owners[n] = c;
	return 0;
}

/* The exchanges in flight that a class with preemption enabled holds. */
static int gather(struct gw_server *srv, struct pass *ps)
{
	struct gw_preempt *p = &srv->preempt;
	size_t n = 0;
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		if (!srv->conf->classes[k].preemption.enabled)
			continue;
		for (const struct gw_slot *s = srv->held[k]; s != NULL; s = s->next) {
			struct gw_conn *c = s->owner;
			if (c->state != GW_CONN_UPSTREAM || c->x == NULL || c->rec.pool == NULL ||
			    c->rec.pool->index >= srv->backends.npools)
				continue;	/* connecting again, or its pool is gone */
			if (!backend_frees_on_release(s->backend, ps->now))
				continue;	/* ending it would free no slot anyone can take */
			if (add_candidate(p, n, c) < 0)
				return -1;	/* no memory: no preemption this pass */
			n++;
		}
	}
	ps->ns = n;
	return 0;
}

/* End the exchange of candidate i for waiting request w. */
static void end_victim(struct gw_server *srv, struct pass *ps, size_t i, const struct gw_conn *w)
{
	struct gw_preempt *p = &srv->preempt;
	struct gw_conn *v = p->owners[i];
	p->slots[i] = p->slots[ps->ns - 1];
	p->owners[i] = p->owners[ps->ns - 1];
	ps->ns--;
	p->preempted++;
	enum conf_class k = (enum conf_class)v->qi.klass;
	uint64_t ran = (uv_hrtime() - v->rec.t_dispatch) / 1000000;
	uint64_t retry = queue_retry_hint(&srv->queue, k, v->qi.tenant);
	gw_info("preempted request_id=%s tenant=%s class=%s backend=%s pool=%s ran_ms=%llu "
		"for request_id=%s tenant=%s", v->request_id, v->qi.tenant->cfg->name, conf_class_name(k),
		v->rec.backend, v->rec.pool->cfg->name, (unsigned long long)ran, w->request_id,
		w->qi.tenant->cfg->name);
	gw__exchange_preempt(v, retry);
}

/*
 * Whether gathering the candidates could find a victim for n: some class
 * with preemption enabled holds a slot of one of n's pools, and its rate
 * bound has one to spend (otherwise *retry_at is lowered to when it will).
 * The queues count the slots each class holds, so that a request that
 * cannot preempt (a burst refused at admission under overload, a pool no
 * preemptible class uses) never costs a walk of every connection.
 */
static bool worth_gathering(struct gw_server *srv, const struct queue_preempt_need *n, uint64_t now,
			    uint64_t *retry_at)
{
	struct gw_preempt *p = &srv->preempt;
	bool held = false, limited = false;
	for (int k = 0; k < CONF_CLASS_COUNT && !held; k++) {
		struct queue_bucket *b = &p->policy.rate[k];
		if (b->rate_ms <= 0)
			continue;	/* not preemptible */
		bool holds = false;
		for (size_t q = 0; q < srv->queue.npools && q < CONF_POOLS_MAX && !holds; q++)
			holds = ((n->pools >> q) & 1) && srv->queue.pools[q].by_class[k] > 0;
		if (!holds)
			continue;
		uint64_t wait = queue_bucket_wait(b, 1, now);
		if (wait == 0) {
			held = true;
			continue;
		}
		limited = true;
		if (now + wait < *retry_at)
			*retry_at = now + wait;
	}
	if (!held && limited)
		p->limited++;
	return held;
}

/*
 * One request's turn in a pass: true when a victim was ended for it;
 * false when it still waits for a slot, with *retry_at lowered to when a
 * rate-bounded pass may succeed.  The free slots are those before the
 * pass: a slot freed for one request is not seen free by the next.
 */
static bool serve(struct gw_server *srv, struct pass *ps, const struct gw_conn *c,
		  const struct queue_preempt_need *n, uint64_t *retry_at)
{
	struct gw_preempt *p = &srv->preempt;
	if (n->slot_free || !queue_preempt_would_miss(n, ps->now) || !worth_gathering(srv, n, ps->now, retry_at))
		return false;
	if (ps->ns == SIZE_MAX && gather(srv, ps) < 0)
		return false;
	uint64_t wait = UINT64_MAX;
	int i = queue_preempt_choose(&p->policy, srv->conf, n, p->slots, ps->ns, ps->now, &wait);
	if (i < 0) {
		if (wait != UINT64_MAX) {
			p->limited++;
			if (ps->now + wait < *retry_at)
				*retry_at = ps->now + wait;
		}
		return false;
	}
	end_victim(srv, ps, (size_t)i, c);
	return true;
}

static void on_timer(uv_timer_t *t);

static void arm(struct gw_server *srv, uint64_t at)
{
	struct gw_preempt *p = &srv->preempt;
	uint64_t now = gw_now_ms(srv);
	p->armed_ms = at;
	uv_timer_start(&p->timer, on_timer, at > now ? at - now : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct gw_server *srv = t->data;
	struct gw_preempt *p = &srv->preempt;
	p->armed_ms = UINT64_MAX;
	sync_policy(srv);
	if (!p->policy.any)
		return;
	struct pass ps;
	pass_begin(srv, &ps);
	uint64_t next = UINT64_MAX;
	bool waiting = false;
	const struct queue_class *qc = &srv->queue.classes[QUEUE_PREEMPTOR];
	for (const struct queue_flow *f = qc->active; f != NULL; f = f->next_active) {
		for (const struct queue_item *it = f->head; it != NULL; it = it->next) {
			uint64_t at = queue_preempt_judge_at(it->klass, it->enqueued_ms, it->deadline_ms);
			if (at > ps.now) {
				next = at < next ? at : next;
				continue;
			}
			const struct gw_conn *c = (const struct gw_conn *)((const char *)it - offsetof(struct gw_conn, qi));
			struct queue_preempt_need n;
			need_of(srv, &ps, c, &n);
			waiting = true;	/* looked at again, even with no pool open to it now */
			if (n.pools == 0)
				continue;
			/* Looked at again until it starts: the slot freed for it
			 * may go to another interactive request first (fair
			 * order), and a rate-bounded one waits for its turn. */
			serve(srv, &ps, c, &n, &next);
		}
	}
	if (waiting && ps.now + GW_PREEMPT_RECHECK_MS < next)
		next = ps.now + GW_PREEMPT_RECHECK_MS;
	if (next != UINT64_MAX)
		arm(srv, next);
}

void gw__preempt_reloaded(struct gw_server *srv)
{
	sync_policy(srv);
}

void gw__preempt_watch(struct gw_server *srv, const struct gw_conn *c)
{
	struct gw_preempt *p = &srv->preempt;
	sync_policy(srv);
	if (!p->policy.any)
		return;
	uint64_t at = queue_preempt_judge_at(c->qi.klass, c->qi.enqueued_ms, c->qi.deadline_ms);
	if (at < p->armed_ms)
		arm(srv, at);
}

bool gw__preempt_admission(struct gw_server *srv, struct gw_conn *c, const struct queue_verdict *v)
{
	struct gw_preempt *p = &srv->preempt;
	sync_policy(srv);
	if (!p->policy.any || c->qi.klass != QUEUE_PREEMPTOR)
		return false;
	struct pass ps;
	pass_begin(srv, &ps);
	struct queue_preempt_need n;
	need_of(srv, &ps, c, &n);
	/* Not queued: its wait would have started now. */
	n.enqueued_ms = ps.now;
	n.deadline_ms = ps.now + v->budget_ms;
	n.predicted_ms = ps.now + (v->predicted_ms > 0 ? v->predicted_ms : 1);
	uint64_t retry_at = UINT64_MAX;
	return n.pools != 0 && serve(srv, &ps, c, &n, &retry_at);
}

int gw__preempt_init(struct gw_server *srv)
{
	struct gw_preempt *p = &srv->preempt;
	p->armed_ms = UINT64_MAX;
	p->generation = srv->generation;
	queue_preempt_init(&p->policy, srv->conf, gw_now_ms(srv));
	int rc = uv_timer_init(srv->loop, &p->timer);
	p->timer.data = srv;
	return rc;
}

void gw__preempt_close(struct gw_server *srv)
{
	struct gw_preempt *p = &srv->preempt;
	uv_close((uv_handle_t *)&p->timer, NULL);
	free(p->slots);
	free(p->owners);
	p->slots = NULL;
	p->owners = NULL;
	p->cap = 0;
}
