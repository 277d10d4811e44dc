/*
 * fleet.c - which backends each pool has; see fleet.h.
 *
 * c-ares runs on the server's loop the way its documentation describes for
 * an external event loop: it reports each socket it wants watched
 * (sock_state_cb), one uv_poll per socket feeds ares_process_fd(), and one
 * timer wakes it for its own timeouts.  Each discovering pool has a refresh
 * timer; at most one lookup per pool is out at a time.  An answer is
 * applied only if it belongs to the pool's current discovery (`epoch`): a
 * reload that changes the name drops the answers to the old one.
 *
 * The same channel counts the sluice replicas when `replicas: { dns }` is
 * set: one more lookup, of the gateway's own headless Service, with its own
 * timer and epoch (struct fleet_self); the number of distinct addresses it
 * answers is N, and every backend's slots are split over N at once
 * (backend_set_replicas()).  A failed or empty answer keeps the last N.
 *
 * Each pool's state is a heap object, matched by name across reloads like
 * its backend_pool.  A pool that a reload removes stops its timer and is
 * freed once the timer is closed and no lookup of its is out (`out`: a
 * lookup's callback always comes, with ARES_EDESTRUCTION at the latest).
 */
#include <ares.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/dispatch.h"
#include "gateway/fleet.h"
#include "gateway/log.h"
#include "gateway/server.h"
#include "gateway/slot.h"

#define FLEET_MAGIC 0x464c4554u		/* "FLET" */
#define FLEET_SOCK_MAGIC 0x46534f43u	/* "FSOC" */
#define FLEET_POOL_MAGIC 0x46504f4cu	/* "FPOL" */
/* A pool takes at most this many addresses from one answer; more is logged. */
#define FLEET_MAX_FOUND 256
#define LOOKUP_TIMEOUT_MS 2000
#define LOOKUP_TRIES 2

struct gw_fleet;

struct fleet_sock {
	uint32_t magic;
	uv_poll_t poll;
	ares_socket_t fd;
	struct gw_fleet *fleet;
	struct fleet_sock *next;
};

struct fleet_pool {
	uint32_t magic;
	struct gw_fleet *fleet;
	size_t index;
	uv_timer_t refresh;
	uint64_t epoch;			/* bumped when the pool's discovery restarts */
	bool looking;			/* a lookup is out */
	bool found_once;		/* members found later ramp up (slow start) */
	bool failing;			/* the last lookup failed (logged once per run of failures) */
	bool removed;			/* a reload removed the pool: waiting to be freed */
	bool timer_closed;
	unsigned out;			/* lookups out, current or not */
	struct gw_fleet_stats stats;
};

/* One lookup in flight: freed by its callback, which c-ares always calls
 * (with ARES_EDESTRUCTION when the channel goes). */
struct lookup {
	struct fleet_pool *fp;
	uint64_t epoch;
};

/* The count of replicas from DNS.  Part of the fleet: it lives as long as
 * the fleet, and its lookups are cancelled (their callbacks run) when the
 * channel is destroyed, before the fleet is freed. */
struct fleet_self {
	uv_timer_t refresh;
	uint64_t epoch;
	bool looking;
	bool failing;
	struct gw_fleet_stats stats;
};

struct gw_fleet {
	uint32_t magic;
	struct gw_server *srv;
	ares_channel channel;		/* NULL when no pool discovers */
	char *resolvers;		/* the channel's servers, as configured */
	uv_timer_t ares_timer;
	struct fleet_sock *socks;
	struct fleet_pool **pools;	/* [npools], as conf.pools */
	size_t npools;
	struct fleet_self self;
	bool closed;
};

static struct gw_fleet *fleet_of(const struct gw_server *srv)
{
	struct gw_fleet *f = srv->fleet;
	if (f == NULL || f->magic != FLEET_MAGIC)
		abort();
	return f;
}

/* ---- members -------------------------------------------------------------- */

static bool same_sa(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
	}
	const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
	return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

/*
 * Make p's members exactly addrs[0..n), each with `slots` slots (or its
 * own from the static list when `cp_static`).  New ones ramp up over
 * ramp_ms.  Logs each change.  Returns whether anything changed.
 */
