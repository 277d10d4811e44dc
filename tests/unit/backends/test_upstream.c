/*
 * test_upstream.c - backend connections and the keep-alive pool, on a real
 * libuv loop talking to a tiny TCP server on the same loop.
 *
 * Each test owns its loop, a listener on 127.0.0.1 port 0 and the config
 * whose backend points at that port.  The server side keeps every accepted
 * connection as a `peer` that records what it reads and whether it saw the
 * client close.  Every wait runs the loop under a guard timer, so a bug
 * fails the test instead of hanging it; every test ends by closing each
 * handle and asserting uv_loop_close() == 0.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/upstream.h"
#include "conf/conf.h"

/*
 * Under ASan, LeakSanitizer's report at exit does not fail a Criterion
 * test (the verdict is sent before the worker exits), so teardown asks for
 * a leak check itself: a connection or pool that is never freed fails the
 * test that leaked it.
 */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define assert_no_leaks() cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (see the report above)")
#else
#define assert_no_leaks() ((void)0)
#endif

#define MAX_PEERS 8
#define GUARD_MS 3000

struct fixture;

struct peer {
	uv_tcp_t tcp;
	struct fixture *f;
	char buf[256];
	size_t n;
	bool eof;			/* the client closed (or reset) the connection */
};

struct fixture {
	uv_loop_t loop;
	uv_timer_t guard;
	bool expired;
	uv_tcp_t listener;
	struct peer peers[MAX_PEERS];	/* in accept order */
	size_t npeers;
	struct conf *conf;
	struct backend_set set;
	struct backend *b;
};

/* The state a user (the gateway) keeps for a connection it holds. */
struct user {
	char buf[256];
	size_t n;
	ssize_t err;			/* the negative nread seen, if any */
};

struct connect_state {
	bool done;
	int status;
};

static void on_guard(uv_timer_t *t)
{
	struct fixture *f = t->data;
	f->expired = true;
}

/* Run the loop until `cond` holds, at most GUARD_MS. */
#define RUN_UNTIL(f, cond) do {							\
	(f)->expired = false;							\
	cr_assert_eq(uv_timer_start(&(f)->guard, on_guard, GUARD_MS, 0), 0);	\
	while (!(cond) && !(f)->expired)					\
		uv_run(&(f)->loop, UV_RUN_ONCE);				\
	uv_timer_stop(&(f)->guard);						\
	cr_assert((cond), "timed out waiting for %s", #cond);			\
} while (0)

/* Run the loop for `ms`, to give an event that must not happen its chance. */
static void run_for(struct fixture *f, uint64_t ms)
{
	f->expired = false;
	cr_assert_eq(uv_timer_start(&f->guard, on_guard, ms, 0), 0);
	while (!f->expired)
		uv_run(&f->loop, UV_RUN_ONCE);
}

/* --- the server --------------------------------------------------------- */

static void peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char sink[64];
	struct peer *p = h->data;
	(void)suggested;
	if (p->n < sizeof(p->buf)) {
		buf->base = p->buf + p->n;
		buf->len = sizeof(p->buf) - p->n;
	} else {
		buf->base = sink;
		buf->len = sizeof(sink);
	}
}

static void peer_close(struct peer *p)
{
	if (!uv_is_closing((uv_handle_t *)&p->tcp))
		uv_close((uv_handle_t *)&p->tcp, NULL);
}

static void peer_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct peer *p = s->data;
	if (nread > 0 && buf->base == p->buf + p->n)
		p->n += (size_t)nread;
	if (nread < 0) {
		p->eof = true;
		peer_close(p);
	}
}

static void peer_send(struct peer *p, const char *s)
{
	uv_buf_t b = uv_buf_init((char *)s, (unsigned)strlen(s));
	/* A few bytes on loopback always fit in the socket buffer. */
	cr_assert_eq(uv_try_write((uv_stream_t *)&p->tcp, &b, 1), (int)strlen(s));
}

