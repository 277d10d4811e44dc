/*
 * defer.h - work that runs later, from the loop, never up another stack.
 *
 * The rule of the request path: a callback that finishes one request may
 * not start or resume another one synchronously.  Releasing a slot,
 * answering a request or evicting one would otherwise run admission, a
 * backend exchange or a pipelined request's parse inside the caller's
 * stack, with the caller's state half updated (that is how a full class
 * once held max_queue + 1 requests).  Such work is scheduled here instead
 * and runs from the loop, once per turn, with nothing else on the stack.
 *
 * A gw_defer is embedded in the object whose work it is (the server's queue
 * kick, a connection's resume).  Scheduling is idempotent (work scheduled
 * twice runs once) and so is cancelling; an object must cancel its work
 * before it is freed.  Work scheduled while the list runs waits for the
 * next turn, so a step that schedules itself cannot starve the loop.
 *
 * The list is drained by a uv_check handle, right after the loop turn's I/O
 * callbacks, so work scheduled by a read or a write runs in the same turn,
 * once, after every callback of that poll.  While work is scheduled a
 * uv_idle handle is active too; it does nothing but keep the next poll from
 * blocking, so work scheduled from a timer, or by deferred work itself,
 * runs at once in the next turn.  Both are stopped while the list is empty.
 */
#ifndef SLUICE_GATEWAY_DEFER_H
#define SLUICE_GATEWAY_DEFER_H

#include <stdbool.h>
#include <uv.h>

struct gw_defer {
	struct gw_defer *next, *prev;	/* in a list while scheduled */
	void (*fn)(struct gw_defer *d);
};

struct gw_defer_list {
	uv_check_t check;		/* drains the list after each poll */
	uv_idle_t idle;			/* keeps the poll from blocking meanwhile */
	struct gw_defer head;		/* sentinel of a circular list */
};

/* Prepare `d` to run `fn` (with d itself; find the owner with
 * container_of-style arithmetic).  Not scheduled. */
void gw_defer_init(struct gw_defer *d, void (*fn)(struct gw_defer *d));

/* Schedule `d` to run from the loop (no-op when already scheduled). */
void gw_defer_schedule(struct gw_defer_list *l, struct gw_defer *d);

/* Unschedule `d` (no-op when it is not scheduled). */
void gw_defer_cancel(struct gw_defer *d);

static inline bool gw_defer_scheduled(const struct gw_defer *d) { return d->next != NULL; }

/* Set up the list on `loop`.  Returns 0 or a negative uv error. */
int gw_defer_list_init(struct gw_defer_list *l, uv_loop_t *loop);

/* Close the list's handles (work still scheduled is dropped; its owners are
 * gone by then).  Handles close asynchronously, like any uv handle. */
void gw_defer_list_close(struct gw_defer_list *l);

#endif