static bool set_members(struct gw_server *srv, struct backend_pool *p, const struct conf_pool *cp,
			const struct sockaddr_storage *addrs, const unsigned *slots, size_t n, uint64_t ramp_ms)
{
	bool changed = false;
	/* Retire first, so that the adds below see only members that stay. */
	for (size_t i = p->nbackends; i-- > 0;) {
		struct backend *b = p->backends[i];
		size_t j = 0;
		while (j < n && !same_sa(&b->sa, &addrs[j]))
			j++;
		if (j < n)
			continue;
		gw_info("pool '%s': backend %s removed (%u requests in flight finish)", cp->name, b->name,
			b->inflight);
		backend_pool_retire(b);
		changed = true;
	}
	for (size_t j = 0; j < n; j++) {
		struct backend *b = backend_pool_find(p, (const struct sockaddr *)&addrs[j]);
		if (b != NULL) {
			if (b->total != slots[j]) {
				gw_info("pool '%s': backend %s max_inflight %u -> %u", cp->name, b->name,
					b->total, slots[j]);
				backend_set_slots(b, slots[j]);
				changed = true;
			}
			continue;
		}
		if (backend_pool_add(p, (const struct sockaddr *)&addrs[j], slots[j], gw_now_ms(srv), ramp_ms,
				     &b) < 0) {
			gw_error("pool '%s': a backend not added: out of memory", cp->name);
			continue;
		}
		char share[48] = "";
		if (b->max_inflight != b->total)
			snprintf(share, sizeof(share), ", %u for this replica", b->max_inflight);
		gw_info("pool '%s': backend %s added (%u slots%s%s)", cp->name, b->name, slots[j], share,
			ramp_ms ? ", slow start" : "");
		changed = true;
	}
	return changed;
}

/* The queues learn the new slot counts; new slots may start queued work. */
static void members_changed(struct gw_server *srv)
{
	gw__slot_sync_pools(srv);
	gw__dispatch_kick(srv);
}

/* The static list of cp, as a member set. */
static void apply_static(struct gw_server *srv, struct backend_pool *p, const struct conf_pool *cp, bool ramp)
{
	struct sockaddr_storage *addrs = calloc(cp->nbackends ? cp->nbackends : 1, sizeof(*addrs));
	unsigned *slots = calloc(cp->nbackends ? cp->nbackends : 1, sizeof(*slots));
	if (addrs == NULL || slots == NULL) {
		gw_error("pool '%s': backends not updated: out of memory", cp->name);
	} else {
		for (size_t j = 0; j < cp->nbackends; j++) {
			memcpy(&addrs[j], &cp->backends[j].addr.sa, sizeof(addrs[j]));
			slots[j] = cp->backends[j].max_inflight;
		}
		set_members(srv, p, cp, addrs, slots, cp->nbackends, ramp ? cp->backend_defaults.slow_start_ms : 0);
	}
	free(addrs);
	free(slots);
}

/* ---- c-ares on the loop ----------------------------------------------------- */

static void ares_timer_rearm(struct gw_fleet *f);

