/*
 * queue.h - class queues and the dispatch order (docs/DESIGN.md, "The dispatch order").
 *
 * Requests that cannot start at once wait here.  Per class, each tenant has
 * a flow: a FIFO of its requests, kept in the tenant object (tenant.h), so
 * that a reload that adds, removes or reorders tenants moves no queued
 * request: a kept tenant keeps its flows, and a removed one keeps them
 * until its last request is served.  Flows of one class are served in
 * weighted fair order by estimated token cost (start-time fair queueing:
 * each flow has a virtual time that advances by cost / weight when one of
 * its requests is dispatched, the flow with the smallest virtual time goes
 * next, and a flow that wakes up starts at the class's current virtual time,
 * so idleness banks no credit).  A tenant flooding a class therefore gets
 * its share of it, and no more, while others have work waiting.
 *
 * When a slot frees in pool P, queue_pop() picks the class: among the
 * classes that list P and have work waiting, a class with min_share that
 * got less than that share of P's recent dispatches goes first; otherwise
 * the most urgent.  A class never holds more than max_slot_share of P's
 * slots at once (queue_share_allows()); the rest is headroom for spill-over.
 * Inside the class, with tenant_slot_share: fair, a tenant never takes
 * more than its weighted share of those slots while another tenant of the
 * class is active (queue/share.h): fair order passes over a tenant at its
 * share, and a class whose every waiting tenant is at its share is passed
 * over like a class at its max_slot_share.
 *
 * Routing by model: an item carries the mask of the pools that serve its
 * request's model (conf_model_pools(); bit p: pool p), and queue_pop(q, p)
 * hands out only items whose mask has p.  When no pool lists models (the
 * config routes nothing by model) every mask is full and nothing else
 * changes.  Otherwise each pool also counts, per class, the queued items
 * that may use it (queue_pool.waiting), so that picking a class stays
 * O(classes); inside the class, fair order is kept among the flows that
 * hold an item for p, and a flow's first such item goes (a flow's items
 * for other pools are passed over, so the worst case is a walk of the
 * class's queued items).
 *
 * Every queued item is also in one min-heap by deadline, so expiry and
 * removal (a client that left) cost O(log n).
 *
 * queue/ knows nothing of sockets or pools' backends: the gateway tells it
 * how many slots each pool has (queue_set_pool_slots), which slots are
 * taken and given back (queue_on_dispatch/queue_on_release, called only by
 * the gateway's slot ledger), and owns the items' memory (a queue_item is
 * embedded in the client connection).  Time is passed in, in milliseconds,
 * so tests drive it by hand.  Nothing here calls back: every function
 * returns what the caller must do (answer an evicted item, start a popped
 * one), and the caller does it.
 *
 * Admission (whether a request starts, waits or is refused, and what it is
 * charged) is the policy in queue/admit.h, built on these primitives.
 */
#ifndef SLUICE_QUEUE_QUEUE_H
#define SLUICE_QUEUE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

struct queue_tenant;

/* What a request took from its tenant's buckets (queue/admit.h): given back
 * when it is never served, corrected when its response reports usage. */
struct queue_charge {
	double requests;
	double tokens;
	double output;			/* the part of tokens that is output asked for */
};

struct queue_item {
	struct queue_item *next, *prev;	/* in the flow */
	struct queue_tenant *tenant;
	uint32_t heap_idx;		/* position in the deadline heap */
	uint8_t klass;
	bool queued;
	uint64_t enqueued_ms;
	uint64_t deadline_ms;
	double cost;			/* estimated tokens */
	uint64_t bytes;			/* body bytes held while queued */
	struct queue_charge charge;	/* held from admission to the end of the request */
	uint64_t pools;			/* bit p: pool p serves its model (UINT64_MAX: any) */
	/* Its body's `model` (NULL: none), owned by the caller and valid while
	 * queued, so that a reload can work out `pools` again.  A model_len
	 * above CONF_MODEL_MAX stands for a name too long to match any list. */
	const char *model;
	size_t model_len;
	bool lost;			/* queue_reconfigure_pools(): its pools were all removed */
};

struct queue_flow {
	struct queue_item *head, *tail;
	unsigned count;
	double vtime;
	struct queue_flow *next_active, *prev_active;
};

struct queue_class {
	const struct conf_class_cfg *cfg;
	struct queue_flow *active;	/* flows with work waiting (each in its tenant) */
	unsigned count;
	uint64_t bytes;
	double vclock;
	uint64_t pools;			/* the pools cfg lists, as a mask */
	struct queue_tenant *share_members;	/* tenants that may be active in it (share.h) */
};

