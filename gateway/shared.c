/*
 * shared.c - shared limits over one hiredis connection; see shared.h.
 *
 * States (queue_shared): DOWN from start until the connection is up and
 * the script is loaded (SCRIPT LOAD answered), then UP until anything
 * fails.  Commands go out only while UP, plus the SCRIPT LOAD itself.
 * One timer (`watch`) bounds the oldest command in flight: replies come in
 * order on one connection, so it is re-armed on each reply while any is
 * left.  Another (`retry`) waits out the backoff before a reconnect.
 *
 * Failing frees the hiredis context: hiredis answers every command still
 * in flight with a NULL reply (renewals just release their tenant, and
 * what they gave back is lost, which errs on the side of admitting less),
 * then the libuv adapter closes its poll handle on its own.  When hiredis
 * itself ends the connection (refused connect, EOF) it frees the context
 * after our callback, so we only forget it.
 *
 * The script refills the global bucket at the rate it is given (so a
 * reload's new rate applies on every replica's next renewal), adds what a
 * replica gives back (capped at the burst), and grants what it asks for up
 * to the level.  A missing key is created empty: a Redis restarted empty
 * (or a key expired after a day unused) refills at the tenant's rate, and
 * hands out no fresh burst; the replicas' local levels are the only quota
 * outstanding when they rejoin.  Time is Redis's own (TIME), so replicas'
 * clocks need not agree.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#include <hiredis/adapters/libuv.h>
#pragma GCC diagnostic pop

#include "gateway/log.h"
#include "gateway/server.h"
#include "gateway/shared.h"

#define GW_SHARED_MAGIC 0x53484c4du	/* "SHLM" */
#define RENEWAL_MAGIC 0x524e574cu	/* "RNWL" */
#define KEY_TTL_MS "86400000"		/* a day unused, and a key goes */

