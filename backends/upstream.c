/*
 * upstream.c - backend connections and the per-backend idle pool.
 *
 * The idle list is LIFO: the connection put back last is handed out first.
 * Reusing the warmest connection keeps the pool small under light load (the
 * cold tail ages out through backend_set_close_idle()) and minimises the
 * chance of picking one the server is about to time out.
 */
#include <stdlib.h>

#include "backends/upstream.h"

struct backend_conn *backend_conn_from(uv_handle_t *h)
{
	struct backend_conn *bc = h->data;
	if (bc == NULL || bc->magic != BACKEND_CONN_MAGIC)
		abort();
	return bc;
}

static void idle_unlink(struct backend_conn *bc)
{
	struct backend *b = bc->backend;
	if (bc->prev != NULL)
		bc->prev->next = bc->next;
	else
		b->idle = bc->next;
	if (bc->next != NULL)
		bc->next->prev = bc->prev;
	bc->next = bc->prev = NULL;
	bc->is_idle = false;
	b->nidle--;
}

struct backend_conn *backend_conn_take(struct backend *b)
{
	struct backend_conn *bc = b->idle;
	if (bc == NULL)
		return NULL;
	idle_unlink(bc);
	return bc;
}

int backend_conn_create(uv_loop_t *loop, struct backend *b, struct backend_conn **out)
{
	struct backend_conn *bc = calloc(1, sizeof(*bc));
	if (bc == NULL)
		return UV_ENOMEM;
	int rc = uv_tcp_init(loop, &bc->tcp);
	if (rc < 0) {
		free(bc);
		return rc;
	}
	bc->magic = BACKEND_CONN_MAGIC;
	bc->tcp.data = bc;
	bc->backend = b;
	backend__conn_opened(b);
	*out = bc;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct backend_conn *bc = backend_conn_from(h);
	struct backend *b = bc->backend;
	bc->magic = 0;
	free(bc);
	backend__conn_gone(b);	/* may free a retired backend */
}

void backend_conn_close(struct backend_conn **bcp)
{
	struct backend_conn *bc = *bcp;
	*bcp = NULL;
	if (bc == NULL)
		return;
	if (bc->is_idle)
		idle_unlink(bc);
	bc->owner = NULL;
	if (!uv_is_closing((uv_handle_t *)&bc->tcp))
		uv_close((uv_handle_t *)&bc->tcp, on_closed);
}

/* In use, reads go to the user.  Idle, a connection is never read from
 * for a reason: any event on it means the server closed it or broke the
 * protocol, and it must go. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char sink[64];
	struct backend_conn *bc = backend_conn_from(h);
	if (bc->owner != NULL) {
		bc->user_alloc(h, suggested, buf);
		return;
	}
	buf->base = sink;
	buf->len = sizeof(sink);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct backend_conn *bc = backend_conn_from((uv_handle_t *)s);
	if (bc->owner != NULL) {
		bc->user_read(s, nread, buf);
		return;
	}
	if (nread != 0)
		backend_conn_close(&bc);
}

int backend_conn_use(struct backend_conn *bc, void *owner, uv_alloc_cb alloc, uv_read_cb read)
{
	bc->owner = owner;
	bc->user_alloc = alloc;
	bc->user_read = read;
	if (bc->reading)
		return 0;
	int rc = uv_read_start((uv_stream_t *)&bc->tcp, on_alloc, on_read);
	bc->reading = rc == 0;
	return rc;
}

void backend_conn_pause(struct backend_conn *bc)
{
	if (bc->reading) {
		uv_read_stop((uv_stream_t *)&bc->tcp);
		bc->reading = false;
	}
}

int backend_conn_resume(struct backend_conn *bc)
{
	if (bc->reading)
		return 0;
	int rc = uv_read_start((uv_stream_t *)&bc->tcp, on_alloc, on_read);
	bc->reading = rc == 0;
	return rc;
}

void backend_conn_put(struct backend_conn **bcp, uint64_t now_ms)
{
	struct backend_conn *bc = *bcp;
	*bcp = NULL;
	struct backend *b = bc->backend;
	bc->owner = NULL;
	/* A retired backend takes no more requests; idle connections must be
	 * watched for the server closing them. */
	if (b->retired || backend_conn_resume(bc) < 0) {
		backend_conn_close(&bc);
		return;
	}
	bc->idle_since_ms = now_ms;
	bc->is_idle = true;
	bc->prev = NULL;
	bc->next = b->idle;
	if (b->idle != NULL)
		b->idle->prev = bc;
	b->idle = bc;
	b->nidle++;
}

void backend_set_close_idle(struct backend_set *s, uint64_t now_ms, uint64_t max_idle_ms)
{
	for (size_t i = 0; i < s->npools; i++) {
		struct backend_pool *p = s->pools[i];
		for (size_t j = 0; j < p->nbackends; j++) {
			struct backend *b = p->backends[j];
			/* The list is ordered by idle_since, newest first: walk
			 * from the head and cut where the old ones start. */
			struct backend_conn *bc = b->idle;
			while (bc != NULL && max_idle_ms != 0 && now_ms - bc->idle_since_ms < max_idle_ms)
				bc = bc->next;
			while (bc != NULL) {
				struct backend_conn *next = bc->next;
				backend_conn_close(&bc);
				bc = next;
			}
		}
	}
}