struct queue_pool {
	unsigned slots;				/* as told by queue_set_pool_slots() */
	bool serves[CONF_CLASS_COUNT];		/* the class lists this pool */
	unsigned by_class[CONF_CLASS_COUNT];	/* slots held now, per class */
	double dispatched[CONF_CLASS_COUNT];	/* recent dispatches (decaying) */
	double dispatched_total;
	double held_ms;				/* EWMA of how long a request holds a slot; 0 = unknown */
	double ttft_ms;				/* EWMA of slot taken -> first token; 0 = unknown */
	unsigned waiting[CONF_CLASS_COUNT];	/* queued items that may use it (only when routing) */
};

struct queue {
	const struct conf *conf;
	struct queue_class classes[CONF_CLASS_COUNT];
	struct queue_pool *pools;
	size_t npools;
	struct queue_item **heap;	/* by deadline */
	size_t heap_len, heap_cap;
	uint64_t bytes;			/* all classes */
	unsigned count;
	bool routing;			/* some pool lists models: masks matter */
	uint64_t clock_ms;		/* the latest time it was told (queue_pop() reads it) */
};

/* Prepare queues for `c` (which must outlive them).  Returns 0 or -ENOMEM. */
int queue_init(struct queue *q, const struct conf *c);
void queue_finish(struct queue *q);

/*
 * Point the queues at a new snapshot with the same classes defined and the
 * same pools (the caller checked): limits, deadlines, shares, the pools a
 * class lists and the models a pool lists may change.  Queued items keep
 * their deadlines; their pool masks are worked out again from their model.
 * Returns the items that no pool of their class serves any more (their
 * model is gone), taken off their queues and linked through `next`
 * (NULL: none): the caller refunds them (queue_refund) and answers them
 * model_not_found.
 */
struct queue_item *queue_reconfigure(struct queue *q, const struct conf *c);

/* The per-pool state of a reload that adds, removes or reorders pools,
 * allocated before anything changes (queue_pools_prepare(): 0 or -ENOMEM)
 * and taken by queue_reconfigure_pools(), or freed by queue_pools_discard(). */
struct queue_pools_next {
	struct queue_pool *v;		/* [n] */
	size_t n;
};
int queue_pools_prepare(size_t npools, struct queue_pools_next *next);
void queue_pools_discard(struct queue_pools_next *next);

/* The queued items a reload takes off, each list linked through `next`. */
struct queue_gone {
	struct queue_item *model_not_found;	/* their class's pools no longer serve their model */
	struct queue_item *no_backend;		/* every pool they could use was removed */
};

/*
 * As queue_reconfigure(), for a snapshot whose pools may differ: from[i]
 * is the running index of the new snapshot's pool i, or CONF_POOL_NEW
 * (conf_pool_map()), and `next` holds next->n == c->npools prepared
 * entries (taken: it is left empty).  A kept pool keeps its counts (slots
 * held per class, recent dispatches, hold times) under its new index; a
 * new one starts empty (its slots come with queue_set_pool_slots()); a
 * removed one is forgotten, and so are its slots still held (the gateway
 * does not report their release).  Queued items keep their place and
 * deadline; their masks are worked out again in the new indexes.  Taken
 * off and returned in *gone: the items none of whose pools (those of their
 * class that served their model) survive the reload, and, as with
 * queue_reconfigure(), those whose model no pool of their class serves.
 * The caller refunds them (queue_refund) and answers them.  With from and
 * next NULL, the pools are the same, in the same order.
 */
void queue_reconfigure_pools(struct queue *q, const struct conf *c, const size_t *from,
			     struct queue_pools_next *next, struct queue_gone *gone);

/* A mask of running pool indexes in the indexes of a reload's snapshot
 * (from[0..n): conf_pool_map()): kept pools move, removed ones drop out,
 * new ones are not in it.  UINT64_MAX (any pool) stays UINT64_MAX.  For
 * the requests in flight, which a failed connect may start again. */
uint64_t queue_pools_remap(uint64_t mask, const size_t *from, size_t n);

/* The pools of class k (in its preference order) as a mask. */
uint64_t queue_class_pools(const struct queue *q, enum conf_class k);

/* Items of class k queued now that a slot of pool p could take. */
unsigned queue_waiting_for(const struct queue *q, size_t p, enum conf_class k);

/* Pool p has `slots` slots in all (backends/ counts them; the gateway tells
 * the queues whenever the number changes).  Shares and predicted waits are
 * fractions of this number. */
void queue_set_pool_slots(struct queue *q, size_t p, unsigned slots);

/* May class k take one more slot of pool p (max_slot_share)? */
bool queue_share_allows(const struct queue *q, size_t p, enum conf_class k);

