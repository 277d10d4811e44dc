/*
 * admit.c - the admission policy; see admit.h.
 *
 * In this order, cheapest refusal first, and before anything is charged
 * that a refusal would have to give back:
 *   1. classify (x-sluice-class, service_tier, tenant default; never above
 *      the tenant's max_class; a class the config does not define falls
 *      back to the tenant's default);
 *   2. refuse model_not_found when no pool of the class serves the body's
 *      model, and no_backend when no pool of the class that does has a
 *      healthy backend (nothing could serve it, so it must not cost quota);
 *   3. charge one request, then the token estimate (the prompt's, plus the
 *      output it asks for or limits.default_max_tokens); a bucket that
 *      cannot pay refuses with its wait as the hint, and an estimate larger
 *      than the bucket can ever hold is refused for good (no hint): one
 *      request never drives its tenant into debt;
 *   4. START on the first pool of the class (preference order) serving the
 *      model, with a free slot within the class's max_slot_share and the
 *      tenant's slot share (queue/share.h), when nobody of the class who
 *      could take that slot is waiting already (a newcomer never overtakes
 *      the queue; a tenant queued at its share could not take it, so a
 *      lighter tenant starts in the room kept for it);
 *   5. otherwise WAIT: the deadline is the class's max_wait_ms, shortened
 *      (never lengthened) by the client's; queue_check() refuses a full
 *      class or an unmeetable deadline, or names the victim whose place a
 *      lighter tenant takes; a class with a ttft_objective_ms refuses a
 *      request whose predicted wait plus its pools' recent time to first
 *      token already passes the objective (ttft_unmeetable).
 *
 * The TTFT objective is judged only for a request that would wait.  One
 * that can start at once gets the best time to first token there is, and
 * refusing it would make nobody's better; a backend slow on its own is
 * for the TTFT alert, not for shedding.  The prediction is the wait that
 * deadline_unmeetable predicts (the work ahead at the recent dispatch
 * rate) plus the least recent TTFT among the pools that could serve it:
 * optimistic on purpose, so that what is refused would surely have missed.
 */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "queue/admit.h"

static bool class_has_backend(const struct conf_class_cfg *cc, const struct queue_facts *f, uint64_t mask)
{
	for (size_t i = 0; i < cc->npools; i++)
		if (((mask >> cc->pools[i]) & 1) && (f->pools[cc->pools[i]] & QUEUE_POOL_UP))
			return true;
	return false;
}

/* The first pool of class k, in preference order, that serves the item's
 * model and has a slot it may take (its class's max_slot_share and its
 * tenant's slot share allowing) that nobody queued could take instead. */
static bool place(const struct queue *q, enum conf_class k, const struct queue_facts *f,
		  const struct queue_item *it, uint64_t now_ms, size_t *pool)
{
	const struct conf_class_cfg *cc = q->classes[k].cfg;
	for (size_t i = 0; i < cc->npools; i++) {
		size_t p = cc->pools[i];
		if (((it->pools >> p) & 1) && (f->pools[p] & QUEUE_POOL_FREE) && queue_share_allows(q, p, k) &&
		    queue_share_may_take(q, it->tenant, p, k, now_ms) && !queue_waiting_could_take(q, p, k, now_ms)) {
			*pool = p;
			return true;
		}
	}
	return false;
}

static void reject(struct queue_verdict *v, enum queue_reason r, uint64_t retry_ms)
{
	v->action = QUEUE_REJECT;
	v->reason = r;
	v->retry_ms = retry_ms;
}

/* Charge t for one request of `tokens`; false (nothing charged) when a
 * bucket cannot pay, with the refusal in v. */
static bool charge(struct queue_tenant *t, double tokens, uint64_t now_ms, struct queue_item *it,
		   struct queue_verdict *v)
{
	uint64_t wait = 0;
	if (!queue_bucket_take(&t->requests, 1, now_ms, &wait)) {
		reject(v, QUEUE_R_RATE_LIMITED, wait);
		return false;
	}
	if (!queue_bucket_take(&t->tokens, tokens, now_ms, &wait)) {
		queue_bucket_adjust(&t->requests, 1, now_ms);
		reject(v, QUEUE_R_TOKENS_EXCEEDED, wait);
		return false;
	}
	it->charge = (struct queue_charge){ .requests = 1, .tokens = tokens };
	return true;
}

