/*
 * gpusim: a simulated GPU inference server (one "GPU slice") speaking the
 * OpenAI completions API over HTTP/1.1.  Integration tests, the demo and the
 * benchmarks put it behind sluice as a backend whose timing behaves like a
 * continuous-batching server (vLLM) on an H100, without needing a GPU.
 *
 * The model.  A request becomes a sequence.  Sequences wait in a FIFO until
 * the scheduler admits them into the batch of at most --slots active
 * sequences.  The scheduler is one uv_timer driving a small state machine:
 *
 *   IDLE --kick--> ITERATE --admitted--> PREFILL --> DECODE --> ITERATE ...
 *                     |                                ^          |
 *                     +------nothing to admit----------+          +--> IDLE
 *
 * ITERATE admits waiting sequences FIFO while a slot is free and the padded
 * prefill (admitted x longest prompt) stays within --prefill-max-tokens (the
 * first one is always admitted).  PREFILL lasts max(min, per-ktok x padded)
 * and nothing decodes meanwhile.  DECODE is one step of t_step(B, L) for every
 * active sequence; when it ends each active sequence gets one token, which a
 * streamed request receives at once as one SSE event in one HTTP chunk.  A
 * sequence that reaches max_tokens completes, answers its request and frees
 * its slot.  Durations come from the calibration in
 * shared/calibration/h100-llama-1b.md, scaled by --time-scale.  Time is a
 * virtual clock (due_ns): each phase ends exactly one duration after the
 * previous one, and the millisecond timer is armed for the nearest
 * millisecond to that instant, so events are within half a millisecond of
 * their virtual time and sub-millisecond steps keep the right average rate;
 * every phase already due when the timer fires runs in the same callback.
 * With nothing runnable the timer stays stopped until a request kicks it.
 * Streamed responses send their headers as soon as the request is accepted,
 * before it is admitted, as vLLM's server does.  --head-delay-ms N adds N
 * to every prefill, so that a stream's head goes out at least N before its
 * first token, and time to first byte and time to first token differ as
 * behind vLLM; a non-streamed response is simply N later.
 *
 * --zero skips all of that: a completion is answered in the same loop turn,
 * streamed ones with all their events in one write.
 *
 * Faults.  --fail-rate P answers every round(1/P)-th completion request with
 * a 500 at once.  --close-after-tokens N ends the response after the N-th
 * token (0: at admission) even if it was the last one: a stream stops before
 * its usage event and [DONE], a non-streamed response gets headers announcing
 * the full length and half the body; the bytes already produced are flushed,
 * then FIN.  --stall-after-tokens N stops the sequence after N tokens; it
 * keeps its slot (and counts in the batch) until its client goes away.
 * Requests that finish before reaching N are not affected.  --health-status
 * S makes GET /health answer S (0: never answer, so a checker times out).
 * Both kinds of fault can be changed at run time, with no restart and no
 * traffic, for tests that watch a proxy notice a failure and a recovery:
 * POST /admin/health?status=S and POST /admin/fail-rate?p=P.  /stats counts
 * injected 500s and closes as "failed", client disconnects as "cancelled"
 * and busy_slot_seconds in wall-clock seconds.
 *
 * vLLM's gauges.  GET /metrics answers in Prometheus' text format with the
 * three series a gateway reads from a real vLLM server, under vLLM's names,
 * types, HELP text and labels (model_name, engine):
 * vllm:num_requests_running (the batch), vllm:num_requests_waiting (the
 * FIFO) and vllm:kv_cache_usage_perc (tokens of the running sequences over
 * --kv-tokens).  POST /admin/slots?n=N changes the batch size at run time,
 * for tests of a gateway that adapts its concurrency to the server: growing
 * admits waiting sequences at once; shrinking preempts nothing, the batch
 * drains to N as sequences complete.
 *
 * Ownership.  struct gpusim is the only mutable global context; it owns the
 * loop, the listener, the timer, the signal handles and the list of
 * connections.  A connection owns its uv_tcp_t and is freed only in that
 * handle's close callback, so its memory stays valid for the whole of any
 * call stack that began while it was open: code that may have closed it
 * checks conn_dead() instead of holding other pointers.  A connection
 * answers one request at a time and owns at most one sequence (conn->seq);
 * the sequence points back (seq->conn) and lives only as long as its request.
 * The scheduler's waiting and active lists link sequences but do not own
 * them.  seq_release() is the one way a sequence ends: it unlinks it from
 * whichever list holds it, updates the counters, clears conn->seq and frees
 * it.  Closing a connection releases its sequence at once as cancelled, which
 * frees the slot immediately.  Handling one sequence's token may release that
 * sequence and nothing else (its connection is the only one touched), which
 * is what lets the decode loop walk the active list with a saved next pointer.
 *
 * HTTP.  llhttp parses requests; on_message_complete returns HPE_PAUSED so
 * a connection has at most one request in flight; bytes that arrive after it
 * (pipelined requests, or a disconnect probe) wait in conn->pending and are
 * parsed after the response is done.  Reading continues while a request is in
 * flight so a disconnect is noticed at once (EOF counts as one, a half-close
 * included); the pending buffer is bounded and reading stops while it is
 * full, when only a failed write reveals a disconnect.  Outgoing bytes are gathered in conn->out
 * and handed to one uv_write by conn_flush(); a client that lets more than
 * WRITE_BACKLOG_MAX bytes queue up is disconnected.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <llhttp.h>
#include <uv.h>

#define GPUSIM_MAGIC 0x67707573u /* "gpus" */
#define CONN_MAGIC 0x636f6e6eu   /* "conn" */
#define SEQ_MAGIC 0x73657175u    /* "sequ" */

#define BODY_MAX ((size_t)64 << 20)          /* request body; 413 beyond */
#define URL_MAX 2048                         /* request target; 414 beyond */
#define HEADERS_MAX ((size_t)64 << 10)       /* all header bytes; 431 beyond */
#define READAHEAD_MAX ((size_t)1 << 20)      /* bytes read ahead of the parser */
#define WRITE_BACKLOG_MAX ((size_t)4 << 20)  /* unsent bytes before we give up */
#define BODY_KEEP_MAX ((size_t)1 << 20)      /* body buffer kept between requests */
#define READ_BUF_SIZE ((size_t)64 << 10)
#define OUT_MIN 512
#define MAX_TOKENS_MAX 1000000
#define SCHED_MAX_LAG_NS ((uint64_t)50 * 1000 * 1000)
#define SCHED_EARLY_NS ((uint64_t)500 * 1000)
#define EVENT_MAX 512
#define CORK_MAX ((size_t)256 << 10)        /* --zero output gathered per write */

