/*
 * exchange.h - one request's exchange with a backend.
 *
 * An exchange starts when dispatch has taken a slot of a backend for the
 * connection's request, and owns that slot until it ends.  It sends the request over a pooled keep-alive
 * connection (or a new one), and streams the response to the client as it
 * arrives: each upstream read becomes at most one client write, with chunked
 * framing when the backend's response has no length, so that server-sent
 * events reach the client one by one and nothing is buffered whole.
 *
 * It ends in exactly one of these ways, and each gives the slot back once:
 *   - the response completed: the upstream connection returns to the idle
 *     pool if it may be reused, and the client connection moves on;
 *   - the backend failed before the response head reached the client:
 *     502/504 JSON error (a pooled connection found dead before any byte of
 *     the response is retried once on a fresh connection);
 *   - the backend failed mid-response: the client connection is closed
 *     without completing the framing, so the client sees an error, never a
 *     hang or a silently short body;
 *   - the client went away, or stopped reading for idle_ms: the upstream
 *     connection is closed at once, which makes an inference server abort
 *     the generation and free its slot;
 *   - it was preempted (gateway/preempt.h): the upstream connection is
 *     closed at once, as for a client gone, and the client is told.
 */
#ifndef SLUICE_GATEWAY_EXCHANGE_H
#define SLUICE_GATEWAY_EXCHANGE_H

struct gw_conn;
struct gw_slot;

/* Start the exchange of c's current request on the slot *slot, which it
 * takes (*slot becomes NULL) and gives back whichever way it ends, even
 * when it fails before returning.  The slot's pool is reported to the
 * client in x-sluice-pool. */
void gw__exchange_start(struct gw_conn *c, struct gw_slot **slot);

/* The client is gone: close the upstream connection, give back the slot. */
void gw__exchange_abort(struct gw_conn *c);

/*
 * End the exchange so that its slot serves an interactive request: close
 * the upstream connection (the inference server aborts the generation),
 * give the slot back, and tell the client, which learns the reason
 * `preempted` whatever it had received:
 *   - no response head sent yet: 503 preempted, x-should-retry: true and a
 *     retry hint of retry_ms; the tenant gets the whole charge back;
 *   - a stream (SSE) under way: an `event: error` whose data is the OpenAI
 *     error object (code "preempted", retry_after_ms), then the end of the
 *     chunked body, so that the client sees a clean end (a client without
 *     chunked framing sees the connection close after it); the tenant is
 *     charged the prompt and the output produced, and gets the rest back;
 *   - another response whose head went out: the connection is cut after
 *     what was sent (reset), as for a backend that fails mid-response; the
 *     tenant gets the whole charge back.
 * The request is counted and logged with reason `preempted`.
 */
void gw__exchange_preempt(struct gw_conn *c, uint64_t retry_ms);

/* The connection's timer fired during the exchange (connect or silence). */
void gw__exchange_timeout(struct gw_conn *c);

/* The client's write queue shrank: resume reading the backend if paused. */
void gw__exchange_client_drained(struct gw_conn *c);

#endif