static void on_connection(uv_stream_t *server, int status)
{
	struct fixture *f = server->data;
	cr_assert_eq(status, 0);
	cr_assert_lt(f->npeers, MAX_PEERS);
	struct peer *p = &f->peers[f->npeers++];
	p->f = f;
	cr_assert_eq(uv_tcp_init(&f->loop, &p->tcp), 0);
	p->tcp.data = p;
	cr_assert_eq(uv_accept(server, (uv_stream_t *)&p->tcp), 0);
	cr_assert_eq(uv_read_start((uv_stream_t *)&p->tcp, peer_alloc, peer_read), 0);
}

/* --- fixture ------------------------------------------------------------ */

static void setup(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	cr_assert_eq(uv_loop_init(&f->loop), 0);
	cr_assert_eq(uv_timer_init(&f->loop, &f->guard), 0);
	f->guard.data = f;

	struct sockaddr_in sin;
	cr_assert_eq(uv_ip4_addr("127.0.0.1", 0, &sin), 0);
	cr_assert_eq(uv_tcp_init(&f->loop, &f->listener), 0);
	f->listener.data = f;
	cr_assert_eq(uv_tcp_bind(&f->listener, (const struct sockaddr *)&sin, 0), 0);
	cr_assert_eq(uv_listen((uv_stream_t *)&f->listener, 16, on_connection), 0);
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	cr_assert_eq(uv_tcp_getsockname(&f->listener, (struct sockaddr *)&ss, &len), 0);
	unsigned port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	cr_assert_neq(port, 0);

	/* A second pool whose backend nobody connects to, so that sweeping
	 * the idle lists also walks empty ones. */
	char text[1024];
	snprintf(text, sizeof(text),
		 "listen: 127.0.0.1:0\n"
		 "admin_listen: 127.0.0.1:1\n"
		 "pools:\n"
		 "  gold: { slice: reserved, backends: [ { address: 127.0.0.1:%u, max_inflight: 4 } ] }\n"
		 "  spot: { slice: elastic, backends: [ { address: 127.0.0.1:1, max_inflight: 4 } ] }\n"
		 "classes:\n"
		 "  interactive: { pools: [gold, spot] }\n",
		 port);
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("test.yaml", text, strlen(text), &f->conf, &diag), 0,
		     "%s", diag.count ? diag.msg[0] : "");
	cr_assert_eq(backend_set_init(&f->set, f->conf), 0);
	f->b = f->set.pools[0]->backends[0];
}

/* Every connection the test still holds must have been closed before. */
static void teardown(struct fixture *f)
{
	backend_set_close_idle(&f->set, 0, 0);
	for (size_t i = 0; i < f->set.npools; i++)
		for (size_t j = 0; j < f->set.pools[i]->nbackends; j++) {
			cr_assert_null(f->set.pools[i]->backends[j]->idle);
			cr_assert_eq(f->set.pools[i]->backends[j]->nidle, 0);
		}
	for (size_t i = 0; i < f->npeers; i++)
		peer_close(&f->peers[i]);
	uv_close((uv_handle_t *)&f->listener, NULL);
	uv_close((uv_handle_t *)&f->guard, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&f->loop), 0, "a handle was left open");
	backend_set_finish(&f->set);
	conf_destroy(f->conf);
	assert_no_leaks();
}

static void on_connect(uv_connect_t *req, int status)
{
	struct connect_state *st = req->data;
	st->done = true;
	st->status = status;
}

/* A new connection to the backend, connected and accepted by the server
 * (as peers[npeers - 1]), not yet in use. */
