/*
 * ids.h - a request's identity: x-request-id and W3C trace context.
 *
 * Every request gets an x-request-id (the client's, when it sent a
 * printable one that fits, else ours: unique within the process by a
 * sequence number and across restarts by a random salt drawn at start) and
 * a W3C traceparent: the client's trace id and flags with a new parent id
 * naming our hop, as an intermediary that takes part in the trace does, or
 * a new trace when the client sent none or an invalid one.  Both are sent
 * upstream, returned to the client and logged.
 */
#ifndef SLUICE_GATEWAY_IDS_H
#define SLUICE_GATEWAY_IDS_H

#include <stdint.h>

#include "gateway/http.h"

#define GW_REQUEST_ID_SIZE 40		/* with the NUL */
#define GW_TRACEPARENT_SIZE 56		/* "00-" 32 "-" 16 "-" 2, and the NUL */

/* The generator's state: one per process, on the loop's thread. */
struct gw_ids {
	uint64_t salt;			/* random, drawn at start */
	uint64_t request_seq;
	uint64_t trace_seq;
};

/* Draw the salt. */
void gw_ids_init(struct gw_ids *g);

/* The request id for m, NUL-terminated, into out. */
void gw_ids_request_id(struct gw_ids *g, const struct gw_msg *m, char out[GW_REQUEST_ID_SIZE]);

/* The traceparent to send upstream for m, NUL-terminated, into out. */
void gw_ids_traceparent(struct gw_ids *g, const struct gw_msg *m, char out[GW_TRACEPARENT_SIZE]);

#endif