/* The slots of pool p that class k may hold at once (max_slot_share of
 * them, at least one). */
unsigned queue_class_slot_cap(const struct queue *q, size_t p, enum conf_class k);

/* Is an item of class k queued that a free slot of pool p could take now,
 * its tenant's slot share (queue/share.h) allowing? */
bool queue_waiting_could_take(const struct queue *q, size_t p, enum conf_class k, uint64_t now_ms);

/* A request of class k took / gave back a slot of pool p; held_ms is how
 * long it held it (feeds the predicted waits). */
void queue_on_dispatch(struct queue *q, size_t p, enum conf_class k);
void queue_on_release(struct queue *q, size_t p, enum conf_class k, uint64_t held_ms);

/* A request that took a slot of pool p saw its first token ttft_ms later
 * (the whole response, when not streamed): the backend's recent time to
 * first token, which ttft_objective_ms predictions add to the wait. */
void queue_on_first_token(struct queue *q, size_t p, uint64_t ttft_ms);

/* The least recent time to first token among the pools of class k in mask
 * (ms; 0 when none is known yet): the best a request could hope for once
 * it has a slot. */
double queue_recent_ttft(const struct queue *q, enum conf_class k, uint64_t mask);

/* A retry hint of `ms`, within what a client is told (1 ms .. 59 s). */
uint64_t queue_retry_clamp(double ms);

enum queue_check { QUEUE_CHECK_OK = 0, QUEUE_CHECK_FULL, QUEUE_CHECK_UNMEETABLE };

/*
 * May an item of tenant t and class k with `bytes` of body and
 * `deadline_ms` (absolute) wait?  QUEUE_CHECK_FULL when the class or global
 * bounds are reached; QUEUE_CHECK_UNMEETABLE when the predicted wait (the work
 * fair order puts ahead of it, over the recent completion rate of its
 * pools) already passes the deadline.  For both, *retry_ms says when trying
 * again is likely to succeed.  QUEUE_CHECK_OK with *victim set: the class is full,
 * but t holds fewer queued items than the fattest flow, whose newest item
 * (*victim) must be removed and answered queue_full to make room.
 */
enum queue_check queue_check(const struct queue *q, enum conf_class k, const struct queue_tenant *t,
			       uint64_t bytes, uint64_t now_ms, uint64_t deadline_ms, uint64_t *retry_ms,
			       struct queue_item **victim);

/* Predicted wait for a new item of tenant t in class k, in ms (0 when unknown). */
uint64_t queue_predicted_wait(const struct queue *q, enum conf_class k, const struct queue_tenant *t);

/* When a request of t that left class k's queue unserved (timed out,
 * evicted) should try again: its predicted wait, 1 s when unknown, always
 * under the 60 s that SDKs honour. */
uint64_t queue_retry_hint(const struct queue *q, enum conf_class k, const struct queue_tenant *t);

/* Make sure the next queue_push() cannot fail.  Returns 0 or -ENOMEM. */
int queue_reserve(struct queue *q);

/* Enqueue: the caller filled tenant, klass, deadline_ms, cost, bytes and
 * pools (UINT64_MAX: any pool of its class).
 * Returns 0, or -ENOMEM (nothing changed; never after queue_reserve()). */
int queue_push(struct queue *q, struct queue_item *it, uint64_t now_ms);

/* Put a popped item back at the head of its flow, with its deadline and
 * enqueue time (its start failed before the backend saw any of it).  The
 * bounds are not checked: the item held its place already.  Returns 0 or
 * -ENOMEM. */
int queue_requeue(struct queue *q, struct queue_item *it);

/* Remove a queued item (its client left, or it expired); a no-op for an
 * item that is not queued. */
void queue_remove(struct queue *q, struct queue_item *it);

/*
 * The next item for a free slot of pool p, taken off its queue, or NULL when
 * no class that may use p has work waiting (within its max_slot_share) that
 * p serves the model of, from a tenant that its slot share lets take it
 * (queue/share.h: a tenant at its share is passed over, and the slot goes
 * to the next in fair order).  queue_pop() reads the clock as the latest
 * time the queues were told (clock_ms); queue_pop_at() is told it.
 */
struct queue_item *queue_pop_at(struct queue *q, size_t p, uint64_t now_ms);
struct queue_item *queue_pop(struct queue *q, size_t p);

/* Earliest deadline of a queued item, or UINT64_MAX. */
uint64_t queue_next_deadline(const struct queue *q);

/* The queued item with the earliest deadline if it is <= now (not removed), or NULL. */
struct queue_item *queue_expired(const struct queue *q, uint64_t now_ms);

#endif
