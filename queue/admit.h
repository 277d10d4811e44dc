/*
 * admit.h - admission: the policy that decides what happens to a request.
 *
 * One function, queue_admit(), takes the facts the gateway read from a
 * complete request (its tenant, the class it asks for, its size, the output
 * it asks for, a client deadline) and what the pools can do now, and
 * returns a verdict:
 *
 *   START   a slot of `pool` is free for the request's class: take it now;
 *   WAIT    the request is in its class queue (pushed by queue_admit()),
 *           possibly after evicting another tenant's request (`victim`),
 *           which the caller must answer queue_full;
 *   REJECT  answer it with `reason` and a retry hint.
 *
 * Every verdict but REJECT charges the tenant's buckets (one request, and
 * an estimate of its tokens) and records the charge in the item, so that it
 * can be given back exactly once (queue_refund) when the request is never
 * served: refused, evicted, expired, or withdrawn because its client left.
 * Quota pays for service.  A served request keeps its charge, corrected
 * with the usage its response reports (queue_settle).
 *
 * Everything here is a function of its arguments and the clock passed in:
 * no I/O, no callbacks.  All queue mutation an admission needs (the
 * eviction and the push) happens inside queue_admit(), before it returns,
 * so a caller that answers the victim can never see a class over its
 * max_queue, whatever answering the victim leads to.
 */
#ifndef SLUICE_QUEUE_ADMIT_H
#define SLUICE_QUEUE_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "queue/queue.h"
#include "queue/tenant.h"

/* What the gateway sees of pool p now (backends/ knows; queue/ is told). */
enum {
	QUEUE_POOL_UP = 1,		/* some backend is healthy */
	QUEUE_POOL_FREE = 2,		/* some healthy backend has a free slot */
};

/* Facts about one request, as read from it by the gateway. */
struct queue_facts {
	const char *class_header;	/* x-sluice-class, or NULL */
	size_t class_header_len;
	int body_class;			/* enum conf_class the body asks for (OpenAI service_tier); -1: none */
	uint64_t body_bytes;		/* held while queued */
	double prompt_tokens;		/* estimated from the body (gateway/openai.c) */
	double output_tokens;		/* asked for (max_tokens x n); < 0 when not said */
	uint64_t deadline_ms;		/* x-sluice-deadline-ms; UINT64_MAX when not sent */
	const uint8_t *pools;		/* [conf.npools]: QUEUE_POOL_* bits */
	/* The body's `model` (NULL: none; a model_len above CONF_MODEL_MAX: a
	 * name too long to keep, which matches no pool's list).  Only the
	 * pools of the class that serve it are considered. */
	const char *model;
	size_t model_len;
};

enum queue_action { QUEUE_REJECT = 0, QUEUE_START, QUEUE_WAIT };

enum queue_reason {
	QUEUE_R_NONE = 0,
	QUEUE_R_MODEL_NOT_FOUND,	/* no pool of the class serves the model */
	QUEUE_R_NO_BACKEND,		/* no pool of the class (serving the model) has a healthy backend */
	QUEUE_R_RATE_LIMITED,		/* requests bucket empty */
	QUEUE_R_TOKENS_EXCEEDED,	/* tokens bucket empty */
	QUEUE_R_TOKENS_NEVER,		/* the estimate exceeds what the bucket can ever hold */
	QUEUE_R_QUEUE_FULL,		/* class or byte bound reached */
	QUEUE_R_DEADLINE_UNMEETABLE,	/* predicted wait passes the deadline */
	QUEUE_R_TTFT_UNMEETABLE,	/* predicted wait + recent TTFT passes ttft_objective_ms */
	QUEUE_R_NO_MEMORY,
	/* Reasons a queued request leaves its queue unserved. */
	QUEUE_R_EVICTED,		/* a lighter tenant took its place in a full class */
	QUEUE_R_QUEUE_TIMEOUT,		/* its deadline passed */
};

struct queue_verdict {
	enum queue_action action;
	enum queue_reason reason;	/* REJECT */
	enum conf_class klass;		/* always */
	size_t pool;			/* START: take a slot of this pool */
	struct queue_item *victim;	/* WAIT: evicted (off its queue, refunded); answer it */
	uint64_t retry_ms;		/* REJECT: when trying again is likely to work; 0: no hint */
	/* What the refusal message reports. */
	double tokens;			/* the estimate charged (or that did not fit) */
	uint64_t budget_ms;		/* DEADLINE_UNMEETABLE, QUEUE_TIMEOUT: the deadline it had;
					 * TTFT_UNMEETABLE: the class's objective */
	uint64_t predicted_ms;		/* DEADLINE_UNMEETABLE: the predicted wait; TTFT_UNMEETABLE:
					 * the predicted wait + recent TTFT */
	uint64_t ttft_ms;		/* TTFT_UNMEETABLE: the recent TTFT in predicted_ms */
	unsigned queued;		/* QUEUE_FULL: requests of the class queued */
	const char *model;		/* MODEL_NOT_FOUND: the model asked for (f->model) */
	size_t model_len;
};

/*
 * Decide for one request of tenant t, described by f, at now_ms.  `it` is
 * the request's queue item (owned by the caller, not queued): on START and
 * WAIT it carries the request's tenant, class, charge, and the pools that
 * serve its model; on WAIT it is queued, and it->model is f->model: the
 * caller keeps those bytes (or a copy it points it->model at) while it is
 * queued.  On REJECT nothing is charged and nothing changed but the
 * buckets' refill.  Whatever the verdict, it->tenant holds a reference to
 * t (one that it held to another tenant is dropped), which the caller
 * drops with queue_tenant_put(&it->tenant) when the request is over.
 */
void queue_admit(struct queue *q, struct queue_tenant *t, const struct queue_facts *f, uint64_t now_ms,
		 struct queue_item *it, struct queue_verdict *v);

/* Give back what the item's request was charged (it was never served); a
 * second call gives back nothing. */
void queue_refund(struct queue_item *it, uint64_t now_ms);

/* The response reported `used` tokens: the estimate charged becomes that. */
void queue_settle(struct queue_item *it, double used, uint64_t now_ms);

/* The exchange ended without a usable `usage` (an error answer, a cut
 * stream, a client gone, a backend that does not report): the output part
 * of the estimate is given back and the prompt stays charged, so that a
 * request that was refused upstream costs its prompt, not its max_tokens. */
void queue_settle_unreported(struct queue_item *it, uint64_t now_ms);

/* Take a queued item off its queue and refund it (its client left, or the
 * gateway shuts down).  A no-op for an item that is not queued. */
void queue_withdraw(struct queue *q, struct queue_item *it, uint64_t now_ms);

/* The next item whose deadline has passed, off its queue and refunded, or
 * NULL; the caller answers it queue_timeout. */
struct queue_item *queue_expire(struct queue *q, uint64_t now_ms);

#endif