static struct backend_conn *connect_one(struct fixture *f)
{
	struct backend_conn *bc = NULL;
	uint64_t connects = f->b->connects;
	cr_assert_eq(backend_conn_create(&f->loop, f->b, &bc), 0);
	cr_assert_not_null(bc);
	cr_assert_eq(bc->backend, f->b);
	cr_assert_eq(f->b->connects, connects + 1);
	cr_assert_eq(backend_conn_from((uv_handle_t *)&bc->tcp), bc);
	struct connect_state st = { 0 };
	uv_connect_t req;
	req.data = &st;
	size_t before = f->npeers;
	cr_assert_eq(uv_tcp_connect(&req, &bc->tcp, (const struct sockaddr *)&f->b->sa, on_connect), 0);
	RUN_UNTIL(f, st.done && f->npeers == before + 1);
	cr_assert_eq(st.status, 0, "connect: %s", uv_strerror(st.status));
	return bc;
}

static void user_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct user *u = backend_conn_from(h)->owner;
	(void)suggested;
	cr_assert_not_null(u, "a read of an idle connection reached the user");
	buf->base = u->buf + u->n;
	buf->len = sizeof(u->buf) - u->n;
}

static void user_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct user *u = backend_conn_from((uv_handle_t *)s)->owner;
	(void)buf;
	cr_assert_not_null(u, "a read of an idle connection reached the user");
	if (nread > 0)
		u->n += (size_t)nread;
	else if (nread < 0)
		u->err = nread;
}

static void client_send(struct backend_conn *bc, const char *s)
{
	uv_buf_t b = uv_buf_init((char *)s, (unsigned)strlen(s));
	cr_assert_eq(uv_try_write((uv_stream_t *)&bc->tcp, &b, 1), (int)strlen(s));
}

/* --- tests -------------------------------------------------------------- */

Test(upstream, put_then_take_is_the_same_connection_most_recent_first, .timeout = 10)
{
	struct fixture f;
	setup(&f);
	struct user ux = { 0 }, uy = { 0 };
	struct backend_conn *x = connect_one(&f), *y = connect_one(&f);
	struct backend_conn *const x0 = x, *const y0 = y;
	cr_assert_eq(backend_conn_use(x, &ux, user_alloc, user_read), 0);
	cr_assert_eq(backend_conn_use(y, &uy, user_alloc, user_read), 0);
	cr_assert_null(backend_conn_take(f.b), "nothing is idle yet");

	/* A request and its response on x, while in use. */
	client_send(x, "ping");
	peer_send(&f.peers[0], "pong");
	RUN_UNTIL(&f, ux.n == 4 && f.peers[0].n == 4);
	cr_assert_arr_eq(ux.buf, "pong", 4, "reads in use go to the user's callbacks");
	cr_assert_arr_eq(f.peers[0].buf, "ping", 4);

	backend_conn_put(&x, 100);
	cr_assert_null(x, "put consumes the caller's pointer");
	backend_conn_put(&y, 200);
	cr_assert_null(y);
	cr_assert_eq(f.b->nidle, 2);
	cr_assert_eq(f.b->idle, y0);

	run_for(&f, 50);	/* idle connections stay open while nothing happens */
	cr_assert_eq(f.b->nidle, 2);
	cr_assert_not(f.peers[0].eof || f.peers[1].eof);

	struct backend_conn *t1 = backend_conn_take(f.b);
	struct backend_conn *t2 = backend_conn_take(f.b);
	cr_assert_eq(t1, y0, "the connection put back last is taken first");
	cr_assert_eq(t2, x0);
	cr_assert_null(backend_conn_take(f.b));
	cr_assert_eq(f.b->nidle, 0);
	cr_assert_null(f.b->idle);

	/* The taken connection still works: the same socket, the same peer. */
	struct user u2 = { 0 };
	cr_assert_eq(backend_conn_use(t2, &u2, user_alloc, user_read), 0);
	client_send(t2, "again");
	peer_send(&f.peers[0], "reply");
	RUN_UNTIL(&f, u2.n == 5 && f.peers[0].n == 9);
	cr_assert_arr_eq(u2.buf, "reply", 5);
	cr_assert_arr_eq(f.peers[0].buf + 4, "again", 5);
	cr_assert_eq(ux.n, 4, "the previous user hears nothing more");
	cr_assert_eq(f.b->connects, 2, "reuse opens no connection");

	backend_conn_close(&t1);
	cr_assert_null(t1, "close consumes the caller's pointer");
	backend_conn_close(&t2);
	RUN_UNTIL(&f, f.peers[0].eof && f.peers[1].eof);
	teardown(&f);
}

