/*
 * conn.h - a client connection.
 *
 * States (one request at a time; pipelined requests wait their turn):
 *
 *   IDLE      keep-alive, no request started.  Timer: idle_ms (header_ms
 *             for a new connection).
 *   HEAD      some bytes of a request, head not complete.  Timer: header_ms
 *             from the first byte; 408 when it fires.
 *   BODY      head complete, body arriving.  Timer: body_ms between reads.
 *   QUEUED    request admitted, waiting in its class queue for a slot.
 *             Its deadline is kept by the queue (one server timer for the
 *             earliest deadline); 429 queue_timeout.  Timer: none.
 *   UPSTREAM  an exchange with a backend is under way (exchange.c); its
 *             response streams to the client.  Timer: connect_ms, then
 *             upstream_ms of backend silence; while the client is not
 *             reading (backpressure), idle_ms before it is closed.
 *   FLUSH     the last response is queued; the connection closes once it is
 *             written.  Timer: idle_ms, for a client that stops reading.
 *             When the request was not read to its end (a 413, a 408), the
 *             connection lingers: what the client still sends is read and
 *             discarded (bounded in time and bytes) after the write side is
 *             shut down, so that the client reads the answer instead of
 *             getting a reset.
 *   CLOSING   uv_close() was called; nothing more happens.
 *
 * Reads go on in QUEUED and UPSTREAM so that a client that disconnects is
 * noticed at once: it leaves its queue, or its upstream connection is closed
 * (which aborts generation on the inference server).  Bytes of a next,
 * pipelined request are kept in `pending` (bounded; reading pauses beyond).
 *
 * Finishing a request never parses the next one on the caller's stack: the
 * caller may be another request's admission (an eviction), a slot's
 * release, or the queue kick.  The connection schedules its own resume
 * (defer.h), which parses what is pending from the loop.  The one exception
 * is the parse loop itself: a request answered while its own connection's
 * read callback is parsing (a rejection, an admin answer) lets that loop go
 * on to the next pipelined request, by iteration.
 *
 * Every read lands in the server's one read buffer and is parsed before the
 * callback returns; what must outlive the callback is copied.  An idle
 * connection therefore owns no buffer at all.
 *
 * The struct is freed when both of its handles (tcp, timer) are closed.
 */
#ifndef SLUICE_GATEWAY_CONN_H
#define SLUICE_GATEWAY_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <uv.h>

#include "gateway/account.h"
#include "gateway/buf.h"
#include "gateway/defer.h"
#include "gateway/errors.h"
#include "gateway/http.h"
#include "gateway/ids.h"
#include "queue/queue.h"

#define GW_CONN_MAGIC 0x434f4e4eu	/* "CONN" */

/* Client write queue bounds: above HIGH, nothing more is produced for the
 * client (the backend is not read, pipelined requests are not parsed) until
 * the queue is back under LOW. */
#define GW_WRITE_HIGH (1024 * 1024)
#define GW_WRITE_LOW (256 * 1024)

struct gw_server;
struct gw_exchange;
struct gw_openai_body;
struct gw_openai_scan;

enum gw_conn_state {
	GW_CONN_IDLE = 0,
	GW_CONN_HEAD,
	GW_CONN_BODY,
	GW_CONN_QUEUED,
	GW_CONN_UPSTREAM,
	GW_CONN_FLUSH,
	GW_CONN_CLOSING,
};