#define CHECK_OBJ(p, m)                                                                   \
	do {                                                                              \
		if ((p) == NULL || (p)->magic != (m)) {                                   \
			fprintf(stderr, "gpusim: %s:%d: bad object %s (magic mismatch)\n", \
				__FILE__, __LINE__, #p);                                  \
			abort();                                                          \
		}                                                                         \
	} while (0)

struct config {
	const char *listen;
	const char *name;
	unsigned slots;
	uint64_t kv_tokens;      /* KV cache capacity, for vllm:kv_cache_usage_perc */
	bool zero;
	double time_scale;
	double step_base_ms;
	double step_per_seq_ms;
	double step_per_kctx_ms;
	double step_per_seq_kctx_ms;
	double stream_overhead_ms;
	double head_delay_ms;
	double prefill_min_ms;
	double prefill_per_ktok_ms;
	unsigned prefill_max_tokens;
	double chars_per_token;
	unsigned default_max_tokens;
	double fail_rate;
	long health_status;      /* GET /health answers this; 0: never */
	long close_after_tokens; /* -1: off */
	long stall_after_tokens; /* -1: off */
};

/* An output buffer; also the uv_write request that carries it. */
struct wbuf {
	uv_write_t req;
	size_t len;
	size_t cap;
	char data[];
};

enum seq_where { SEQ_WAITING, SEQ_ACTIVE };

enum seq_end { SEQ_END_COMPLETED, SEQ_END_CANCELLED, SEQ_END_FAILED };

struct seq {
	uint32_t magic;
	enum seq_where where;
	struct seq *prev;
	struct seq *next;
	struct conn *conn;
	struct gpusim *gs;
	uint64_t id;
	int64_t created;
	uint64_t admitted_ns;
	unsigned prompt_tokens;
	unsigned max_tokens;
	unsigned generated;
	bool stream;
	bool chat;
	bool stalled;
};

struct seq_list {
	struct seq *head;
	struct seq *tail;
	unsigned n;
};

struct conn {
	uint32_t magic;
	uv_tcp_t tcp;
	uv_shutdown_t shutdown_req;
	struct gpusim *gs;
	struct conn *prev;
	struct conn *next;
	llhttp_t parser;
	struct seq *seq;
	struct wbuf *out;

	/* Bytes read while a request was in flight, not yet parsed. */
	char *pending;
	size_t pending_off;
	size_t pending_len;
	size_t pending_cap;

	/* The request being parsed, valid until its response is done. */
	char url[URL_MAX];
	size_t url_len;
	char *body;
	size_t body_len;
	size_t body_cap;
	size_t header_bytes;
	char hname[16];
	size_t hname_len;
	char hvalue[16];
	size_t hvalue_len;
	int req_error;
	uint8_t method;
	uint8_t http_minor;
	bool expect_continue;
	bool keep_alive;

	bool req_ready;    /* parsed, not yet dispatched */
	bool in_flight;    /* dispatched, response not finished */
	bool driving;      /* conn_drive() is on the stack */
	bool read_stopped; /* pending buffer full */
	bool shutting;     /* last bytes queued, FIN follows */
	bool closing;      /* uv_close called */
};

enum sched_phase { PHASE_IDLE, PHASE_ITERATE, PHASE_PREFILL, PHASE_DECODE };

struct gpusim {
	uint32_t magic;
	struct config cfg;
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_timer_t timer;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	llhttp_settings_t settings;
	char rbuf[READ_BUF_SIZE]; /* shared: read callbacks consume it at once */
	struct conn *conns;
	bool stopping;

	enum sched_phase phase;
	uint64_t due_ns; /* virtual instant the current phase ends */
	struct seq_list waiting;
	struct seq_list active;
	unsigned n_stalled;
	uint64_t fail_period; /* 0: no injected failures */
	int health_status;    /* what GET /health answers; 0: no answer */
	uint64_t next_id;

	uint64_t stat_requests;
	uint64_t stat_completed;
	uint64_t stat_cancelled;
	uint64_t stat_cancelled_waiting;
	uint64_t stat_failed;
	uint64_t stat_rejected;
	uint64_t stat_connections;
	uint64_t stat_open_connections;
	uint64_t stat_tokens;
	uint64_t stat_prefills;
	uint64_t stat_steps;
	uint64_t stat_busy_ns;
};

static void conn_close(struct conn *c);
static void conn_drive(struct conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void sched_kick(struct gpusim *gs);

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (q == NULL) {
		fprintf(stderr, "gpusim: out of memory (%zu bytes)\n", n);
		abort();
	}
	return q;
}

/* Makes room for n more bytes in *wbp (creating it) and returns where they go. */
static char *wbuf_reserve(struct wbuf **wbp, size_t n)
{
	struct wbuf *wb = *wbp;
	size_t len = wb != NULL ? wb->len : 0;
	if (wb == NULL || len + n > wb->cap) {
		size_t cap = wb != NULL ? wb->cap * 2 : OUT_MIN;
		while (cap < len + n)
			cap *= 2;
		wb = xrealloc(wb, sizeof(*wb) + cap);
		wb->len = len;
		wb->cap = cap;
		*wbp = wb;
	}
	return wb->data + wb->len;
}

static void wbuf_append(struct wbuf **wbp, const void *data, size_t len)
{
	memcpy(wbuf_reserve(wbp, len), data, len);
	(*wbp)->len += len;
}

static void wbuf_vprintf(struct wbuf **wbp, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	char *p = wbuf_reserve(wbp, 256);
	size_t room = (*wbp)->cap - (*wbp)->len;
	int n = vsnprintf(p, room, fmt, ap);
	if (n >= 0 && (size_t)n >= room) {
		p = wbuf_reserve(wbp, (size_t)n + 1);
		n = vsnprintf(p, (size_t)n + 1, fmt, ap2);
	}
	va_end(ap2);
	if (n > 0)
		(*wbp)->len += (size_t)n;
}

__attribute__((format(printf, 2, 3)))
static void wbuf_printf(struct wbuf **wbp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	wbuf_vprintf(wbp, fmt, ap);
	va_end(ap);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

/* Converts a simulated duration to scaled nanoseconds of real time. */
static uint64_t dur_ns(const struct gpusim *gs, double ms)
{
	double ns = ms * gs->cfg.time_scale * 1e6;
	return ns > 0 ? (uint64_t)(ns + 0.5) : 0;
}

/* Counts UTF-8 code points; malformed bytes count as one character each. */
static size_t utf8_chars(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xC0) != 0x80;
	return n;
}

/* ------------------------------------------------------------------------ */
/* Sequence lists                                                            */

static void seq_list_push(struct seq_list *l, struct seq *s)
{
	s->prev = l->tail;
	s->next = NULL;
	if (l->tail != NULL)
		l->tail->next = s;
	else
		l->head = s;
	l->tail = s;
	l->n++;
}

static void seq_list_remove(struct seq_list *l, struct seq *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		l->head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	else
		l->tail = s->prev;
	s->prev = s->next = NULL;
	l->n--;
}

/* ------------------------------------------------------------------------ */
/* Connection output                                                         */

static bool conn_dead(const struct conn *c)
{
	return c->closing || c->shutting;
}

static void conn_out(struct conn *c, const void *data, size_t len)
{
	if (!conn_dead(c))
		wbuf_append(&c->out, data, len);
}

__attribute__((format(printf, 2, 3)))
static void conn_outf(struct conn *c, const char *fmt, ...)
{
	if (conn_dead(c))
		return;
	va_list ap;
	va_start(ap, fmt);
	wbuf_vprintf(&c->out, fmt, ap);
	va_end(ap);
}

static void on_write(uv_write_t *req, int status)
{
	struct wbuf *wb = (struct wbuf *)req; /* req is the first member */
	struct conn *c = req->handle->data;
	CHECK_OBJ(c, CONN_MAGIC);
	free(wb);
	if (status < 0 && status != UV_ECANCELED)
		conn_close(c);
}

/*
 * Hands the gathered output to uv_write.  A synchronous failure closes the
 * connection, which releases its sequence: callers re-check conn_dead().
 */
static int conn_flush(struct conn *c)
{
	struct wbuf *wb = c->out;
	if (wb == NULL || c->closing)
		return 0;
	c->out = NULL;
	if (wb->len == 0) {
		free(wb);
		return 0;
	}
	uv_buf_t b = uv_buf_init(wb->data, (unsigned)wb->len);
	int rc = uv_write(&wb->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (rc < 0) {
		free(wb);
		conn_close(c);
	}
	return rc;
}

static void conn_on_close(uv_handle_t *h)
{
	struct conn *c = h->data;
	CHECK_OBJ(c, CONN_MAGIC);
	struct gpusim *gs = c->gs;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		gs->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	gs->stat_open_connections--;
	free(c->pending);
	free(c->body);
	free(c->out);
	memset(c, 0, sizeof(*c));
	free(c);
}

static void seq_release(struct seq **sp, enum seq_end end);

/*
 * Closes at once, discarding unsent output; a sequence still attached is
 * cancelled now and its slot freed.  The memory goes in the close callback.
 */
static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->seq != NULL)
		seq_release(&c->seq, SEQ_END_CANCELLED);
	free(c->out);
	c->out = NULL;
	uv_close((uv_handle_t *)&c->tcp, conn_on_close);
}

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->handle->data;
	CHECK_OBJ(c, CONN_MAGIC);
	conn_close(c);
}

/* Sends what is gathered, then FIN once it is written, then closes. */
static void conn_shutdown(struct conn *c)
{
	if (conn_dead(c))
		return;
	if (conn_flush(c) < 0)
		return;
	c->shutting = true;
	if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, conn_on_shutdown) < 0)
		conn_close(c);
}

static const char *conn_header(const struct conn *c)
{
	if (!c->keep_alive)
		return "connection: close\r\n";
	return c->http_minor == 0 ? "connection: keep-alive\r\n" : "";
}

/* Called once the response to the request in flight is complete. */
static void conn_request_done(struct conn *c)
{
	c->in_flight = false;
	if (c->body_cap > BODY_KEEP_MAX) {
		free(c->body);
		c->body = NULL;
		c->body_cap = 0;
	}
	c->body_len = 0;
	if (conn_dead(c))
		return;
	if (!c->keep_alive) {
		conn_shutdown(c);
		return;
	}
	if (conn_flush(c) < 0)
		return;
	if (!c->driving)
		conn_drive(c);
}