static const char script[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local out = {}\n"
	"for i = 1, 2 do\n"
	"  local rate = tonumber(ARGV[i * 3 - 1])\n"
	"  local burst = tonumber(ARGV[i * 3])\n"
	"  local give = tonumber(ARGV[i * 3 + 1])\n"
	"  local grant = 0\n"
	"  if rate > 0 then\n"
	"    local v = redis.call('HMGET', KEYS[i], 'level', 'ms')\n"
	"    local level, last = tonumber(v[1]), tonumber(v[2])\n"
	"    if level == nil or last == nil then level = 0; last = now end\n"
	"    if now > last then level = level + (now - last) * rate; last = now end\n"
	"    if level > burst then level = burst end\n"
	"    if give >= 0 then\n"
	"      level = math.min(burst, level + give)\n"
	"    else\n"
	"      grant = math.min(-give, math.max(level, 0))\n"
	"      level = level - grant\n"
	"    end\n"
	"    redis.call('HSET', KEYS[i], 'level', tostring(level), 'ms', tostring(last))\n"
	"    redis.call('PEXPIRE', KEYS[i], ARGV[1])\n"
	"  end\n"
	"  out[i] = tostring(grant)\n"
	"end\n"
	"return out\n";

struct gw_shared {
	uint32_t magic;
	struct gw_server *srv;
	redisAsyncContext *ac;		/* NULL while not connected */
	bool loaded;			/* the script is loaded on ac: UP */
	char sha[41];
	struct queue_shared link;
	uv_timer_t watch;		/* the oldest command in flight answers by then */
	uv_timer_t retry;		/* the backoff before a reconnect */
	unsigned pending;		/* commands in flight on ac */
	unsigned open_handles;		/* and the lookup below while it runs */
	uv_getaddrinfo_t lookup;	/* a name in `redis:`, on libuv's thread pool */
	bool looking_up;
	bool closed;
	/* The settings in force (a copy: a reload frees the snapshot). */
	char *host;			/* NULL: not configured */
	uint16_t port;
	char *prefix;
	unsigned replicas;
};

/* One renewal in flight. */
struct renewal {
	uint32_t magic;
	struct queue_tenant *tenant;	/* a reference */
	double sent[2];			/* what queue_lease_plan() returned, per bucket */
};

static struct gw_shared *shared_from(const void *data)
{
	struct gw_shared *sh = (struct gw_shared *)data;
	if (sh == NULL || sh->magic != GW_SHARED_MAGIC)
		abort();
	return sh;
}

static uint64_t now_of(const struct gw_shared *sh)
{
	return gw_now_ms(sh->srv);
}

/* A tenant's two buckets with the rate and burst of its config. */
struct limit {
	struct queue_bucket *b;
	struct queue_lease *l;
	double rate, burst;
};

static void limits_of(struct queue_tenant *t, struct limit lim[2])
{
	const struct conf_tenant *ct = t->cfg;
	lim[0] = (struct limit){ &t->requests, &t->leases[0], ct->requests_per_s, ct->burst };
	lim[1] = (struct limit){ &t->tokens, &t->leases[1], ct->tokens_per_min / 60.0, ct->tokens_per_min };
}

static bool limited(const struct queue_tenant *t)
{
	return t->cfg->requests_per_s > 0 || t->cfg->tokens_per_min > 0;
}

/* Put t's buckets under the current mode. */
static void apply(struct gw_shared *sh, struct queue_tenant *t, uint64_t now)
{
	struct limit lim[2];
	limits_of(t, lim);
	for (int i = 0; i < 2; i++) {
		if (lim[i].rate <= 0)
			continue;
		if (sh->host == NULL) {
			if (lim[i].l->seen) {
				lim[i].b->held = false;
				queue_bucket_reconfigure(lim[i].b, lim[i].rate, lim[i].burst, now);
				*lim[i].l = (struct queue_lease){ 0 };
			}
		} else if (sh->link.state == QUEUE_SHARED_UP) {
			queue_lease_hold(lim[i].l, lim[i].b, lim[i].rate, lim[i].burst, sh->replicas, now);
		} else {
			queue_lease_local(lim[i].l, lim[i].b, lim[i].rate, lim[i].burst, sh->replicas, now);
		}
	}
}

static void apply_all(struct gw_shared *sh)
{
	struct queue_tenants *ts = &sh->srv->tenants;
	uint64_t now = now_of(sh);
	for (size_t i = 0; i < ts->n; i++)
		apply(sh, ts->v[i], now);
}

static void on_retry(uv_timer_t *h);
static void on_watch(uv_timer_t *h);

static void sent_one(struct gw_shared *sh)
{
	if (sh->pending++ == 0)
		uv_timer_start(&sh->watch, on_watch, GW_SHARED_TIMEOUT_MS, 0);
}

/* Redis is unreachable, slow or wrong: local limits, and try again later.
 * `why` is copied into the log line before the context can be freed. */
static void fail(struct gw_shared *sh, const char *why, bool free_ctx)
{
	redisAsyncContext *ac = sh->ac;
	uint64_t now = now_of(sh);
	bool was_up = sh->link.state == QUEUE_SHARED_UP;
	if (queue_shared_set_down(&sh->link, now))
		gw_warn("shared limits: redis %s:%u unreachable (%s); local limits (1/%u of each tenant's) until it "
			"is back", sh->host, sh->port, why, sh->replicas);
	sh->ac = NULL;
	sh->loaded = false;
	sh->pending = 0;
	uv_timer_stop(&sh->watch);
	if (was_up)
		apply_all(sh);
	if (free_ctx && ac != NULL)
		redisAsyncFree(ac);	/* in-flight callbacks run with NULL replies */
	if (sh->host != NULL)
		uv_timer_start(&sh->retry, on_retry, queue_shared_backoff(&sh->link), 0);
}

static void on_watch(uv_timer_t *h)
{
	struct gw_shared *sh = shared_from(h->data);
	char why[64];
	snprintf(why, sizeof why, "no answer within %d ms", GW_SHARED_TIMEOUT_MS);
	fail(sh, why, true);
}

/* One command answered (or dropped): keep the watch on the next one. */
static void answered(struct gw_shared *sh)
{
	if (sh->pending > 0)
		sh->pending--;
	if (sh->pending > 0)
		uv_timer_start(&sh->watch, on_watch, GW_SHARED_TIMEOUT_MS, 0);
	else
		uv_timer_stop(&sh->watch);
}

static void send_script_load(struct gw_shared *sh);

static void on_renewed(redisAsyncContext *ac, void *reply, void *priv)
{
	struct renewal *rn = priv;
	struct gw_shared *sh = shared_from(ac->data);
	if (rn == NULL || rn->magic != RENEWAL_MAGIC)
		abort();
	struct queue_tenant *t = rn->tenant;
	redisReply *r = reply;
	t->renewing = false;
	if (r != NULL && sh->ac == ac) {
		answered(sh);
		if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
			/* SCRIPT FLUSH, or a failover to a replica without it. */
			sh->loaded = false;
			send_script_load(sh);
		} else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
			   r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
			fail(sh, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply", true);
		} else if (sh->link.state == QUEUE_SHARED_UP) {
			struct limit lim[2];
			limits_of(t, lim);
			for (int i = 0; i < 2; i++)
				if (lim[i].rate > 0 && lim[i].b->held)
					queue_lease_grant(lim[i].l, lim[i].b, rn->sent[i],
							  strtod(r->element[i]->str, NULL));
		}
	}
	queue_tenant_put(&rn->tenant);
	rn->magic = 0;
	free(rn);
}

