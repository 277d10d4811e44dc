/*
 * share.h - tenant slot shares inside a class (tenant_slot_share: fair).
 *
 * Fair queueing (queue.h) decides who goes next; it cannot stop a flooding
 * tenant from holding every slot of a pool that its class uses, so that
 * each request of a lighter tenant of the class waits for one of the
 * flood's slots to end, and runs in a batch the flood keeps busy.  With
 * `tenant_slot_share: fair` on a class, a tenant holds at most its
 * weighted share of the class's usable slots of a pool while another
 * tenant of the class is active, and the rest stays free for the others.
 *
 * Terms, for class k and pool p:
 *   usable    the slots of p that k may hold: max_slot_share of p's slots
 *             (queue_class_slot_cap());
 *   active    a tenant with requests of k queued or in flight, or whose last
 *             one started or ended less than QUEUE_SHARE_IDLE_MS ago: a
 *             tenant sending one request at a time is rarely queued, and its
 *             share must still be free when its next request comes;
 *   quota     usable x weight / (sum of the active tenants' weights);
 *   room      what an active tenant may still take of its quota:
 *             ceil(quota) - held, when positive.
 *
 * A tenant t may take one more slot of p for class k when
 *   held < quota (its own share), or
 *   free > the room of every other active tenant (a slot nobody active is
 *   owed: it borrows, so the class stays work-conserving).
 * `free` is usable less what the class holds.  So a tenant alone in its
 * class may take every usable slot; and a free slot of the class stays
 * idle while a request of k waits only when it is another active tenant's
 * room, which is the point: that tenant's next request starts at once.
 * Rounding up (ceil) makes the quotas cover every usable slot, so tenants
 * that all wait at their quota never leave a slot idle between them.
 *
 * The slots a class may use of a pool are counted by queue.c (by_class);
 * the share counts them per tenant: each tenant keeps, per class, its held
 * slots of each pool (struct queue_share_hold, in the tenant object, so a
 * reload that keeps a tenant keeps its holdings, and a retired tenant's
 * in-flight requests give back to their own object).  The gateway's slot
 * ledger takes and gives them exactly once per slot, beside
 * queue_on_dispatch()/queue_on_release().  The tenants a class's decisions
 * must consider are on the class's member list: a tenant joins it when it
 * queues or takes a slot in the class, and leaves it once inactive (pruned
 * when a slot is taken or given) or freed.
 *
 * Everything is a function of the counts and the clock passed in; nothing
 * calls back.  With `tenant_slot_share: off` every check allows, and the
 * holdings are still counted (for /status, the metrics, and a reload that
 * turns it on).
 */
#ifndef SLUICE_QUEUE_SHARE_H
#define SLUICE_QUEUE_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

struct queue;
struct queue_tenant;

/* A tenant that ended its last request of a class this long ago still has
 * its share kept free: a tenant sending one request a second or more never
 * finds its share taken. */
#define QUEUE_SHARE_IDLE_MS 1000

/* One tenant's holdings in one class (in struct queue_tenant). */
struct queue_share_hold {
	struct queue_tenant *next, **pprev;	/* on the class's member list; pprev NULL: off it */
	uint64_t last_ms;			/* when it last took or gave a slot, or queued */
	unsigned total;				/* slots held, all pools */
	unsigned held[CONF_POOLS_MAX];		/* slots held, per pool index */
};

/* May tenant t take one more slot of pool p for class k at now_ms? (Always
 * true with tenant_slot_share: off.)  Not the class's own bound: ask
 * queue_share_allows() too. */
bool queue_share_may_take(const struct queue *q, const struct queue_tenant *t, size_t p, enum conf_class k,
			  uint64_t now_ms);

/* Tenant t took / gave back a slot of pool p for class k (the gateway's
 * slot ledger, beside queue_on_dispatch()/queue_on_release()). */
void queue_share_take(struct queue *q, struct queue_tenant *t, size_t p, enum conf_class k, uint64_t now_ms);
void queue_share_give(struct queue *q, struct queue_tenant *t, size_t p, enum conf_class k, uint64_t now_ms);

/* Slots of pool p tenant t holds for class k, and for all classes and pools. */
unsigned queue_share_held(const struct queue_tenant *t, enum conf_class k, size_t p);
unsigned queue_share_held_total(const struct queue_tenant *t, enum conf_class k);

/* The next time a tenant's share stops being kept free because it went
 * idle (a later decision may then give its slots to a waiting tenant), or
 * UINT64_MAX.  The gateway wakes its queue kick then. */
uint64_t queue_share_next_change(const struct queue *q, uint64_t now_ms);

/* Forget t's membership everywhere (it is being freed). */
void queue_share_leave(struct queue_tenant *t);

/* --- for queue.c ---------------------------------------------------------- */

/* t queued an item of class k: it is active. */
void queue__share_join(struct queue *q, struct queue_tenant *t, enum conf_class k, uint64_t now_ms);

/* The part of a decision that does not depend on the tenant, computed once
 * for many tenants (queue_pop() walks every waiting flow). */
struct queue_share_view {
	const struct queue *q;
	size_t p;
	enum conf_class k;
	uint64_t now_ms;
	bool fair;
	unsigned usable, free;
	double weights;			/* of the active tenants */
	unsigned room;			/* of all active tenants */
};
void queue__share_view(const struct queue *q, size_t p, enum conf_class k, uint64_t now_ms,
		       struct queue_share_view *v);
bool queue__share_view_allows(const struct queue_share_view *v, const struct queue_tenant *t);

/* Pools moved in a reload: to[old] is the new index or CONF_POOL_NEW
 * (removed: its holdings are forgotten, as queue.c forgets by_class). */
void queue__share_remap(struct queue *q, const size_t *to, size_t nold);

/* Take every member off the lists (the queues are finished). */
void queue__share_finish(struct queue *q);

#endif