static void conn_respond(struct conn *c, int status, const char *ctype, const char *body,
			 size_t len)
{
	conn_outf(c, "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n%s\r\n",
		  status, status_text(status), ctype, len, conn_header(c));
	conn_out(c, body, len);
	conn_request_done(c);
}

static void conn_respond_json(struct conn *c, int status, json_t *body)
{
	char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(12));
	json_decref(body);
	if (s == NULL) {
		conn_close(c);
		return;
	}
	conn_respond(c, status, "application/json", s, strlen(s));
	free(s);
}

static void conn_respond_error(struct conn *c, int status, const char *type, const char *code,
			       const char *message)
{
	if (status >= 400 && status < 500)
		c->gs->stat_rejected++;
	conn_respond_json(c, status,
			  json_pack("{s:{s:s, s:s, s:s}}", "error", "message", message, "type",
				    type, "code", code));
}

/* ------------------------------------------------------------------------ */
/* Sequences: tokens and responses                                           */

static void seq_release(struct seq **sp, enum seq_end end)
{
	struct seq *s = *sp;
	*sp = NULL;
	CHECK_OBJ(s, SEQ_MAGIC);
	struct gpusim *gs = s->gs;
	bool freed_slot = false;
	if (s->where == SEQ_WAITING) {
		seq_list_remove(&gs->waiting, s);
		if (end == SEQ_END_CANCELLED)
			gs->stat_cancelled_waiting++;
	} else {
		seq_list_remove(&gs->active, s);
		uint64_t now = uv_hrtime();
		if (now > s->admitted_ns)
			gs->stat_busy_ns += now - s->admitted_ns;
		if (s->stalled)
			gs->n_stalled--;
		freed_slot = true;
	}
	switch (end) {
	case SEQ_END_COMPLETED: gs->stat_completed++; break;
	case SEQ_END_CANCELLED: gs->stat_cancelled++; break;
	case SEQ_END_FAILED: gs->stat_failed++; break;
	}
	s->conn->seq = NULL;
	memset(s, 0, sizeof(*s));
	free(s);
	if (freed_slot)
		sched_kick(gs);
}

static const char *seq_id_prefix(const struct seq *s)
{
	return s->chat ? "chatcmpl" : "cmpl";
}

/* The text of token i: concatenated, the tokens form "tok0 tok1 tok2". */
static int token_text(char *buf, size_t size, unsigned i)
{
	return snprintf(buf, size, i == 0 ? "tok%u" : " tok%u", i);
}

/* Appends one SSE event as one HTTP chunk. */
static void conn_out_event(struct conn *c, const char *event, size_t len)
{
	conn_outf(c, "%zx\r\n", len);
	conn_out(c, event, len);
	conn_out(c, "\r\n", 2);
}

static void seq_out_token_event(struct seq *s)
{
	char text[32];
	char ev[EVENT_MAX];
	unsigned i = s->generated - 1;
	const char *finish = s->generated >= s->max_tokens ? "\"length\"" : "null";
	int n;
	token_text(text, sizeof(text), i);
	if (s->chat)
		n = snprintf(ev, sizeof(ev),
			     "data: {\"id\":\"chatcmpl-%" PRIu64 "\",\"object\":\"chat.completion.chunk\","
			     "\"created\":%" PRId64 ",\"model\":\"gpusim\",\"choices\":[{\"index\":0,"
			     "\"delta\":{%s\"content\":\"%s\"},\"logprobs\":null,\"finish_reason\":%s}]}\n\n",
			     s->id, s->created, i == 0 ? "\"role\":\"assistant\"," : "", text, finish);
	else
		n = snprintf(ev, sizeof(ev),
			     "data: {\"id\":\"cmpl-%" PRIu64 "\",\"object\":\"text_completion\","
			     "\"created\":%" PRId64 ",\"model\":\"gpusim\",\"choices\":[{\"index\":0,"
			     "\"text\":\"%s\",\"logprobs\":null,\"finish_reason\":%s}]}\n\n",
			     s->id, s->created, text, finish);
	if (n < 0 || (size_t)n >= sizeof(ev))
		abort(); /* every field is bounded; this cannot happen */
	conn_out_event(s->conn, ev, (size_t)n);
}

static void conn_out_stream_head(struct conn *c)
{
	conn_outf(c,
		  "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
		  "transfer-encoding: chunked\r\n%s\r\n",
		  conn_header(c));
}

/* Builds the non-streamed response body for the tokens generated so far. */
static void seq_build_body(const struct seq *s, struct wbuf **b)
{
	unsigned n = s->generated;
	if (s->chat)
		wbuf_printf(b,
			    "{\"id\":\"chatcmpl-%" PRIu64 "\",\"object\":\"chat.completion\",\"created\":%" PRId64
			    ",\"model\":\"gpusim\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
			    "\"content\":\"",
			    s->id, s->created);
	else
		wbuf_printf(b,
			    "{\"id\":\"cmpl-%" PRIu64 "\",\"object\":\"text_completion\",\"created\":%" PRId64
			    ",\"model\":\"gpusim\",\"choices\":[{\"index\":0,\"text\":\"",
			    s->id, s->created);
	for (unsigned i = 0; i < n; i++) {
		char *p = wbuf_reserve(b, 32);
		(*b)->len += (size_t)token_text(p, 32, i);
	}
	wbuf_printf(b,
		    "\"%s,\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":%u,"
		    "\"completion_tokens\":%u,\"total_tokens\":%u}}",
		    s->chat ? "}" : "", s->prompt_tokens, n, s->prompt_tokens + n);
}

/* Answers the request of a sequence that produced all its tokens. */
static void seq_complete(struct seq *s)
{
	struct conn *c = s->conn;
	if (s->stream) {
		char ev[EVENT_MAX];
		int n = snprintf(ev, sizeof(ev),
				 "data: {\"id\":\"%s-%" PRIu64 "\",\"object\":\"%s\",\"created\":%" PRId64
				 ",\"model\":\"gpusim\",\"choices\":[],\"usage\":{\"prompt_tokens\":%u,"
				 "\"completion_tokens\":%u,\"total_tokens\":%u}}\n\n",
				 seq_id_prefix(s), s->id,
				 s->chat ? "chat.completion.chunk" : "text_completion", s->created,
				 s->prompt_tokens, s->generated, s->prompt_tokens + s->generated);
		if (n < 0 || (size_t)n >= sizeof(ev))
			abort();
		conn_out_event(c, ev, (size_t)n);
		static const char done[] = "data: [DONE]\n\n";
		conn_out_event(c, done, sizeof(done) - 1);
		conn_out(c, "0\r\n\r\n", 5);
		seq_release(&c->seq, SEQ_END_COMPLETED);
		conn_request_done(c);
		return;
	}
	struct wbuf *b = NULL;
	seq_build_body(s, &b);
	seq_release(&c->seq, SEQ_END_COMPLETED);
	conn_respond(c, 200, "application/json", b->data, b->len);
	free(b);
}

/*
 * --close-after-tokens: the stream is cut after its N-th token; a
 * non-streamed response gets its headers (announcing the full length) and
 * half of its body.  What was written is flushed first, then FIN.
 */
static void seq_fault_close(struct seq *s)
{
	struct conn *c = s->conn;
	if (!s->stream) {
		struct wbuf *b = NULL;
		seq_build_body(s, &b);
		conn_outf(c, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
			     "content-length: %zu\r\n%s\r\n",
			  b->len, conn_header(c));
		conn_out(c, b->data, b->len / 2);
		free(b);
	}
	seq_release(&c->seq, SEQ_END_FAILED);
	conn_shutdown(c);
}

/* Checks the fault flags after `generated` tokens; true if one took over. */
static bool seq_fault(struct seq *s)
{
	const struct config *cfg = &s->gs->cfg;
	if (cfg->close_after_tokens >= 0 && s->generated == (unsigned long)cfg->close_after_tokens) {
		seq_fault_close(s);
		return true;
	}
	if (cfg->stall_after_tokens >= 0 && s->generated == (unsigned long)cfg->stall_after_tokens) {
		/* The slot stays busy until the client goes away. */
		s->stalled = true;
		s->gs->n_stalled++;
		conn_flush(s->conn);
		return true;
	}
	return false;
}