static void on_sock_closed(uv_handle_t *h)
{
	struct fleet_sock *s = h->data;
	if (s == NULL || s->magic != FLEET_SOCK_MAGIC)
		abort();
	s->magic = 0;
	free(s);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct fleet_sock *s = h->data;
	if (s == NULL || s->magic != FLEET_SOCK_MAGIC)
		abort();
	struct gw_fleet *f = s->fleet;
	ares_socket_t fd = s->fd;
	/* An error on the socket: let c-ares read it and notice. */
	bool rd = status < 0 || (events & UV_READABLE), wr = status >= 0 && (events & UV_WRITABLE);
	ares_process_fd(f->channel, rd ? fd : ARES_SOCKET_BAD, wr ? fd : ARES_SOCKET_BAD);
	ares_timer_rearm(f);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct gw_fleet *f = data;
	struct fleet_sock **pp = &f->socks, *s;
	while ((s = *pp) != NULL && s->fd != fd)
		pp = &s->next;
	if (!readable && !writable) {
		if (s != NULL) {
			*pp = s->next;
			uv_close((uv_handle_t *)&s->poll, on_sock_closed);
		}
		return;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL || uv_poll_init_socket(f->srv->loop, &s->poll, fd) < 0) {
			/* c-ares times the query out; the lookup fails and is retried. */
			gw_error("discovery: cannot watch a DNS socket");
			free(s);
			return;
		}
		s->magic = FLEET_SOCK_MAGIC;
		s->fd = fd;
		s->fleet = f;
		s->poll.data = s;
		s->next = f->socks;
		f->socks = s;
	}
	uv_poll_start(&s->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

static void on_ares_timer(uv_timer_t *t)
{
	struct gw_fleet *f = t->data;
	ares_process_fd(f->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	ares_timer_rearm(f);
}

static void ares_timer_rearm(struct gw_fleet *f)
{
	struct timeval tv, *tvp = f->channel ? ares_timeout(f->channel, NULL, &tv) : NULL;
	if (tvp == NULL || f->closed) {
		uv_timer_stop(&f->ares_timer);
		return;
	}
	uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)tvp->tv_usec / 1000;
	uv_timer_start(&f->ares_timer, on_ares_timer, ms ? ms : 1, 0);
}

static int channel_open(struct gw_fleet *f, const char *resolvers)
{
	struct ares_options o = {
		.sock_state_cb = on_sock_state,
		.sock_state_cb_data = f,
		.timeout = LOOKUP_TIMEOUT_MS,
		.tries = LOOKUP_TRIES,
	};
	int rc = ares_init_options(&f->channel, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc == ARES_SUCCESS && resolvers != NULL)
		rc = ares_set_servers_ports_csv(f->channel, resolvers);
	if (rc != ARES_SUCCESS) {
		gw_error("discovery: cannot set up the resolver: %s", ares_strerror(rc));
		if (f->channel != NULL)
			ares_destroy(f->channel);
		f->channel = NULL;
		return -EIO;
	}
	free(f->resolvers);
	f->resolvers = resolvers ? strdup(resolvers) : NULL;
	return 0;
}

/* Cancels every lookup out (their callbacks run, with ARES_EDESTRUCTION). */
static void channel_close(struct gw_fleet *f)
{
	if (f->channel == NULL)
		return;
	ares_destroy(f->channel);
	f->channel = NULL;
	uv_timer_stop(&f->ares_timer);
}

/* ---- lookups --------------------------------------------------------------------- */

static void schedule(struct fleet_pool *fp, uint64_t ms);

static void lookup_failed(struct fleet_pool *fp, const struct conf_pool *cp, const char *why)
{
	fp->stats.lookups_failed++;
	fp->stats.last_error = why;
	if (!fp->failing)
		gw_warn("pool '%s': discovery of %s:%u failed (%s); keeping its %zu backends", cp->name,
			cp->discovery.dns_host, cp->discovery.dns_port, why, fp->fleet->srv->backends.pools[fp->index]->nbackends);
	fp->failing = true;
}

static void fleet_pool_maybe_free(struct fleet_pool *fp)
{
	if (!fp->removed || !fp->timer_closed || fp->out > 0)
		return;
	fp->magic = 0;
	free(fp);
}

static void on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct lookup *lk = arg;
	struct fleet_pool *fp = lk->fp;
	bool current = lk->epoch == fp->epoch;
	free(lk);
	fp->out--;
	if (fp->removed) {
		ares_freeaddrinfo(ai);
		fleet_pool_maybe_free(fp);
		return;
	}
	if (status == ARES_EDESTRUCTION || !current) {
		if (current)
			fp->looking = false;
		ares_freeaddrinfo(ai);
		return;
	}
	fp->looking = false;
	struct gw_server *srv = fp->fleet->srv;
	const struct conf_pool *cp = &srv->conf->pools[fp->index];
	if (cp->discovery.dns_host == NULL) {	/* discovery was turned off meanwhile */
		ares_freeaddrinfo(ai);
		return;
	}
	struct sockaddr_storage found[FLEET_MAX_FOUND];
	unsigned slots[FLEET_MAX_FOUND];
	size_t n = 0, more = 0;
	for (struct ares_addrinfo_node *a = status == ARES_SUCCESS && ai ? ai->nodes : NULL; a; a = a->ai_next) {
		struct sockaddr_storage ss = { 0 };
		if (a->ai_family == AF_INET) {
			memcpy(&ss, a->ai_addr, sizeof(struct sockaddr_in));
			((struct sockaddr_in *)&ss)->sin_port = htons(cp->discovery.dns_port);
		} else if (a->ai_family == AF_INET6) {
			memcpy(&ss, a->ai_addr, sizeof(struct sockaddr_in6));
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(cp->discovery.dns_port);
		} else {
			continue;
		}
		size_t j = 0;
		while (j < n && !same_sa(&found[j], &ss))
			j++;
		if (j < n)
			continue;
		if (n == FLEET_MAX_FOUND) {
			more++;
			continue;
		}
		found[n] = ss;
		slots[n++] = cp->backend_defaults.max_inflight;
	}
	ares_freeaddrinfo(ai);
	if (status != ARES_SUCCESS || n == 0) {
		lookup_failed(fp, cp, status != ARES_SUCCESS ? ares_strerror(status) : "no addresses");
	} else {
		if (fp->failing)
			gw_info("pool '%s': discovery of %s:%u works again (%zu addresses)", cp->name, cp->discovery.dns_host,
				cp->discovery.dns_port, n);
		if (more > 0)
			gw_warn("pool '%s': %s lists %zu more addresses than the %d a pool takes", cp->name,
				cp->discovery.dns_host, more, FLEET_MAX_FOUND);
		fp->failing = false;
		fp->stats.lookups_ok++;
		fp->stats.last_error = NULL;
		struct backend_pool *p = srv->backends.pools[fp->index];
		if (set_members(srv, p, cp, found, slots, n, fp->found_once ? cp->backend_defaults.slow_start_ms : 0))
			members_changed(srv);
		fp->found_once = true;
	}
	(void)timeouts;
	schedule(fp, cp->discovery.refresh_ms);
}