Test(upstream, idle_connection_closed_by_the_server_leaves_the_list, .timeout = 10)
{
	struct fixture f;
	setup(&f);
	struct user u = { 0 };
	struct backend_conn *x = connect_one(&f), *y = connect_one(&f);
	struct backend_conn *const y0 = y;
	cr_assert_eq(backend_conn_use(x, &u, user_alloc, user_read), 0);
	cr_assert_eq(backend_conn_use(y, &u, user_alloc, user_read), 0);
	backend_conn_put(&y, 100);
	backend_conn_put(&x, 200);	/* x is the head of the list */
	cr_assert_eq(f.b->nidle, 2);

	peer_close(&f.peers[0]);	/* the server times x out */
	RUN_UNTIL(&f, f.b->nidle == 1);
	cr_assert_eq(f.b->idle, y0, "only the live connection is left");
	cr_assert_null(y0->next);
	cr_assert_null(y0->prev);
	cr_assert_eq(u.err, 0, "an idle connection's end never reaches its last user");

	struct backend_conn *t = backend_conn_take(f.b);
	cr_assert_eq(t, y0, "the dead connection is never handed out");
	cr_assert_null(backend_conn_take(f.b));
	backend_conn_put(&t, 300);
	teardown(&f);
}

Test(upstream, idle_connection_that_receives_data_is_closed, .timeout = 10)
{
	struct fixture f;
	setup(&f);
	struct user u = { 0 };
	struct backend_conn *x = connect_one(&f);
	cr_assert_eq(backend_conn_use(x, &u, user_alloc, user_read), 0);
	backend_conn_put(&x, 100);
	/* Bytes nobody asked for: the connection is out of step and must go. */
	peer_send(&f.peers[0], "HTTP/1.1 408 Request Timeout\r\n\r\n");
	RUN_UNTIL(&f, f.b->nidle == 0);
	cr_assert_null(f.b->idle);
	RUN_UNTIL(&f, f.peers[0].eof);	/* and the socket is really closed */
	cr_assert_eq(u.n, 0, "the stray bytes never reach the last user");
	teardown(&f);
}

Test(upstream, close_idle_closes_old_connections_and_keeps_young_ones, .timeout = 10)
{
	struct fixture f;
	setup(&f);
	struct user u = { 0 };
	struct backend_conn *c[3], *young = NULL;
	for (int i = 0; i < 3; i++) {
		c[i] = connect_one(&f);
		cr_assert_eq(backend_conn_use(c[i], &u, user_alloc, user_read), 0);
	}
	young = c[2];
	for (int i = 0; i < 3; i++)
		backend_conn_put(&c[i], 1000 * (uint64_t)(i + 1));	/* idle since 1000, 2000, 3000 */
	cr_assert_eq(f.b->nidle, 3);

	backend_set_close_idle(&f.set, 3000, 5000);
	cr_assert_eq(f.b->nidle, 3, "nothing is older than the limit yet");

	/* At 5000 with a 2500 ms limit: idle for 4000 and 3000 close, 2000 stays. */
	backend_set_close_idle(&f.set, 5000, 2500);
	cr_assert_eq(f.b->nidle, 1);
	cr_assert_eq(f.b->idle, young);
	RUN_UNTIL(&f, f.peers[0].eof && f.peers[1].eof);
	run_for(&f, 50);
	cr_assert_not(f.peers[2].eof, "the young connection stays open");

	struct backend_conn *t = backend_conn_take(f.b);
	cr_assert_eq(t, young);
	backend_conn_put(&t, 5000);

	/* A limit of 0 closes them all (shutdown). */
	backend_set_close_idle(&f.set, 5000, 0);
	cr_assert_eq(f.b->nidle, 0);
	cr_assert_null(f.b->idle);
	RUN_UNTIL(&f, f.peers[2].eof);
	teardown(&f);
}