/*
 * Gives the sequence its next token.  With flush, a streamed token is on the
 * wire when this returns; without, output is gathered up to CORK_MAX.  The
 * write backlog bound applies either way, so --zero cannot buffer a huge
 * stream in memory: it cuts it off instead.  May release s (and nothing else).
 */
static void seq_token(struct seq *s, bool flush)
{
	CHECK_OBJ(s, SEQ_MAGIC);
	struct conn *c = s->conn;
	s->generated++;
	s->gs->stat_tokens++;
	if (s->stream)
		seq_out_token_event(s);
	if (seq_fault(s))
		return;
	if (s->generated >= s->max_tokens) {
		seq_complete(s);
		return;
	}
	if (!flush && c->out != NULL && c->out->len < CORK_MAX)
		return;
	if (conn_flush(c) < 0)
		return;
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WRITE_BACKLOG_MAX) {
		fprintf(stderr, "gpusim: client too slow, %zu bytes unsent; closing\n",
			uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp));
		conn_close(c);
	}
}

/* --zero: produce every token now, gathered into one write. */
static void seq_run_now(struct conn *c)
{
	struct seq *s = c->seq;
	s->where = SEQ_ACTIVE;
	s->admitted_ns = uv_hrtime();
	seq_list_push(&s->gs->active, s);
	if (seq_fault(s))
		return;
	/* Dispatch runs inside conn_drive(), so no new sequence can appear here. */
	while ((s = c->seq) != NULL && !s->stalled && !conn_dead(c))
		seq_token(s, false);
	conn_flush(c);
}

/* ------------------------------------------------------------------------ */
/* Scheduler                                                                 */

static bool sched_has_work(const struct gpusim *gs)
{
	return (gs->waiting.n > 0 && gs->active.n < gs->cfg.slots) ||
	       gs->active.n > gs->n_stalled;
}

static void sched_on_timer(uv_timer_t *t);

/*
 * Timers have millisecond resolution.  Rounding the wait to the nearest
 * millisecond, and running phases due within half of one (SCHED_EARLY_NS),
 * makes each event at most half a millisecond early or late, zero on
 * average; phases are chained on due_ns, so the error never accumulates.
 */
static void sched_arm(struct gpusim *gs)
{
	uint64_t now = uv_hrtime();
	uint64_t wait_ms = gs->due_ns > now ? (gs->due_ns - now + 500000) / 1000000 : 0;
	uv_update_time(&gs->loop);
	uv_timer_start(&gs->timer, sched_on_timer, wait_ms, 0);
}

/* Starts the scheduler if it sleeps and has work; it runs on the next turn. */
static void sched_kick(struct gpusim *gs)
{
	if (gs->cfg.zero || gs->stopping || gs->phase != PHASE_IDLE || !sched_has_work(gs))
		return;
	gs->phase = PHASE_ITERATE;
	gs->due_ns = uv_hrtime();
	uv_timer_start(&gs->timer, sched_on_timer, 0, 0);
}

static void sched_start_decode(struct gpusim *gs)
{
	if (gs->active.n == gs->n_stalled) {
		gs->phase = sched_has_work(gs) ? PHASE_ITERATE : PHASE_IDLE;
		return;
	}
	const struct config *cfg = &gs->cfg;
	unsigned longest = 0;
	unsigned streaming = 0;
	for (struct seq *s = gs->active.head; s != NULL; s = s->next) {
		unsigned ctx = s->prompt_tokens + s->generated;
		if (ctx > longest)
			longest = ctx;
		streaming += s->stream && !s->stalled;
	}
	double b = gs->active.n;
	double lk = (longest + 1) / 1000.0;
	double ms = cfg->step_base_ms + cfg->step_per_seq_ms * b + cfg->step_per_kctx_ms * lk +
		    cfg->step_per_seq_kctx_ms * b * lk + cfg->stream_overhead_ms * streaming;
	gs->phase = PHASE_DECODE;
	gs->due_ns += dur_ns(gs, ms);
}

static void sched_iterate(struct gpusim *gs)
{
	const struct config *cfg = &gs->cfg;
	unsigned admitted = 0;
	unsigned longest = 0;
	while (gs->waiting.head != NULL && gs->active.n < cfg->slots) {
		struct seq *s = gs->waiting.head;
		unsigned l = s->prompt_tokens > longest ? s->prompt_tokens : longest;
		if (admitted > 0 && (uint64_t)(admitted + 1) * l > cfg->prefill_max_tokens)
			break;
		seq_list_remove(&gs->waiting, s);
		s->where = SEQ_ACTIVE;
		s->admitted_ns = uv_hrtime();
		seq_list_push(&gs->active, s);
		admitted++;
		longest = l;
	}
	if (admitted == 0) {
		sched_start_decode(gs);
		return;
	}
	double padded = (double)admitted * longest;
	double ms = cfg->prefill_per_ktok_ms * padded / 1000.0;
	if (ms < cfg->prefill_min_ms)
		ms = cfg->prefill_min_ms;
	ms += cfg->head_delay_ms;
	gs->stat_prefills++;
	gs->phase = PHASE_PREFILL;
	gs->due_ns += dur_ns(gs, ms);

	/* --stall-after-tokens 0 and --close-after-tokens 0 act on admission. */
	if (cfg->close_after_tokens != 0 && cfg->stall_after_tokens != 0)
		return;
	for (struct seq *s = gs->active.tail, *prev; s != NULL && admitted > 0; s = prev, admitted--) {
		prev = s->prev;
		seq_fault(s); /* may release s, and only s */
	}
}

/* The decode step ended: every running sequence gets its token. */
static void sched_step_end(struct gpusim *gs)
{
	gs->stat_steps++;
	for (struct seq *s = gs->active.head, *next; s != NULL; s = next) {
		next = s->next;
		if (!s->stalled)
			seq_token(s, true);
	}
}

static void sched_on_timer(uv_timer_t *t)
{
	struct gpusim *gs = t->data;
	CHECK_OBJ(gs, GPUSIM_MAGIC);
	uint64_t now = uv_hrtime();
	/* After the whole process stalled, forgive the debt instead of bursting. */
	if (now > gs->due_ns + SCHED_MAX_LAG_NS)
		gs->due_ns = now;
	while (gs->phase != PHASE_IDLE && gs->due_ns <= now + SCHED_EARLY_NS) {
		switch (gs->phase) {
		case PHASE_ITERATE:
			sched_iterate(gs);
			break;
		case PHASE_PREFILL:
			sched_start_decode(gs);
			break;
		case PHASE_DECODE:
			/* Not idle while tokens are handed out, so kicks stay no-ops. */
			gs->phase = PHASE_ITERATE;
			sched_step_end(gs);
			break;
		case PHASE_IDLE:
			break;
		}
	}
	if (gs->phase != PHASE_IDLE)
		sched_arm(gs);
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

static bool json_get_count(json_t *v, long long *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d == floor(d) && fabs(d) < 1e15) {
			*out = (long long)d;
			return true;
		}
	}
	return false;
}

/* Adds the characters of a prompt (string, strings, token ids) to *chars or *tokens. */
static bool prompt_size(json_t *prompt, size_t *chars, size_t *tokens)
{
	if (json_is_string(prompt)) {
		*chars += utf8_chars(json_string_value(prompt), json_string_length(prompt));
		return true;
	}
	if (!json_is_array(prompt))
		return false;
	size_t i;
	json_t *v;
	json_array_foreach(prompt, i, v) {
		if (json_is_string(v))
			*chars += utf8_chars(json_string_value(v), json_string_length(v));
		else if (json_is_integer(v))
			(*tokens)++;
		else if (json_is_array(v))
			*tokens += json_array_size(v);
		else
			return false;
	}
	return true;
}

static bool messages_size(json_t *messages, size_t *chars)
{
	if (!json_is_array(messages))
		return false;
	size_t i;
	json_t *m;
	json_array_foreach(messages, i, m) {
		if (!json_is_object(m))
			return false;
		json_t *content = json_object_get(m, "content");
		if (json_is_string(content)) {
			*chars += utf8_chars(json_string_value(content), json_string_length(content));
		} else if (json_is_array(content)) {
			size_t j;
			json_t *part;
			json_array_foreach(content, j, part) {
				json_t *text = json_object_get(part, "text");
				if (json_is_string(text))
					*chars += utf8_chars(json_string_value(text),
							     json_string_length(text));
			}
		}
	}
	return true;
}