static void on_refresh(uv_timer_t *t)
{
	struct fleet_pool *fp = t->data;
	if (fp == NULL || fp->magic != FLEET_POOL_MAGIC)
		abort();
	struct gw_fleet *f = fp->fleet;
	const struct conf_pool *cp = &f->srv->conf->pools[fp->index];
	if (fp->removed || cp->discovery.dns_host == NULL || fp->looking || f->channel == NULL || f->closed)
		return;
	struct lookup *lk = malloc(sizeof(*lk));
	if (lk == NULL) {
		lookup_failed(fp, cp, "out of memory");
		schedule(fp, cp->discovery.refresh_ms);
		return;
	}
	*lk = (struct lookup){ .fp = fp, .epoch = fp->epoch };
	struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	fp->looking = true;
	fp->out++;
	/* May answer before returning (a name in /etc/hosts): on_answer only
	 * updates members and re-arms this timer, which is safe here. */
	ares_getaddrinfo(f->channel, cp->discovery.dns_host, NULL, &hints, on_answer, lk);
	ares_timer_rearm(f);
}

static void schedule(struct fleet_pool *fp, uint64_t ms)
{
	if (!fp->fleet->closed && !fp->removed)
		uv_timer_start(&fp->refresh, on_refresh, ms, 0);
}

/* Forget what is out for this pool and look it up again now. */
static void restart(struct fleet_pool *fp)
{
	fp->epoch++;
	fp->looking = false;
	fp->failing = false;
	schedule(fp, 0);
}

/* ---- the count of replicas ------------------------------------------------------ */

static void on_self_refresh(uv_timer_t *t);

static void self_schedule(struct gw_fleet *f, uint64_t ms)
{
	if (!f->closed)
		uv_timer_start(&f->self.refresh, on_self_refresh, ms, 0);
}

/* N changes for every backend at once.  Returns whether it changed; the
 * caller tells the queues (a reload does once it has rebuilt them). */
static bool replicas_set(struct gw_server *srv, unsigned n, const char *why)
{
	unsigned was = srv->backends.replicas;
	if (n == was)
		return false;
	gw_info("replicas: %u -> %u (%s): each backend's max_inflight is split %u ways", was, n, why, n);
	backend_set_replicas(&srv->backends, n);
	return true;
}

struct self_lookup {
	struct gw_fleet *f;
	uint64_t epoch;
};