/* Queue it, evicting the victim queue_check() named, or refuse it. */
static void wait_or_refuse(struct queue *q, const struct queue_facts *f, uint64_t now_ms,
			   struct queue_item *it, struct queue_verdict *v)
{
	const struct queue_class *qc = &q->classes[it->klass];
	enum conf_class k = (enum conf_class)it->klass;
	uint64_t deadline = it->deadline_ms;
	uint64_t retry = 0;
	struct queue_item *victim = NULL;
	enum queue_check check = queue_check(q, k, it->tenant, f->body_bytes, now_ms, deadline, &retry, &victim);
	uint64_t objective = qc->cfg->ttft_objective_ms;
	if (check == QUEUE_CHECK_OK && objective > 0) {
		double ttft = queue_recent_ttft(q, k, it->pools);
		double predicted = (double)queue_predicted_wait(q, k, it->tenant) + ttft;
		if (predicted > (double)objective) {
			queue_refund(it, now_ms);
			v->budget_ms = objective;
			v->predicted_ms = (uint64_t)ceil(predicted);
			v->ttft_ms = (uint64_t)ceil(ttft);
			/* By then the work ahead will have moved on enough. */
			reject(v, QUEUE_R_TTFT_UNMEETABLE, queue_retry_clamp(predicted - (double)objective));
			return;
		}
	}
	if (check != QUEUE_CHECK_OK || queue_reserve(q) < 0) {
		queue_refund(it, now_ms);
		if (check == QUEUE_CHECK_FULL) {
			v->queued = qc->count;
			reject(v, QUEUE_R_QUEUE_FULL, retry);
		} else if (check == QUEUE_CHECK_UNMEETABLE) {
			v->budget_ms = deadline - now_ms;
			v->predicted_ms = queue_predicted_wait(q, k, it->tenant);
			reject(v, QUEUE_R_DEADLINE_UNMEETABLE, retry);
		} else {
			reject(v, QUEUE_R_NO_MEMORY, 0);
		}
		return;
	}
	if (victim != NULL)
		queue_withdraw(q, victim, now_ms);
	/* The bound holds whatever answering the victim leads to: room was
	 * made, and this item takes it, before anyone else can run. */
	assert(qc->count < qc->cfg->max_queue);
	queue_push(q, it, now_ms);
	v->action = QUEUE_WAIT;
	v->victim = victim;
}

void queue_admit(struct queue *q, struct queue_tenant *t, const struct queue_facts *f, uint64_t now_ms,
		 struct queue_item *it, struct queue_verdict *v)
{
	memset(v, 0, sizeof(*v));
	bool capped;
	enum conf_class k = queue_classify(t, f->class_header, f->class_header_len, f->body_class, &capped);
	if (!q->classes[k].cfg->defined)
		k = t->cfg->default_class;
	v->klass = k;
	if (it->tenant != t) {
		/* the item holds its tenant until queue_tenant_put(), whatever the verdict */
		queue_tenant_put(&it->tenant);
		it->tenant = queue_tenant_get(t);
	}
	it->klass = (uint8_t)k;
	it->charge = (struct queue_charge){ 0 };
	it->model = f->model;
	it->model_len = f->model_len;
	it->pools = f->model != NULL ? conf_model_pools(q->conf, f->model, f->model_len) : UINT64_MAX;
	if ((it->pools & queue_class_pools(q, k)) == 0) {
		v->model = f->model;
		v->model_len = f->model_len;
		reject(v, QUEUE_R_MODEL_NOT_FOUND, 0);
		return;
	}
	if (!class_has_backend(q->classes[k].cfg, f, it->pools)) {
		reject(v, QUEUE_R_NO_BACKEND, 0);
		return;
	}
	double out = f->output_tokens >= 0 ? f->output_tokens : q->conf->limits.default_max_tokens;
	v->tokens = f->prompt_tokens + out;
	if (!queue_bucket_unlimited(&t->tokens) && v->tokens > t->tokens.burst) {
		reject(v, QUEUE_R_TOKENS_NEVER, 0);
		return;
	}
	if (!charge(t, v->tokens, now_ms, it, v))
		return;
	it->charge.output = out < v->tokens ? out : v->tokens;
	it->cost = v->tokens;
	/* Set for a request that starts at once too: one whose connect fails
	 * goes back to the queue with them (queue_requeue()). */
	const struct conf_class_cfg *cc = q->classes[k].cfg;
	it->deadline_ms = now_ms + (f->deadline_ms < cc->max_wait_ms ? f->deadline_ms : cc->max_wait_ms);
	it->enqueued_ms = now_ms;
	it->bytes = f->body_bytes;
	if (place(q, k, f, it, now_ms, &v->pool)) {
		v->action = QUEUE_START;
		return;
	}
	wait_or_refuse(q, f, now_ms, it, v);
}

void queue_refund(struct queue_item *it, uint64_t now_ms)
{
	if (it->charge.requests != 0)
		queue_bucket_adjust(&it->tenant->requests, it->charge.requests, now_ms);
	if (it->charge.tokens != 0)
		queue_bucket_adjust(&it->tenant->tokens, it->charge.tokens, now_ms);
	it->charge = (struct queue_charge){ 0 };
}

void queue_settle(struct queue_item *it, double used, uint64_t now_ms)
{
	queue_bucket_adjust(&it->tenant->tokens, it->charge.tokens - used, now_ms);
	it->charge.tokens = used;
	it->charge.output = 0;	/* settled: nothing more to give back */
}

void queue_settle_unreported(struct queue_item *it, uint64_t now_ms)
{
	if (it->charge.output <= 0)
		return;
	queue_bucket_adjust(&it->tenant->tokens, it->charge.output, now_ms);
	it->charge.tokens -= it->charge.output;
	it->charge.output = 0;
}

void queue_withdraw(struct queue *q, struct queue_item *it, uint64_t now_ms)
{
	if (!it->queued)
		return;
	queue_remove(q, it);
	queue_refund(it, now_ms);
}

struct queue_item *queue_expire(struct queue *q, uint64_t now_ms)
{
	struct queue_item *it = queue_expired(q, now_ms);
	if (it != NULL)
		queue_withdraw(q, it, now_ms);
	return it;
}