static void handle_completion(struct conn *c, bool chat)
{
	struct gpusim *gs = c->gs;
	const struct config *cfg = &gs->cfg;
	gs->stat_requests++;

	json_error_t jerr;
	json_t *root = json_loadb(c->body != NULL ? c->body : "", c->body_len, 0, &jerr);
	if (root == NULL || !json_is_object(root)) {
		char msg[256];
		if (root == NULL)
			snprintf(msg, sizeof(msg), "invalid JSON body: %s (line %d, column %d)",
				 jerr.text, jerr.line, jerr.column);
		else
			snprintf(msg, sizeof(msg), "the request body must be a JSON object");
		json_decref(root);
		conn_respond_error(c, 400, "invalid_request_error", "invalid_json", msg);
		return;
	}

	const char *bad = NULL;
	long long max_tokens = cfg->default_max_tokens;
	json_t *v = json_object_get(root, "max_tokens");
	if (json_is_null(v) || v == NULL)
		v = json_object_get(root, "max_completion_tokens");
	if (v != NULL && !json_is_null(v) &&
	    (!json_get_count(v, &max_tokens) || max_tokens < 1 || max_tokens > MAX_TOKENS_MAX))
		bad = "max_tokens must be an integer between 1 and 1000000";

	size_t chars = 0, tokens = 0;
	json_t *prompt = json_object_get(root, "prompt");
	json_t *messages = json_object_get(root, "messages");
	if (prompt != NULL && !json_is_null(prompt) && !prompt_size(prompt, &chars, &tokens))
		bad = "prompt must be a string or an array of strings or token ids";
	if (messages != NULL && !json_is_null(messages) && !messages_size(messages, &chars))
		bad = "messages must be an array of objects";
	double est = ceil((double)chars / cfg->chars_per_token) + (double)tokens;
	long long prompt_tokens = est < 1 ? 1 : est > 1e9 ? 1000000000 : (long long)est;
	v = json_object_get(root, "prompt_tokens");
	if (v != NULL && !json_is_null(v)) {
		if (!json_get_count(v, &prompt_tokens) || prompt_tokens > 1000000000)
			bad = "prompt_tokens must be an integer";
		else if (prompt_tokens < 1)
			prompt_tokens = 1;
	}
	bool stream = json_is_true(json_object_get(root, "stream"));
	json_decref(root);
	if (bad != NULL) {
		conn_respond_error(c, 400, "invalid_request_error", "invalid_request", bad);
		return;
	}

	if (gs->fail_period != 0 && gs->stat_requests % gs->fail_period == 0) {
		gs->stat_failed++;
		conn_respond_error(c, 500, "server_error", "simulated_failure",
				   "simulated failure (--fail-rate)");
		return;
	}

	struct seq *s = xrealloc(NULL, sizeof(*s));
	*s = (struct seq){
		.magic = SEQ_MAGIC,
		.where = SEQ_WAITING,
		.conn = c,
		.gs = gs,
		.id = ++gs->next_id,
		.created = (int64_t)time(NULL),
		.prompt_tokens = (unsigned)prompt_tokens,
		.max_tokens = (unsigned)max_tokens,
		.stream = stream,
		.chat = chat,
	};
	c->seq = s;
	if (cfg->zero) {
		if (stream)
			conn_out_stream_head(c);
		seq_run_now(c);
		return;
	}
	/* Queued before anything is written: a failed write releases it from there. */
	seq_list_push(&gs->waiting, s);
	if (stream && (conn_out_stream_head(c), conn_flush(c)) < 0)
		return;
	sched_kick(gs);
}

static void handle_stats(struct conn *c)
{
	struct gpusim *gs = c->gs;
	uint64_t busy = gs->stat_busy_ns;
	uint64_t now = uv_hrtime();
	for (struct seq *s = gs->active.head; s != NULL; s = s->next)
		busy += now > s->admitted_ns ? now - s->admitted_ns : 0;
	json_t *o = json_pack(
		"{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I,"
		" s:I, s:b, s:f}",
		"name", gs->cfg.name, "slots", (json_int_t)gs->cfg.slots, "active",
		(json_int_t)gs->active.n, "waiting", (json_int_t)gs->waiting.n, "completed",
		(json_int_t)gs->stat_completed, "cancelled", (json_int_t)gs->stat_cancelled,
		"cancelled_waiting", (json_int_t)gs->stat_cancelled_waiting, "failed",
		(json_int_t)gs->stat_failed, "rejected", (json_int_t)gs->stat_rejected, "requests",
		(json_int_t)gs->stat_requests, "connections", (json_int_t)gs->stat_connections,
		"open_connections", (json_int_t)gs->stat_open_connections, "tokens_generated",
		(json_int_t)gs->stat_tokens, "busy_slot_seconds", (double)busy / 1e9, "prefills",
		(json_int_t)gs->stat_prefills, "steps", (json_int_t)gs->stat_steps, "stalled",
		(json_int_t)gs->n_stalled, "zero", (int)gs->cfg.zero, "time_scale",
		gs->cfg.time_scale);
	conn_respond_json(c, 200, o);
}

/* POST /debug/body: the body's length and FNV-1a 64 hash, so that tests
 * can check that a proxy delivered it byte for byte. */
static void handle_body_digest(struct conn *c)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < c->body_len; i++)
		h = (h ^ (unsigned char)c->body[i]) * 0x100000001b3ull;
	char hex[17];
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
	conn_respond_json(c, 200, json_pack("{s:I, s:s}", "bytes", (json_int_t)c->body_len, "fnv1a64", hex));
}

static void set_fail_rate(struct gpusim *gs, double rate)
{
	gs->fail_period = rate > 0 ? (uint64_t)llround(1.0 / rate) : 0;
	if (gs->fail_period == 0 && rate > 0)
		gs->fail_period = 1;
}

/* The value of `name=` in the query string of url, or NULL. */
static const char *query_arg(const char *url, const char *name)
{
	const char *q = strchr(url, '?');
	size_t n = strlen(name);
	while (q != NULL) {
		q++;
		if (strncmp(q, name, n) == 0 && q[n] == '=')
			return q + n + 1;
		q = strchr(q, '&');
	}
	return NULL;
}

static bool parse_double(const char *s, double min, double *out);
static bool parse_long(const char *s, long min, long max, long *out);

/* The value of query parameter `name` of url, copied into buf[size] and
 * terminated; false when it is absent, empty or too long. */
static bool query_value(const char *url, const char *name, char *buf, size_t size)
{
	const char *v = query_arg(url, name);
	size_t n = v ? strcspn(v, "&") : 0;
	if (n == 0 || n >= size)
		return false;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return true;
}

/* GET /metrics: vLLM's scheduler and cache gauges, with the names, types,
 * HELP text and labels of vLLM's V1 engine (vllm/v1/metrics/loggers.py:
 * labels model_name and engine, values written as floats), so that a
 * client written against vLLM reads gpusim unchanged.  KV cache usage is
 * the tokens held by the running sequences (prompt and generated) over
 * --kv-tokens. */
static void handle_metrics(struct conn *c)
{
	struct gpusim *gs = c->gs;
	uint64_t tokens = 0;
	for (struct seq *s = gs->active.head; s != NULL; s = s->next)
		tokens += (uint64_t)s->prompt_tokens + s->generated;
	double kv = (double)tokens / (double)gs->cfg.kv_tokens;
	if (kv > 1)
		kv = 1;
	char body[1024];
	int n = snprintf(body, sizeof(body),
			 "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
			 "# TYPE vllm:num_requests_running gauge\n"
			 "vllm:num_requests_running{model_name=\"gpusim\",engine=\"0\"} %u.0\n"
			 "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
			 "# TYPE vllm:num_requests_waiting gauge\n"
			 "vllm:num_requests_waiting{model_name=\"gpusim\",engine=\"0\"} %u.0\n"
			 "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
			 "# TYPE vllm:kv_cache_usage_perc gauge\n"
			 "vllm:kv_cache_usage_perc{model_name=\"gpusim\",engine=\"0\"} %.6f\n",
			 (unsigned)gs->active.n, (unsigned)gs->waiting.n, kv);
	conn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, (size_t)n);
}

/* POST /admin/slots?n=N: the batch holds at most N sequences from now on.
 * Growing admits waiting sequences at once; shrinking preempts nothing:
 * the batch drains to N as sequences complete, as a server reconfigured
 * between requests would. */
