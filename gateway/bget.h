/*
 * bget.h - one GET to a backend on a connection of its own: sluice's own
 * questions to its backends (health checks, vLLM's /metrics), never a
 * client's request.
 *
 * gw__bget_start() opens a connection to the backend; once it is up the
 * request goes in one write (`connection: close`, and the pool's upstream
 * credential when it has one), and the answer is parsed with the gateway's
 * HTTP parser.  The callback then gets the outcome, exactly once: the
 * status and, when max_body is not 0, the body (at most max_body bytes;
 * with 0 the head is the answer and the body is never read).  When the
 * callback returns, the connection is closed and the get is gone.
 *
 * While its connection is open the backend cannot be freed (backends/
 * counts the connection), so the callback may use it.  A get keeps no
 * timer: its owner keeps the deadline and calls gw__bget_cancel(), after
 * which the callback never comes.  Memory is freed once libuv is done with
 * the connect (its callback always comes, with UV_ECANCELED once the
 * connection is closed).
 */
#ifndef SLUICE_GATEWAY_BGET_H
#define SLUICE_GATEWAY_BGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backend;
struct gw_server;
struct gw_bget;

enum gw_bget_result {
	GW_BGET_ANSWERED,	/* a response came: `status`, and `body` when asked for */
	GW_BGET_REFUSED,	/* the connection could not be made */
	GW_BGET_FAILED,		/* connected, but no valid response */
};

struct gw_bget_answer {
	enum gw_bget_result result;
	uint16_t status;
	const char *body;	/* valid during the callback */
	size_t body_len;
	const char *detail;	/* why, when not answered; "" otherwise */
};

typedef void gw_bget_cb(void *arg, const struct gw_bget_answer *a);

struct gw_bget_req {
	const char *path;
	const char *user_agent;
	const char *accept;
	size_t max_body;	/* 0: the head is enough */
	gw_bget_cb *cb;
	void *arg;
	/* Called when the connection is up, before the request is sent;
	 * NULL: nothing to do. */
	void (*connected)(void *arg);
};

/*
 * Start a get to `b`.  Returns 0 (the callback will come, never from inside
 * this call) or a negative libuv error (it will not: nothing was started).
 */
int gw__bget_start(struct gw_server *srv, struct backend *b, const struct gw_bget_req *req,
		   struct gw_bget **out);

/* Give up on a get whose callback has not come: it never will. */
void gw__bget_cancel(struct gw_bget *g);

#endif