static void key_of(char *out, size_t size, const char *prefix, const char *name, const char *which)
{
	snprintf(out, size, "%s%s:%s", prefix, name, which);
}

static void renew(struct gw_shared *sh, struct queue_tenant *t, uint64_t now)
{
	struct renewal *rn = malloc(sizeof(*rn));
	if (rn == NULL)
		return;	/* the next tick tries again */
	rn->magic = RENEWAL_MAGIC;
	struct limit lim[2];
	limits_of(t, lim);
	char keys[2][CONF_KEY_PREFIX_MAX + 128], num[6][32];
	const char *argv[12];
	size_t lens[12];
	key_of(keys[0], sizeof keys[0], sh->prefix, t->name, "requests");
	key_of(keys[1], sizeof keys[1], sh->prefix, t->name, "tokens");
	int n = 0;
	argv[n++] = "EVALSHA";
	argv[n++] = sh->sha;
	argv[n++] = "2";
	argv[n++] = keys[0];
	argv[n++] = keys[1];
	argv[n++] = KEY_TTL_MS;
	for (int i = 0; i < 2; i++) {
		bool on = lim[i].rate > 0 && lim[i].b->held;
		rn->sent[i] = on ? queue_lease_plan(lim[i].l, lim[i].b, sh->replicas, now) : 0;
		snprintf(num[i * 3], sizeof num[0], "%.17g", on ? lim[i].rate / 1000.0 : 0.0);
		snprintf(num[i * 3 + 1], sizeof num[0], "%.17g", lim[i].burst);
		snprintf(num[i * 3 + 2], sizeof num[0], "%.17g", rn->sent[i]);
		for (int j = 0; j < 3; j++)
			argv[n++] = num[i * 3 + j];
	}
	for (int i = 0; i < n; i++)
		lens[i] = strlen(argv[i]);
	rn->tenant = queue_tenant_get(t);
	if (redisAsyncCommandArgv(sh->ac, on_renewed, rn, n, argv, lens) != REDIS_OK) {
		queue_tenant_put(&rn->tenant);
		free(rn);
		return;
	}
	t->renewing = true;
	sent_one(sh);
}

static bool due(const struct queue_tenant *t, uint64_t now)
{
	for (int i = 0; i < 2; i++) {
		const struct queue_bucket *b = i ? &t->tokens : &t->requests;
		if (b->held && queue_lease_due(&t->leases[i], b, now))
			return true;
	}
	return false;
}

static void renew_due(struct gw_shared *sh)
{
	struct queue_tenants *ts = &sh->srv->tenants;
	uint64_t now = now_of(sh);
	for (size_t i = 0; i < ts->n && sh->loaded; i++) {
		struct queue_tenant *t = ts->v[i];
		if (!t->renewing && limited(t) && due(t, now))
			renew(sh, t, now);
	}
}

static void on_loaded(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)priv;
	struct gw_shared *sh = shared_from(ac->data);
	redisReply *r = reply;
	if (r == NULL || sh->ac != ac)
		return;
	answered(sh);
	if (r->type != REDIS_REPLY_STRING || r->len != 40) {
		fail(sh, r->type == REDIS_REPLY_ERROR ? r->str : "SCRIPT LOAD: unexpected reply", true);
		return;
	}
	memcpy(sh->sha, r->str, 40);
	sh->sha[40] = '\0';
	sh->loaded = true;
	if (sh->link.state == QUEUE_SHARED_UP)
		return;	/* loaded again after NOSCRIPT */
	if (queue_shared_set_up(&sh->link, now_of(sh)))
		gw_info("shared limits: redis %s:%u back", sh->host, sh->port);
	else
		gw_info("shared limits: redis %s:%u connected", sh->host, sh->port);
	apply_all(sh);
	renew_due(sh);
}