static void handle_admin_slots(struct conn *c)
{
	char arg[32];
	long slots;
	if (!query_value(c->url, "n", arg, sizeof(arg)) || !parse_long(arg, 1, 1000000, &slots)) {
		conn_respond_error(c, 400, "invalid_request_error", "invalid_request", "want ?n=N with N >= 1");
		return;
	}
	c->gs->cfg.slots = (unsigned)slots;
	sched_kick(c->gs);
	conn_respond_json(c, 200, json_pack("{s:I}", "slots", (json_int_t)slots));
}

/* GET /health: as --health-status or POST /admin/health said.  With 0 the
 * request is never answered (the connection stays until the client goes). */
static void handle_health(struct conn *c)
{
	int status = c->gs->health_status;
	if (status == 0)
		return;
	if (status < 300)
		conn_respond_json(c, status, json_pack("{s:s}", "status", "ok"));
	else
		conn_respond_error(c, status, "server_error", "unhealthy", "simulated unhealthy (--health-status)");
}

/* POST /admin/health?status=S, POST /admin/fail-rate?p=P: change a fault
 * at run time. */
static void handle_admin(struct conn *c, bool health)
{
	char arg[32];
	bool have = query_value(c->url, health ? "status" : "p", arg, sizeof(arg));
	long status;
	double rate;
	if (health && have && parse_long(arg, 0, 599, &status) && (status == 0 || status >= 200)) {
		c->gs->health_status = (int)status;
		conn_respond_json(c, 200, json_pack("{s:I}", "health_status", (json_int_t)status));
	} else if (!health && have && parse_double(arg, 0, &rate) && rate <= 1) {
		set_fail_rate(c->gs, rate);
		conn_respond_json(c, 200, json_pack("{s:f}", "fail_rate", rate));
	} else {
		conn_respond_error(c, 400, "invalid_request_error", "invalid_request",
				   health ? "want ?status=0 or 200-599" : "want ?p=P with 0 <= P <= 1");
	}
}

static bool path_is(const char *path, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(path, want, len) == 0;
}

static void conn_dispatch(struct conn *c)
{
	const char *path = c->url;
	size_t len = strcspn(c->url, "?");
	bool get = c->method == HTTP_GET;
	bool post = c->method == HTTP_POST;
	bool chat = path_is(path, len, "/v1/chat/completions");

	if (chat || path_is(path, len, "/v1/completions")) {
		if (post)
			handle_completion(c, chat);
		else
			conn_respond_error(c, 405, "invalid_request_error", "method_not_allowed",
					   "use POST");
	} else if (path_is(path, len, "/admin/health") && post) {
		handle_admin(c, true);
	} else if (path_is(path, len, "/admin/fail-rate") && post) {
		handle_admin(c, false);
	} else if (path_is(path, len, "/admin/slots") && post) {
		handle_admin_slots(c);
	} else if (path_is(path, len, "/metrics") && get) {
		handle_metrics(c);
	} else if (path_is(path, len, "/health")) {
		if (get)
			handle_health(c);
		else
			conn_respond_error(c, 405, "invalid_request_error", "method_not_allowed",
					   "use GET");
	} else if (path_is(path, len, "/stats")) {
		if (get)
			handle_stats(c);
		else
			conn_respond_error(c, 405, "invalid_request_error", "method_not_allowed",
					   "use GET");
	} else if (path_is(path, len, "/debug/body") && post) {
		handle_body_digest(c);
	} else if (path_is(path, len, "/v1/models")) {
		conn_respond_json(c, 200,
				  json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "object", "list", "data",
					    "id", "gpusim", "object", "model", "owned_by",
					    c->gs->cfg.name));
	} else {
		conn_respond_error(c, 404, "invalid_request_error", "not_found", "unknown path");
	}
}

/* ------------------------------------------------------------------------ */
/* HTTP parsing                                                              */

static struct conn *conn_of(llhttp_t *p)
{
	struct conn *c = p->data;
	CHECK_OBJ(c, CONN_MAGIC);
	return c;
}

static int parser_fail(struct conn *c, int status)
{
	c->req_error = status;
	return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
	struct conn *c = conn_of(p);
	c->url_len = 0;
	c->url[0] = '\0';
	c->body_len = 0;
	c->header_bytes = 0;
	c->hname_len = 0;
	c->hvalue_len = 0;
	c->expect_continue = false;
	c->req_error = 0;
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	if (c->url_len + len >= URL_MAX)
		return parser_fail(c, 414);
	memcpy(c->url + c->url_len, at, len);
	c->url_len += len;
	c->url[c->url_len] = '\0';
	return 0;
}

/* Only Expect matters; names and values are kept just long enough to see it. */
static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	c->header_bytes += len;
	if (c->header_bytes > HEADERS_MAX)
		return parser_fail(c, 431);
	size_t n = len < sizeof(c->hname) - c->hname_len ? len : sizeof(c->hname) - c->hname_len;
	memcpy(c->hname + c->hname_len, at, n);
	c->hname_len += n;
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	c->header_bytes += len;
	if (c->header_bytes > HEADERS_MAX)
		return parser_fail(c, 431);
	size_t n = len < sizeof(c->hvalue) - c->hvalue_len ? len : sizeof(c->hvalue) - c->hvalue_len;
	memcpy(c->hvalue + c->hvalue_len, at, n);
	c->hvalue_len += n;
	return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
	struct conn *c = conn_of(p);
	if (c->hname_len == 6 && strncasecmp(c->hname, "expect", 6) == 0 && c->hvalue_len == 12 &&
	    strncasecmp(c->hvalue, "100-continue", 12) == 0)
		c->expect_continue = true;
	c->hname_len = 0;
	c->hvalue_len = 0;
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct conn *c = conn_of(p);
	c->keep_alive = llhttp_should_keep_alive(p);
	c->http_minor = llhttp_get_http_minor(p);
	c->method = llhttp_get_method(p);
	if ((p->flags & F_CONTENT_LENGTH) && p->content_length > BODY_MAX)
		return parser_fail(c, 413);
	if (c->expect_continue) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		conn_out(c, cont, sizeof(cont) - 1);
		conn_flush(c);
	}
	return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	if (c->body_len + len > BODY_MAX)
		return parser_fail(c, 413);
	if (c->body_len + len > c->body_cap) {
		size_t cap = c->body_cap != 0 ? c->body_cap : 4096;
		while (cap < c->body_len + len)
			cap *= 2;
		c->body = xrealloc(c->body, cap);
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, at, len);
	c->body_len += len;
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct conn *c = conn_of(p);
	c->req_ready = true;
	return HPE_PAUSED; /* one request at a time; conn_drive() resumes */
}

/* Feeds bytes to the parser; returns how many it consumed. */
static size_t conn_parse(struct conn *c, const char *data, size_t len)
{
	llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
	if (err == HPE_OK)
		return len;
	if (err == HPE_PAUSED) {
		size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
		llhttp_resume(&c->parser);
		return used;
	}
	if (err == HPE_PAUSED_UPGRADE) {
		/* Upgrades are not supported; the connection ends after the request. */
		c->keep_alive = false;
		if (!c->req_ready && !c->in_flight)
			conn_shutdown(c);
		return len;
	}
	c->keep_alive = false;
	c->req_ready = false;
	c->in_flight = true;
	if (c->req_error == 413)
		conn_respond_error(c, 413, "invalid_request_error", "body_too_large",
				   "request body exceeds 64 MiB");
	else if (c->req_error == 414)
		conn_respond_error(c, 414, "invalid_request_error", "uri_too_long",
				   "request target too long");
	else if (c->req_error == 431)
		conn_respond_error(c, 431, "invalid_request_error", "headers_too_large",
				   "request headers too large");
	else {
		char msg[160];
		snprintf(msg, sizeof(msg), "malformed HTTP request: %s",
			 llhttp_get_error_reason(&c->parser));
		conn_respond_error(c, 400, "invalid_request_error", "bad_request", msg);
	}
	return len;
}

/*
 * Parses buffered bytes and dispatches requests until one stays in flight,
 * the buffer runs dry or the connection ends.  Requests answered at once loop
 * here instead of recursing.
 */
static void conn_drive(struct conn *c)
{
	c->driving = true;
	for (;;) {
		if (conn_dead(c))
			break;
		if (c->req_ready) {
			c->req_ready = false;
			c->in_flight = true;
			conn_dispatch(c);
			continue;
		}
		if (c->in_flight || c->pending_len == 0)
			break;
		size_t used = conn_parse(c, c->pending + c->pending_off, c->pending_len);
		c->pending_off += used;
		c->pending_len -= used;
		if (c->pending_len == 0)
			c->pending_off = 0;
	}
	c->driving = false;
	if (!conn_dead(c) && c->read_stopped && c->pending_len < READAHEAD_MAX) {
		c->read_stopped = false;
		if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
			conn_close(c);
	}
}