static void on_self_answer(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct self_lookup *lk = arg;
	struct gw_fleet *f = lk->f;
	struct fleet_self *fs = &f->self;
	bool current = lk->epoch == fs->epoch;
	free(lk);
	(void)timeouts;
	if (status == ARES_EDESTRUCTION || !current) {
		if (current)
			fs->looking = false;
		ares_freeaddrinfo(ai);
		return;
	}
	fs->looking = false;
	struct gw_server *srv = f->srv;
	const struct conf_replicas *r = &srv->conf->replicas;
	if (r->dns_host == NULL) {
		ares_freeaddrinfo(ai);
		return;
	}
	/* Distinct addresses, whatever the port: one per replica. */
	struct sockaddr_storage found[CONF_REPLICAS_MAX];
	size_t n = 0;
	for (struct ares_addrinfo_node *a = status == ARES_SUCCESS && ai ? ai->nodes : NULL; a; a = a->ai_next) {
		struct sockaddr_storage ss = { 0 };
		if (a->ai_family == AF_INET)
			memcpy(&ss, a->ai_addr, sizeof(struct sockaddr_in));
		else if (a->ai_family == AF_INET6)
			memcpy(&ss, a->ai_addr, sizeof(struct sockaddr_in6));
		else
			continue;
		size_t j = 0;
		while (j < n && !same_sa(&found[j], &ss))
			j++;
		if (j == n && n < CONF_REPLICAS_MAX)
			found[n++] = ss;
	}
	ares_freeaddrinfo(ai);
	if (status != ARES_SUCCESS || n == 0) {
		fs->stats.lookups_failed++;
		fs->stats.last_error = status != ARES_SUCCESS ? ares_strerror(status) : "no addresses";
		if (!fs->failing)
			gw_warn("replicas: lookup of %s failed (%s); keeping %u replicas", r->dns_host,
				fs->stats.last_error, srv->backends.replicas);
		fs->failing = true;
	} else {
		if (fs->failing)
			gw_info("replicas: lookup of %s works again (%zu addresses)", r->dns_host, n);
		fs->failing = false;
		fs->stats.lookups_ok++;
		fs->stats.last_error = NULL;
		if (replicas_set(srv, (unsigned)n, r->dns_host))
			members_changed(srv);
	}
	self_schedule(f, r->refresh_ms);
}

static void on_self_refresh(uv_timer_t *t)
{
	struct gw_fleet *f = t->data;
	if (f == NULL || f->magic != FLEET_MAGIC)
		abort();
	const struct conf_replicas *r = &f->srv->conf->replicas;
	if (r->dns_host == NULL || f->self.looking || f->channel == NULL || f->closed)
		return;
	struct self_lookup *lk = malloc(sizeof(*lk));
	if (lk == NULL) {
		f->self.stats.lookups_failed++;
		f->self.stats.last_error = "out of memory";
		self_schedule(f, r->refresh_ms);
		return;
	}
	*lk = (struct self_lookup){ .f = f, .epoch = f->self.epoch };
	struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	f->self.looking = true;
	ares_getaddrinfo(f->channel, r->dns_host, NULL, &hints, on_self_answer, lk);
	ares_timer_rearm(f);
}

/* ---- the server's view -------------------------------------------------------------- */

static bool any_discovery(const struct conf *c)
{
	if (c->replicas.dns_host != NULL)
		return true;
	for (size_t i = 0; i < c->npools; i++)
		if (c->pools[i].discovery.dns_host != NULL)
			return true;
	return false;
}

/* Its timer is set up by fleet_pool_start() (on the loop, cannot fail). */
static struct fleet_pool *fleet_pool_create(struct gw_fleet *f)
{
	struct fleet_pool *fp = calloc(1, sizeof(*fp));
	if (fp != NULL)
		*fp = (struct fleet_pool){ .magic = FLEET_POOL_MAGIC, .fleet = f };
	return fp;
}

static void fleet_pool_start(struct fleet_pool *fp, size_t index)
{
	fp->index = index;
	uv_timer_init(fp->fleet->srv->loop, &fp->refresh);
	fp->refresh.data = fp;
}