static void send_script_load(struct gw_shared *sh)
{
	if (redisAsyncCommand(sh->ac, on_loaded, NULL, "SCRIPT LOAD %s", script) == REDIS_OK)
		sent_one(sh);
	else
		fail(sh, "cannot send SCRIPT LOAD", true);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct gw_shared *sh = shared_from(ac->data);
	if (status != REDIS_OK && sh->ac == ac)
		fail(sh, ac->errstr, false);	/* hiredis frees it after this callback */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct gw_shared *sh = shared_from(ac->data);
	if (sh->ac == ac)
		fail(sh, status == REDIS_OK ? "connection closed" : ac->errstr, false);
}

static void connect_to(struct gw_shared *sh, const char *ip)
{
	redisAsyncContext *ac = redisAsyncConnect(ip, sh->port);
	if (ac == NULL || ac->err) {
		char why[128];
		snprintf(why, sizeof why, "%s", ac ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		fail(sh, why, false);
		return;
	}
	ac->data = sh;
	sh->ac = ac;
	if (redisLibuvAttach(ac, sh->srv->loop) != REDIS_OK) {
		fail(sh, "cannot attach to the loop", true);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	send_script_load(sh);	/* goes out once connected; the watch covers the connect */
}

static void release(struct gw_shared *sh);

static void on_looked_up(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct gw_shared *sh = shared_from(req->data);
	char ip[INET6_ADDRSTRLEN] = "";
	sh->looking_up = false;
	/* Its first IPv4 address, else its first IPv6 one (a Kubernetes
	 * Service name has one A record; "localhost" has both). */
	const struct addrinfo *pick = NULL;
	for (const struct addrinfo *a = status == 0 ? res : NULL; a != NULL; a = a->ai_next)
		if (pick == NULL || (a->ai_family == AF_INET && pick->ai_family != AF_INET))
			pick = a;
	if (pick != NULL && pick->ai_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)pick->ai_addr, ip, sizeof(ip));
	else if (pick != NULL)
		uv_ip4_name((const struct sockaddr_in *)pick->ai_addr, ip, sizeof(ip));
	uv_freeaddrinfo(res);
	if (!sh->closed && sh->ac == NULL && sh->host != NULL) {
		if (ip[0] != '\0')
			connect_to(sh, ip);
		else
			fail(sh, status < 0 ? uv_strerror(status) : "no address", false);
	}
	release(sh);
}

/*
 * hiredis resolves a name with a blocking getaddrinfo() inside its connect,
 * which would stall the loop on a slow DNS: a name is looked up on libuv's
 * thread pool first, and the connect goes to its address.
 */
static void connect_now(struct gw_shared *sh)
{
	unsigned char bin[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, sh->host, bin) == 1 || inet_pton(AF_INET6, sh->host, bin) == 1) {
		connect_to(sh, sh->host);
		return;
	}
	if (sh->looking_up)
		return;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	sh->lookup.data = sh;
	int rc = uv_getaddrinfo(sh->srv->loop, &sh->lookup, on_looked_up, sh->host, NULL, &hints);
	if (rc < 0) {
		fail(sh, uv_strerror(rc), false);
		return;
	}
	sh->looking_up = true;
	sh->open_handles++;	/* the lookup holds sh until its callback */
}

static void on_retry(uv_timer_t *h)
{
	struct gw_shared *sh = shared_from(h->data);
	if (sh->ac == NULL && sh->host != NULL)
		connect_now(sh);
}

static int settings_from(struct gw_shared *sh, const struct conf_shared_limits *c)
{
	free(sh->host);
	free(sh->prefix);
	sh->host = sh->prefix = NULL;
	sh->replicas = (unsigned)c->expected_replicas;
	if (c->redis_host == NULL)
		return 0;
	sh->host = strdup(c->redis_host);
	sh->prefix = strdup(c->key_prefix ? c->key_prefix : "");
	sh->port = c->redis_port;
	if (sh->host == NULL || sh->prefix == NULL) {
		free(sh->host);
		free(sh->prefix);
		sh->host = sh->prefix = NULL;
		return -ENOMEM;
	}
	return 0;
}