Test(upstream, close_of_an_idle_connection_unlinks_it, .timeout = 10)
{
	struct fixture f;
	setup(&f);
	struct user u = { 0 };
	struct backend_conn *c[3], *mid;
	for (int i = 0; i < 3; i++) {
		c[i] = connect_one(&f);
		cr_assert_eq(backend_conn_use(c[i], &u, user_alloc, user_read), 0);
	}
	struct backend_conn *const first = c[0], *const last = c[2];
	mid = c[1];
	for (int i = 0; i < 3; i++)
		backend_conn_put(&c[i], 100 + (uint64_t)i);
	backend_conn_close(&mid);	/* from the middle of the list */
	cr_assert_eq(f.b->nidle, 2);
	cr_assert_eq(backend_conn_take(f.b), last);
	cr_assert_eq(backend_conn_take(f.b), first);
	cr_assert_null(backend_conn_take(f.b));
	RUN_UNTIL(&f, f.peers[1].eof);
	struct backend_conn *a = first, *b = last;
	backend_conn_close(&a);
	backend_conn_close(&b);
	teardown(&f);
}

Test(upstream, in_use_connection_end_goes_to_the_user, .timeout = 10)
{
	struct fixture f;
	setup(&f);
	struct user u = { 0 };
	struct backend_conn *x = connect_one(&f);
	cr_assert_eq(backend_conn_use(x, &u, user_alloc, user_read), 0);
	peer_send(&f.peers[0], "partial");
	peer_close(&f.peers[0]);
	RUN_UNTIL(&f, u.err != 0);
	cr_assert_eq(u.n, 7);
	cr_assert_eq(u.err, UV_EOF);
	/* The user still owns the connection and decides when it goes. */
	cr_assert_eq(backend_conn_from((uv_handle_t *)&x->tcp), x);
	cr_assert_eq(x->owner, &u);
	cr_assert_eq(f.b->nidle, 0);
	backend_conn_close(&x);
	teardown(&f);
}

Test(upstream, pause_holds_reads_until_resume, .timeout = 10)
{
	struct fixture f;
	setup(&f);
	struct user u = { 0 };
	struct backend_conn *x = connect_one(&f);
	cr_assert_eq(backend_conn_use(x, &u, user_alloc, user_read), 0);
	backend_conn_pause(x);
	peer_send(&f.peers[0], "abc");
	run_for(&f, 100);
	cr_assert_eq(u.n, 0, "a paused connection delivers nothing");
	cr_assert_eq(backend_conn_resume(x), 0);
	RUN_UNTIL(&f, u.n == 3);
	cr_assert_arr_eq(u.buf, "abc", 3);

	/* Put back while paused, it is watched again while idle. */
	backend_conn_pause(x);
	backend_conn_put(&x, 100);
	cr_assert_eq(f.b->nidle, 1);
	peer_close(&f.peers[0]);
	RUN_UNTIL(&f, f.b->nidle == 0);
	teardown(&f);
}

Test(upstream, close_null_is_a_noop_and_unconnected_close_frees, .timeout = 10)
{
	struct fixture f;
	setup(&f);
	struct backend_conn *bc = NULL;
	backend_conn_close(&bc);
	cr_assert_null(bc);

	/* Created but never connected (the connect could not start): the
	 * close alone must release it, or the loop cannot close. */
	cr_assert_eq(backend_conn_create(&f.loop, f.b, &bc), 0);
	cr_assert_eq(f.b->connects, 1);
	backend_conn_close(&bc);
	cr_assert_null(bc);
	backend_conn_close(&bc);	/* and closing the emptied pointer again is harmless */
	cr_assert_eq(f.b->nidle, 0);
	teardown(&f);
}