int gw__fleet_init(struct gw_server *srv)
{
	const struct conf *c = srv->conf;
	struct gw_fleet *f = calloc(1, sizeof(*f));
	if (f == NULL || (f->pools = calloc(c->npools ? c->npools : 1, sizeof(*f->pools))) == NULL) {
		free(f);
		return -ENOMEM;
	}
	f->magic = FLEET_MAGIC;
	f->srv = srv;
	f->npools = c->npools;
	for (size_t i = 0; i < c->npools; i++) {
		if ((f->pools[i] = fleet_pool_create(f)) == NULL) {
			gw__fleet_destroy(&f);
			return -ENOMEM;
		}
	}
	srv->fleet = f;
	uv_timer_init(srv->loop, &f->ares_timer);
	f->ares_timer.data = f;
	uv_timer_init(srv->loop, &f->self.refresh);
	f->self.refresh.data = f;
	for (size_t i = 0; i < f->npools; i++)
		fleet_pool_start(f->pools[i], i);
	if (srv->backends.replicas > 1)
		gw_info("replicas: %u (replicas.count): each backend's max_inflight is split %u ways",
			srv->backends.replicas, srv->backends.replicas);
	/* Without a resolver the pools keep no members until a reload sets
	 * one up; the gateway still serves its static pools. */
	if (!any_discovery(c) || channel_open(f, c->resolvers) < 0)
		return 0;
	for (size_t i = 0; i < f->npools; i++)
		if (c->pools[i].discovery.dns_host != NULL)
			schedule(f->pools[i], 0);
	if (c->replicas.dns_host != NULL)
		self_schedule(f, 0);
	return 0;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int gw__fleet_prepare(const struct gw_server *srv, const struct conf *c, const size_t *from,
		      struct gw_fleet_next *next)
{
	struct gw_fleet *f = fleet_of(srv);
	next->n = c->npools;
	next->v = calloc(c->npools ? c->npools : 1, sizeof(*next->v));
	next->fresh = calloc(c->npools ? c->npools : 1, sizeof(*next->fresh));
	bool ok = next->v != NULL && next->fresh != NULL;
	for (size_t i = 0; ok && i < c->npools; i++) {
		if (from[i] != CONF_POOL_NEW)
			next->v[i] = f->pools[from[i]];
		else
			ok = (next->v[i] = next->fresh[i] = fleet_pool_create(f)) != NULL;
	}
	if (!ok) {
		gw__fleet_discard(next);
		return -ENOMEM;
	}
	return 0;
}

void gw__fleet_discard(struct gw_fleet_next *next)
{
	for (size_t i = 0; next->fresh != NULL && i < next->n; i++)
		free(next->fresh[i]);
	free(next->fresh);
	free(next->v);
	memset(next, 0, sizeof(*next));
}

static void on_fleet_pool_closed(uv_handle_t *h)
{
	struct fleet_pool *fp = h->data;
	if (fp == NULL || fp->magic != FLEET_POOL_MAGIC)
		abort();
	fp->timer_closed = true;
	fleet_pool_maybe_free(fp);
}

void gw__fleet_reload(struct gw_server *srv, const struct conf *c, const size_t *from, struct gw_fleet_next *next)
{
	struct gw_fleet *f = fleet_of(srv);
	const struct conf *old = srv->conf;
	/* The pools a reload removed stop now; their state goes once libuv
	 * and c-ares are done with it (an answer still out is dropped). */
	bool kept[CONF_POOLS_MAX] = { false };
	for (size_t i = 0; i < next->n; i++)
		if (from[i] != CONF_POOL_NEW)
			kept[from[i]] = true;
	for (size_t i = 0; i < f->npools; i++) {
		struct fleet_pool *fp = f->pools[i];
		if (kept[i])
			continue;
		fp->removed = true;
		fp->epoch++;
		uv_timer_stop(&fp->refresh);
		if (f->closed) {
			fp->timer_closed = true;	/* closed with the fleet already */
			fleet_pool_maybe_free(fp);
		} else {
			uv_close((uv_handle_t *)&fp->refresh, on_fleet_pool_closed);
		}
	}
	free(f->pools);
	f->pools = next->v;
	f->npools = next->n;
	for (size_t i = 0; i < f->npools; i++) {
		if (next->fresh[i] != NULL)
			fleet_pool_start(f->pools[i], i);
		else
			f->pools[i]->index = i;
	}
	free(next->fresh);
	memset(next, 0, sizeof(*next));
	/* New resolvers: a new channel; every discovering pool starts over. */
	bool reopen = any_discovery(c) && (f->channel == NULL || !same_str(f->resolvers, c->resolvers));
	if (reopen || !any_discovery(c))
		channel_close(f);
	if (reopen && channel_open(f, c->resolvers) < 0)
		gw_warn("discovery stops until a reload sets up its resolver");
	/* The count of replicas first, so that members added below take
	 * their share of the new N.  From dns, N stays as it is until the
	 * new name answers. */
	const struct conf_replicas *r = &c->replicas, *rwas = &old->replicas;
	if (r->dns_host == NULL) {
		f->self.epoch++;
		f->self.looking = false;
		f->self.failing = false;
		uv_timer_stop(&f->self.refresh);
		(void)replicas_set(srv, r->count, "replicas.count");
	} else if (reopen || rwas->dns_host == NULL || strcmp(r->dns_host, rwas->dns_host) != 0 ||
		   r->refresh_ms != rwas->refresh_ms) {
		f->self.epoch++;
		f->self.looking = false;
		f->self.failing = false;
		self_schedule(f, 0);
	}
	for (size_t i = 0; i < f->npools; i++) {
		struct fleet_pool *fp = f->pools[i];
		const struct conf_pool *cp = &c->pools[i];
		/* A new pool: no source before, and its first members take all
		 * their slots at once, as at start (nothing ran there to protect). */
		const struct conf_pool *was = from[i] != CONF_POOL_NEW ? &old->pools[from[i]] : NULL;
		struct backend_pool *p = srv->backends.pools[i];
		if (cp->discovery.dns_host == NULL) {
			fp->epoch++;	/* an answer still out is for the old source */
			fp->looking = false;
			uv_timer_stop(&fp->refresh);
			apply_static(srv, p, cp, was != NULL);
			continue;
		}
		/* Discovered members take the new default slots at once. */
		for (size_t j = 0; j < p->nbackends; j++)
			backend_set_slots(p->backends[j], cp->backend_defaults.max_inflight);
		if (was == NULL) {
			restart(fp);
		} else if (reopen || !same_str(cp->discovery.dns_host, was->discovery.dns_host) ||
			   cp->discovery.dns_port != was->discovery.dns_port ||
			   cp->discovery.refresh_ms != was->discovery.refresh_ms) {
			if (was->discovery.dns_host == NULL)
				fp->found_once = true;	/* the static members were serving */
			restart(fp);
		}
	}
}

static void on_closed_noop(uv_handle_t *h)
{
	(void)h;
}

void gw__fleet_close(struct gw_server *srv)
{
	struct gw_fleet *f = fleet_of(srv);
	if (f->closed)
		return;
	f->closed = true;
	channel_close(f);	/* closes its sockets through on_sock_state */
	uv_close((uv_handle_t *)&f->ares_timer, on_closed_noop);
	uv_close((uv_handle_t *)&f->self.refresh, on_closed_noop);
	for (size_t i = 0; i < f->npools; i++)
		uv_close((uv_handle_t *)&f->pools[i]->refresh, on_closed_noop);
}

void gw__fleet_destroy(struct gw_fleet **fp)
{
	struct gw_fleet *f = *fp;
	*fp = NULL;
	if (f == NULL)
		return;
	channel_close(f);
	free(f->resolvers);
	for (size_t i = 0; f->pools != NULL && i < f->npools; i++) {
		if (f->pools[i] != NULL)
			f->pools[i]->magic = 0;
		free(f->pools[i]);
	}
	free(f->pools);
	f->magic = 0;
	free(f);
}

const struct gw_fleet_stats *gw__fleet_stats(const struct gw_server *srv, size_t p)
{
	const struct gw_fleet *f = srv->fleet;
	if (f == NULL || p >= f->npools || srv->conf->pools[p].discovery.dns_host == NULL)
		return NULL;
	return &f->pools[p]->stats;
}

const struct gw_fleet_stats *gw__fleet_replica_stats(const struct gw_server *srv)
{
	const struct gw_fleet *f = srv->fleet;
	if (f == NULL || srv->conf->replicas.dns_host == NULL)
		return NULL;
	return &f->self.stats;
}