int gw__shared_init(struct gw_server *srv)
{
	struct gw_shared *sh = calloc(1, sizeof(*sh));
	if (sh == NULL)
		return -ENOMEM;
	sh->magic = GW_SHARED_MAGIC;
	sh->srv = srv;
	if (settings_from(sh, &srv->conf->shared_limits) < 0) {
		free(sh);
		return -ENOMEM;
	}
	uv_timer_init(srv->loop, &sh->watch);
	uv_timer_init(srv->loop, &sh->retry);
	sh->watch.data = sh->retry.data = sh;
	sh->open_handles = 2;
	queue_shared_init(&sh->link, gw_now_ms(srv));
	srv->shared = sh;
	apply_all(sh);
	if (sh->host != NULL)
		connect_now(sh);
	return 0;
}

static bool same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

void gw__shared_reload(struct gw_server *srv)
{
	struct gw_shared *sh = shared_from(srv->shared);
	const struct conf_shared_limits *c = &srv->conf->shared_limits;
	bool moved = !same(sh->host, c->redis_host) || (c->redis_host && sh->port != c->redis_port) ||
		     (c->redis_host && !same(sh->prefix, c->key_prefix));
	if (!moved) {
		sh->replicas = (unsigned)c->expected_replicas;
		apply_all(sh);
		return;
	}
	/* Another store (or none): start over on local limits, quietly. */
	redisAsyncContext *ac = sh->ac;
	sh->ac = NULL;
	sh->loaded = false;
	sh->pending = 0;
	uv_timer_stop(&sh->watch);
	uv_timer_stop(&sh->retry);
	if (ac != NULL)
		redisAsyncFree(ac);
	uint64_t now = gw_now_ms(srv);
	uint64_t spent = queue_shared_fallback_ms(&sh->link, now);
	bool had = sh->host != NULL;
	if (settings_from(sh, c) < 0)
		gw_warn("shared limits: out of memory; shared limits off");
	queue_shared_init(&sh->link, now);
	sh->link.fallback_ms = spent;
	apply_all(sh);
	if (sh->host != NULL) {
		gw_info("reload: shared_limits now on redis %s:%u", sh->host, sh->port);
		connect_now(sh);
	} else if (had) {
		gw_info("reload: shared_limits removed; each replica applies its tenants' full limits");
	}
}

void gw__shared_tick(struct gw_server *srv)
{
	struct gw_shared *sh = shared_from(srv->shared);
	if (sh->loaded)
		renew_due(sh);
}

void gw__shared_poke(struct gw_server *srv, struct queue_tenant *t)
{
	struct gw_shared *sh = srv->shared;
	if (sh == NULL || !sh->loaded || t->renewing || !limited(t) || t->index == QUEUE_TENANT_RETIRED)
		return;
	uint64_t now = gw_now_ms(srv);
	if (due(t, now))
		renew(sh, t, now);
}

bool gw__shared_stats(const struct gw_server *srv, bool *up, double *fallback_s)
{
	const struct gw_shared *sh = srv->shared;
	if (sh == NULL || sh->host == NULL)
		return false;
	*up = sh->link.state == QUEUE_SHARED_UP;
	*fallback_s = (double)queue_shared_fallback_ms(&sh->link, gw_now_ms(srv)) / 1000.0;
	return true;
}

static void release(struct gw_shared *sh)
{
	if (--sh->open_handles > 0)
		return;
	free(sh->host);
	free(sh->prefix);
	sh->magic = 0;
	free(sh);
}

static void on_closed(uv_handle_t *h)
{
	release(shared_from(h->data));
}

void gw__shared_close(struct gw_server *srv)
{
	struct gw_shared *sh = srv->shared;
	if (sh == NULL)
		return;
	srv->shared = NULL;
	sh->closed = true;
	if (sh->looking_up)
		uv_cancel((uv_req_t *)&sh->lookup);	/* its callback still runs, and releases */
	redisAsyncContext *ac = sh->ac;
	sh->ac = NULL;
	sh->loaded = false;
	if (ac != NULL)
		redisAsyncFree(ac);
	uv_close((uv_handle_t *)&sh->watch, on_closed);
	uv_close((uv_handle_t *)&sh->retry, on_closed);
}