static void pending_append(struct conn *c, const char *data, size_t len)
{
	if (c->pending_off + c->pending_len + len > c->pending_cap) {
		if (c->pending_len > 0)
			memmove(c->pending, c->pending + c->pending_off, c->pending_len);
		c->pending_off = 0;
		if (c->pending_len + len > c->pending_cap) {
			size_t cap = c->pending_cap != 0 ? c->pending_cap : 4096;
			while (cap < c->pending_len + len)
				cap *= 2;
			c->pending = xrealloc(c->pending, cap);
			c->pending_cap = cap;
		}
	}
	memcpy(c->pending + c->pending_off + c->pending_len, data, len);
	c->pending_len += len;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	CHECK_OBJ(c, CONN_MAGIC);
	*buf = uv_buf_init(c->gs->rbuf, (unsigned)sizeof(c->gs->rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = stream->data;
	CHECK_OBJ(c, CONN_MAGIC);
	if (nread < 0) {
		/* EOF or error: the client is gone, and so is its request. */
		conn_close(c);
		return;
	}
	if (nread == 0 || conn_dead(c))
		return;
	const char *data = buf->base;
	size_t len = (size_t)nread;
	if (!c->in_flight && !c->req_ready && c->pending_len == 0) {
		size_t used = conn_parse(c, data, len);
		data += used;
		len -= used;
	}
	if (len > 0 && !conn_dead(c))
		pending_append(c, data, len);
	conn_drive(c);
	if (!conn_dead(c) && c->pending_len >= READAHEAD_MAX && !c->read_stopped) {
		/* Backpressure: stop reading until the requests ahead are answered. */
		c->read_stopped = true;
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
}

/* ------------------------------------------------------------------------ */
/* Listener and lifecycle                                                    */

static void on_connection(uv_stream_t *server, int status)
{
	struct gpusim *gs = server->data;
	CHECK_OBJ(gs, GPUSIM_MAGIC);
	if (status < 0) {
		fprintf(stderr, "gpusim: accept: %s\n", uv_strerror(status));
		return;
	}
	struct conn *c = xrealloc(NULL, sizeof(*c));
	memset(c, 0, sizeof(*c));
	c->magic = CONN_MAGIC;
	c->gs = gs;
	uv_tcp_init(&gs->loop, &c->tcp);
	c->tcp.data = c;
	llhttp_init(&c->parser, HTTP_REQUEST, &gs->settings);
	c->parser.data = c;
	c->next = gs->conns;
	if (gs->conns != NULL)
		gs->conns->prev = c;
	gs->conns = c;
	gs->stat_open_connections++;

	int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
	if (rc == 0) {
		gs->stat_connections++;
		uv_tcp_nodelay(&c->tcp, 1);
		rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	}
	if (rc < 0) {
		fprintf(stderr, "gpusim: accept: %s\n", uv_strerror(rc));
		conn_close(c);
	}
}

static void gpusim_stop(struct gpusim *gs)
{
	if (gs->stopping)
		return;
	gs->stopping = true;
	uv_close((uv_handle_t *)&gs->listener, NULL);
	uv_close((uv_handle_t *)&gs->timer, NULL);
	uv_close((uv_handle_t *)&gs->sigterm, NULL);
	uv_close((uv_handle_t *)&gs->sigint, NULL);
	/* conn_close() unlinks nothing; the close callbacks do, later. */
	for (struct conn *c = gs->conns; c != NULL; c = c->next)
		conn_close(c);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct gpusim *gs = h->data;
	CHECK_OBJ(gs, GPUSIM_MAGIC);
	fprintf(stderr, "gpusim: %s, exiting\n", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	gpusim_stop(gs);
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gpusim [options]\n"
		"  --listen HOST:PORT          address to listen on (127.0.0.1:0: ephemeral port)\n"
		"  --slots N                   max active sequences, max_batch (64)\n"
		"  --kv-tokens N               KV cache capacity in tokens, for /metrics (262144)\n"
		"  --zero                      answer every completion at once, no simulated time\n"
		"  --time-scale X              multiply every simulated duration by X (1)\n"
		"  --step-base-ms MS           decode step: constant (2.22)\n"
		"  --step-per-seq-ms MS        decode step: per sequence in the batch (0.0037)\n"
		"  --step-per-kctx-ms MS       decode step: per 1000 tokens of span (0.23)\n"
		"  --step-per-seq-kctx-ms MS   decode step: per sequence x 1000 tokens (0.0055)\n"
		"  --stream-overhead-ms MS     decode step: per streaming sequence (0.03)\n"
		"  --prefill-min-ms MS         prefill: minimum duration (12)\n"
		"  --head-delay-ms MS          prefill: added to each, so a stream's head precedes\n"
		"                              its first token by at least MS (0)\n"
		"  --prefill-per-ktok-ms MS    prefill: per 1000 padded prompt tokens (5.4)\n"
		"  --prefill-max-tokens N      padded prompt tokens admitted per prefill (8192)\n"
		"  --chars-per-token X         prompt characters per token (4)\n"
		"  --default-max-tokens N      max_tokens when the request has none (16)\n"
		"  --fail-rate P               answer every round(1/P)-th completion with 500 (0)\n"
		"  --health-status S           GET /health answers S; 0: never answers (200)\n"
		"  --close-after-tokens N      close the connection after N tokens (off)\n"
		"  --stall-after-tokens N      stop sending after N tokens, keep the slot (off)\n"
		"  --name NAME                 name reported by /stats (gpusim)\n"
		"  -h, --help                  show this help\n"
		"On start prints \"gpusim listening on HOST:PORT\" to stdout.\n");
}

static bool parse_double(const char *s, double min, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(d) || d < min)
		return false;
	*out = d;
	return true;
}

static bool parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

enum {
	OPT_LISTEN = 256,
	OPT_SLOTS,
	OPT_KV_TOKENS,
	OPT_ZERO,
	OPT_TIME_SCALE,
	OPT_STEP_BASE,
	OPT_STEP_PER_SEQ,
	OPT_STEP_PER_KCTX,
	OPT_STEP_PER_SEQ_KCTX,
	OPT_STREAM_OVERHEAD,
	OPT_PREFILL_MIN,
	OPT_HEAD_DELAY,
	OPT_PREFILL_PER_KTOK,
	OPT_PREFILL_MAX_TOKENS,
	OPT_CHARS_PER_TOKEN,
	OPT_DEFAULT_MAX_TOKENS,
	OPT_FAIL_RATE,
	OPT_HEALTH_STATUS,
	OPT_CLOSE_AFTER,
	OPT_STALL_AFTER,
	OPT_NAME,
};

static int parse_args(struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"slots", required_argument, NULL, OPT_SLOTS},
		{"kv-tokens", required_argument, NULL, OPT_KV_TOKENS},
		{"zero", no_argument, NULL, OPT_ZERO},
		{"time-scale", required_argument, NULL, OPT_TIME_SCALE},
		{"step-base-ms", required_argument, NULL, OPT_STEP_BASE},
		{"step-per-seq-ms", required_argument, NULL, OPT_STEP_PER_SEQ},
		{"step-per-kctx-ms", required_argument, NULL, OPT_STEP_PER_KCTX},
		{"step-per-seq-kctx-ms", required_argument, NULL, OPT_STEP_PER_SEQ_KCTX},
		{"stream-overhead-ms", required_argument, NULL, OPT_STREAM_OVERHEAD},
		{"prefill-min-ms", required_argument, NULL, OPT_PREFILL_MIN},
		{"head-delay-ms", required_argument, NULL, OPT_HEAD_DELAY},
		{"prefill-per-ktok-ms", required_argument, NULL, OPT_PREFILL_PER_KTOK},
		{"prefill-max-tokens", required_argument, NULL, OPT_PREFILL_MAX_TOKENS},
		{"chars-per-token", required_argument, NULL, OPT_CHARS_PER_TOKEN},
		{"default-max-tokens", required_argument, NULL, OPT_DEFAULT_MAX_TOKENS},
		{"fail-rate", required_argument, NULL, OPT_FAIL_RATE},
		{"health-status", required_argument, NULL, OPT_HEALTH_STATUS},
		{"close-after-tokens", required_argument, NULL, OPT_CLOSE_AFTER},
		{"stall-after-tokens", required_argument, NULL, OPT_STALL_AFTER},
		{"name", required_argument, NULL, OPT_NAME},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	*cfg = (struct config){
		.listen = "127.0.0.1:0",
		.name = "gpusim",
		.slots = 64,
		.kv_tokens = 262144,
		.time_scale = 1.0,
		.step_base_ms = 2.22,
		.step_per_seq_ms = 0.0037,
		.step_per_kctx_ms = 0.23,
		.step_per_seq_kctx_ms = 0.0055,
		.stream_overhead_ms = 0.03,
		.prefill_min_ms = 12,
		.prefill_per_ktok_ms = 5.4,
		.prefill_max_tokens = 8192,
		.chars_per_token = 4,
		.default_max_tokens = 16,
		.health_status = 200,
		.close_after_tokens = -1,
		.stall_after_tokens = -1,
	};
	int opt, idx = 0;
	long l;
	bool ok = true;
	while (ok && (opt = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
		switch (opt) {
		case OPT_LISTEN: cfg->listen = optarg; break;
		case OPT_NAME: cfg->name = optarg; break;
		case OPT_ZERO: cfg->zero = true; break;
		case OPT_SLOTS:
			ok = parse_long(optarg, 1, 1000000, &l);
			cfg->slots = (unsigned)l;
			break;
		case OPT_KV_TOKENS:
			ok = parse_long(optarg, 1, 1000000000, &l);
			cfg->kv_tokens = (uint64_t)l;
			break;
		case OPT_PREFILL_MAX_TOKENS:
			ok = parse_long(optarg, 1, 1000000000, &l);
			cfg->prefill_max_tokens = (unsigned)l;
			break;
		case OPT_DEFAULT_MAX_TOKENS:
			ok = parse_long(optarg, 1, MAX_TOKENS_MAX, &l);
			cfg->default_max_tokens = (unsigned)l;
			break;
		case OPT_CLOSE_AFTER: ok = parse_long(optarg, 0, MAX_TOKENS_MAX, &cfg->close_after_tokens); break;
		case OPT_STALL_AFTER: ok = parse_long(optarg, 0, MAX_TOKENS_MAX, &cfg->stall_after_tokens); break;
		case OPT_TIME_SCALE: ok = parse_double(optarg, 0, &cfg->time_scale); break;
		case OPT_STEP_BASE: ok = parse_double(optarg, 0, &cfg->step_base_ms); break;
		case OPT_STEP_PER_SEQ: ok = parse_double(optarg, 0, &cfg->step_per_seq_ms); break;
		case OPT_STEP_PER_KCTX: ok = parse_double(optarg, 0, &cfg->step_per_kctx_ms); break;
		case OPT_STEP_PER_SEQ_KCTX: ok = parse_double(optarg, 0, &cfg->step_per_seq_kctx_ms); break;
		case OPT_STREAM_OVERHEAD: ok = parse_double(optarg, 0, &cfg->stream_overhead_ms); break;
		case OPT_PREFILL_MIN: ok = parse_double(optarg, 0, &cfg->prefill_min_ms); break;
		case OPT_HEAD_DELAY: ok = parse_double(optarg, 0, &cfg->head_delay_ms); break;
		case OPT_PREFILL_PER_KTOK: ok = parse_double(optarg, 0, &cfg->prefill_per_ktok_ms); break;
		case OPT_CHARS_PER_TOKEN:
			ok = parse_double(optarg, 0, &cfg->chars_per_token) && cfg->chars_per_token > 0;
			break;
		case OPT_FAIL_RATE:
			ok = parse_double(optarg, 0, &cfg->fail_rate) && cfg->fail_rate <= 1;
			break;
		case OPT_HEALTH_STATUS:
			ok = parse_long(optarg, 0, 599, &cfg->health_status) &&
			     (cfg->health_status == 0 || cfg->health_status >= 200);
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
		if (!ok)
			fprintf(stderr, "gpusim: invalid value for --%s: %s\n", opts[idx].name, optarg);
	}
	if (ok && optind < argc) {
		fprintf(stderr, "gpusim: unexpected argument: %s\n", argv[optind]);
		ok = false;
	}
	return ok ? 0 : -EINVAL;
}

/* Parses "HOST:PORT" or "[V6]:PORT". */
static int parse_listen(const char *spec, struct sockaddr_storage *ss)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		return -EINVAL;
	long port;
	if (!parse_long(colon + 1, 0, 65535, &port))
		return -EINVAL;
	const char *h = spec;
	size_t hl = (size_t)(colon - spec);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return -EINVAL;
}

static int gpusim_listen(struct gpusim *gs)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (parse_listen(gs->cfg.listen, &ss) < 0) {
		fprintf(stderr, "gpusim: bad --listen address: %s\n", gs->cfg.listen);
		return -EINVAL;
	}
	int rc = uv_tcp_bind(&gs->listener, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&gs->listener, 4096, on_connection);
	if (rc < 0) {
		fprintf(stderr, "gpusim: listen on %s: %s\n", gs->cfg.listen, uv_strerror(rc));
		return rc;
	}
	int len = sizeof(ss);
	rc = uv_tcp_getsockname(&gs->listener, (struct sockaddr *)&ss, &len);
	if (rc < 0)
		return rc;
	char ip[64];
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
		uv_ip6_name(a6, ip, sizeof(ip));
		printf("gpusim listening on [%s]:%d\n", ip, ntohs(a6->sin6_port));
	} else {
		const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
		uv_ip4_name(a4, ip, sizeof(ip));
		printf("gpusim listening on %s:%d\n", ip, ntohs(a4->sin_port));
	}
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct gpusim *gs = xrealloc(NULL, sizeof(*gs));
	memset(gs, 0, sizeof(*gs));
	gs->magic = GPUSIM_MAGIC;
	if (parse_args(&gs->cfg, argc, argv) < 0) {
		free(gs);
		return 2;
	}
	set_fail_rate(gs, gs->cfg.fail_rate);
	gs->health_status = (int)gs->cfg.health_status;

	llhttp_settings_init(&gs->settings);
	gs->settings.on_message_begin = on_message_begin;
	gs->settings.on_url = on_url;
	gs->settings.on_header_field = on_header_field;
	gs->settings.on_header_value = on_header_value;
	gs->settings.on_header_value_complete = on_header_value_complete;
	gs->settings.on_headers_complete = on_headers_complete;
	gs->settings.on_body = on_body;
	gs->settings.on_message_complete = on_message_complete;

	/* A client that goes away mid-write must cost an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);

	int rc = uv_loop_init(&gs->loop);
	if (rc < 0) {
		fprintf(stderr, "gpusim: uv_loop_init: %s\n", uv_strerror(rc));
		free(gs);
		return 1;
	}
	uv_tcp_init(&gs->loop, &gs->listener);
	gs->listener.data = gs;
	uv_timer_init(&gs->loop, &gs->timer);
	gs->timer.data = gs;
	uv_signal_init(&gs->loop, &gs->sigterm);
	gs->sigterm.data = gs;
	uv_signal_init(&gs->loop, &gs->sigint);
	gs->sigint.data = gs;
	uv_signal_start(&gs->sigterm, on_signal, SIGTERM);
	uv_signal_start(&gs->sigint, on_signal, SIGINT);

	int status = 0;
	if (gpusim_listen(gs) < 0) {
		status = 1;
		gpusim_stop(gs);
	} else {
		fprintf(stderr,
			"gpusim: %s: slots %u, time-scale %g%s, step %.4g+%.4g*B+%.4g*Lk+%.4g*B*Lk ms, "
			"prefill max(%.4g, %.4g/ktok) ms\n",
			gs->cfg.name, gs->cfg.slots, gs->cfg.time_scale, gs->cfg.zero ? ", zero" : "",
			gs->cfg.step_base_ms, gs->cfg.step_per_seq_ms, gs->cfg.step_per_kctx_ms,
			gs->cfg.step_per_seq_kctx_ms, gs->cfg.prefill_min_ms,
			gs->cfg.prefill_per_ktok_ms);
	}
	uv_run(&gs->loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&gs->loop);
	if (rc < 0)
		fprintf(stderr, "gpusim: uv_loop_close: %s\n", uv_strerror(rc));
	gs->magic = 0;
	free(gs);
	return status;
}