struct gw_conn {
	uint32_t magic;
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct gw_server *srv;
	struct gw_conn *next, *prev;		/* server's list of connections */
	struct queue_item qi;			/* tenant, class, charge; queued while QUEUED */
	struct gw_exchange *x;			/* while UPSTREAM */
	struct gw_defer resume;			/* parse pending bytes from the loop */
	struct gw_openai_scan *scan;		/* the body's inspection, while it arrives */
	char *model;				/* the body's model, kept while queued (qi.model) */
	struct gw_http http;			/* request parser and current request */
	struct gw_buf pending;			/* read but not parsed yet (pipelining) */
	enum gw_conn_state state;
	bool classified;			/* qi.tenant and qi.klass are set */
	uint8_t handles;			/* open uv handles; freed at 0 */
	bool admin;				/* on the admin listener */
	bool reading;
	bool driving;				/* conn_parse() is on the stack */
	bool close_after;			/* close once queued writes are done */
	bool doomed;				/* a write failed; closes on the next tick */
	bool write_blocked;			/* client write queue over GW_WRITE_HIGH */
	bool lingering;				/* FLUSH with unread request bytes */
	bool reset_on_close;			/* close with RST: the response was cut short */
	uint32_t linger_bytes;
	uint32_t outq_mark;			/* unsent bytes in the kernel when last checked */
	uint32_t writes;			/* uv_write requests in flight */
	struct gw_reqrec rec;			/* what the current request costs (account.h) */
	char request_id[GW_REQUEST_ID_SIZE];	/* NUL-terminated */
	struct sockaddr_storage peer;
	char peer_text[48];			/* the peer's address as text */
};

/* Accept a connection from `listener`.  Failures are logged and counted. */
void gw__conn_accept(struct gw_server *srv, uv_stream_t *listener, bool admin);

/* The connection behind a uv handle (tcp or timer), checked. */
struct gw_conn *gw__conn_from(void *handle_data);

/*
 * Write `out` to the client; the connection takes the buffer's storage and
 * leaves `out` empty.  Writes are sent in the order of the calls.  Never
 * closes the connection synchronously: a failed write marks it doomed and
 * it closes on the next loop iteration.
 */
void gw__conn_write(struct gw_conn *c, struct gw_buf *out);

/* Bytes queued in the kernel-side write queue of the client (backpressure). */
size_t gw__conn_write_queue(const struct gw_conn *c);

/*
 * Has the client read anything since the last call?  The kernel's count of
 * unsent bytes (SIOCOUTQ) is the only honest signal: libuv hears of free
 * send-buffer space only in large steps, so a slow but steady reader can go
 * seconds without a write completing.  The first call only takes a mark.
 */
bool gw__conn_client_progressed(struct gw_conn *c);

/*
 * The response to the current request has been fully handed to
 * gw__conn_write().  With keep_alive (and a client that allows it) the
 * connection goes back to IDLE, and a pipelined request, if any, is parsed
 * from the loop (never before this returns); otherwise it closes once its
 * writes are done.
 */
void gw__conn_finish_request(struct gw_conn *c, bool keep_alive);

/*
 * Answer the current request with the JSON error of `r`, counted and
 * logged; `detail` is the human message.  A retry_ms above 0 is sent as
 * retry-after / retry-after-ms and in the body; once the tenant is known,
 * its rate-limit headers are sent too.  Ends the request like
 * gw__conn_finish_request() (keep-alive unless the request could not be read
 * to its end).
 */
void gw__conn_reject(struct gw_conn *c, enum gw_reason r, const char *detail, uint64_t retry_ms);

/*
 * Answer the current request with `status` and `body` (taken, left empty)
 * of content type `type`, as sluice's own answer (no-store); ends the
 * request like gw__conn_finish_request() with keep-alive.
 */
void gw__conn_respond(struct gw_conn *c, int status, const char *type, struct gw_buf *body);

/* The fields admission reads from the current request's body (openai.h),
 * inspected as it arrived; the inspection's memory is freed. */
void gw__conn_body_fields(struct gw_conn *c, struct gw_openai_body *out);

/* Arm / stop the connection's one timer for the current phase (both leave
 * a doomed connection's closing timer alone). */
void gw__conn_arm(struct gw_conn *c, uint64_t ms);
void gw__conn_disarm(struct gw_conn *c);

/* Close now (idempotent).  Queued work is withdrawn, an exchange aborted. */
void gw__conn_close(struct gw_conn *c);

/* Peer address as text ("127.0.0.1"), for logs and x-forwarded-for. */
const char *gw__conn_peer(const struct gw_conn *c);

#endif
