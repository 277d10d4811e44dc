/*
 * lease.h - shared limits: leases of a tenant's global buckets, and the
 * state of the link to the store that holds them.  Pure logic, clock
 * passed in; the Redis I/O is gateway/shared.c.
 *
 * With shared_limits on, a limited tenant's requests and tokens buckets
 * each have one global bucket in Redis (level and last refill time,
 * refilled at the tenant's rate, capped at its burst).  Every replica holds
 * a *lease*: a slice of that global level, moved into its local bucket,
 * which it spends as before (queue_admit takes from the local bucket, no
 * round trip).  A held local bucket does not refill (bucket.h); quota only
 * comes in through renewals.
 *
 * A renewal (queue_lease_plan, then queue_lease_grant with the answer)
 * sizes the lease from the replica's own recent demand: `target` is two
 * seconds of the units asked for here (granted or not), never less than a
 * small floor (a tenth of the per-replica share) nor more than the burst.
 * The difference between the local level and the target goes to the store:
 * a surplus is given back at once (an idle replica does not strand quota),
 * a shortfall is asked for.  Refunds and usage corrections are already in
 * the local level, so they reach the store with the next renewal too.
 * A renewal is due (queue_lease_due) once a second, or earlier when the
 * level falls below half the target (at most every 250 ms, and only while
 * the store still had quota the last time).
 *
 * When the store is unreachable the replica falls back to local limits
 * (queue_lease_local): the tenant's rate and burst divided by
 * expected_replicas, the level carried over but capped at that burst.  The
 * replicas together then admit at most the tenant's rate plus one burst.
 * Rejoining (queue_lease_hold) keeps the local level as the lease: nothing
 * is granted on top, and the script creates a missing global bucket empty,
 * so a store restarted empty hands out no fresh burst.  A bucket's first
 * use (a new tenant, a replica starting) starts at burst / replicas.
 */
#ifndef SLUICE_QUEUE_LEASE_H
#define SLUICE_QUEUE_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "queue/bucket.h"

#define QUEUE_LEASE_HORIZON_MS 2000	/* a lease covers this much of the recent demand */
#define QUEUE_LEASE_RENEW_MAX_MS 1000	/* renewed at least this often */
#define QUEUE_LEASE_RENEW_MIN_MS 250	/* and never more often than this */

struct queue_lease {
	double demand;		/* units asked for per second, smoothed */
	double asked_mark;	/* the bucket's `asked` at sample_ms */
	uint64_t sample_ms;
	uint64_t sent_ms;	/* the last renewal (0: none yet) */
	double target;		/* the lease the last renewal aimed at */
	bool dry;		/* the last grant fell short: wait for the next tick */
	bool seen;		/* the bucket has been limited under shared limits */
};

/* Fall back to local limits: b refills at rate / replicas up to
 * burst / replicas, its level (or debt) carried over, capped at that burst. */
void queue_lease_local(struct queue_lease *l, struct queue_bucket *b, double rate_per_s, double burst,
		       unsigned replicas, uint64_t now_ms);

/* Hold a lease: b stops refilling, its burst is the tenant's, its level
 * is kept (capped at burst / replicas the first time the bucket is seen). */
void queue_lease_hold(struct queue_lease *l, struct queue_bucket *b, double rate_per_s, double burst,
		      unsigned replicas, uint64_t now_ms);

/* Whether a renewal is due for this held bucket. */
bool queue_lease_due(const struct queue_lease *l, const struct queue_bucket *b, uint64_t now_ms);

/*
 * Start a renewal of a held bucket: update the demand and the target, and
 * return what to send to the store: > 0 gives that much back (already taken
 * off the local level), < 0 asks for that much.  The answer goes to
 * queue_lease_grant(); a renewal that fails just loses what it gave back.
 */
double queue_lease_plan(struct queue_lease *l, struct queue_bucket *b, unsigned replicas, uint64_t now_ms);

/* The store granted `grant` units for a renewal that sent `sent`. */
void queue_lease_grant(struct queue_lease *l, struct queue_bucket *b, double sent, double grant);

/* ---- the link to the store --------------------------------------------- */

enum queue_shared_state { QUEUE_SHARED_DOWN = 0, QUEUE_SHARED_UP };

#define QUEUE_SHARED_BACKOFF_MIN_MS 100
#define QUEUE_SHARED_BACKOFF_MAX_MS 2000

struct queue_shared {
	enum queue_shared_state state;
	uint64_t since_ms;	/* when the current state began */
	uint64_t fallback_ms;	/* time spent DOWN before since_ms */
	uint64_t backoff_ms;	/* the wait before the next connect */
	bool told_down;		/* this outage was announced (logged) */
};

/* DOWN (local limits) until the first queue_shared_set_up(). */
void queue_shared_init(struct queue_shared *s, uint64_t now_ms);

/* The store answers: UP.  Returns true when an announced outage ends (log it). */
bool queue_shared_set_up(struct queue_shared *s, uint64_t now_ms);

/* A connect, a command or a deadline failed: DOWN.  Returns true the first
 * time for one outage (log it), false for the retries that follow. */
bool queue_shared_set_down(struct queue_shared *s, uint64_t now_ms);

/* The wait before the next connect attempt; each call doubles the next one,
 * from QUEUE_SHARED_BACKOFF_MIN_MS up to QUEUE_SHARED_BACKOFF_MAX_MS. */
uint64_t queue_shared_backoff(struct queue_shared *s);

/* Total milliseconds spent on local limits (DOWN), up to now. */
uint64_t queue_shared_fallback_ms(const struct queue_shared *s, uint64_t now_ms);

#endif
