/*
 * upstream.h - TCP connections to backends and their keep-alive pool.
 *
 * A backend_conn is one TCP connection to one backend.  It is in exactly one
 * of two states:
 *
 *   idle    on its backend's idle list, owned by backends/.  A small read
 *           watch is armed: if the backend closes the connection or sends
 *           anything unsolicited, the connection is closed and leaves the
 *           list at once, so a stale connection is rarely handed out.
 *   in use  taken off the list by its user (the gateway), who reads and
 *           writes on `tcp` with its own callbacks and keeps `owner` set.
 *
 * The uv handle's `data` always points at the backend_conn (checked by its
 * magic); users find their own state through `owner`.  Reading is started
 * once, when the connection is connected, and stays on through idle and
 * in-use periods (a stop and restart per request would cost epoll_ctl
 * calls): backends/ routes each read to the user's callbacks while in use,
 * and treats it as the end of the connection while idle.  The struct is
 * freed only in the handle's close callback.
 */
#ifndef SLUICE_BACKENDS_UPSTREAM_H
#define SLUICE_BACKENDS_UPSTREAM_H

#include <uv.h>

#include "backends/backend.h"

#define BACKEND_CONN_MAGIC 0x55505354u	/* "UPST" */

struct backend_conn {
	uint32_t magic;
	uv_tcp_t tcp;
	struct backend *backend;
	struct backend_conn *next, *prev;	/* idle list */
	uint64_t idle_since_ms;
	bool is_idle;			/* on the idle list */
	void *owner;			/* user state while in use; NULL while idle */
	uv_alloc_cb user_alloc;		/* the user's read callbacks while in use */
	uv_read_cb user_read;
	bool reading;			/* a read is started (off while the user pauses) */
};

/*
 * Hand a connection to its user: reads go to alloc/read until it is put
 * back or closed.  Starts reading if it was not (a new connection).
 * Returns 0 or a negative uv error.
 */
int backend_conn_use(struct backend_conn *bc, void *owner, uv_alloc_cb alloc, uv_read_cb read);

/* Stop / resume delivering reads while in use (backpressure). */
void backend_conn_pause(struct backend_conn *bc);
int backend_conn_resume(struct backend_conn *bc);

/* The connection behind a handle, checked. */
struct backend_conn *backend_conn_from(uv_handle_t *h);

/*
 * Take the most recently used idle connection of `b` (warm in the kernel
 * and least likely to have been closed by the server).  Returns NULL when
 * there is none.
 */
struct backend_conn *backend_conn_take(struct backend *b);

/*
 * A new, unconnected connection to `b` (the caller connects it).  Returns
 * 0 and sets *out, or a negative uv error.
 */
int backend_conn_create(uv_loop_t *loop, struct backend *b, struct backend_conn **out);

/*
 * Put a connection back on its backend's idle list after a complete
 * response that allows reuse.  Consumes the caller's pointer.
 */
void backend_conn_put(struct backend_conn **bcp, uint64_t now_ms);

/* Close a connection (idle or in use) and free it once libuv lets go of it.
 * Consumes the caller's pointer; closing NULL is a no-op. */
void backend_conn_close(struct backend_conn **bcp);

/* Close idle connections older than max_idle_ms (all of them with 0). */
void backend_set_close_idle(struct backend_set *s, uint64_t now_ms, uint64_t max_idle_ms);

#endif
