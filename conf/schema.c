/*
 * schema.c - the sections of a sluice config file and the rules between them.
 *
 * The walk starts from a snapshot holding every default, then reads the
 * sections in dependency order, whatever their order in the file: pools
 * before classes (classes name pools), classes before tenants (tenants name
 * classes), tenants before anonymous_tenant.  Every function that finds a
 * problem reports it and carries on with a harmless default, so one run
 * shows up to CONF_DIAG_MAX problems instead of one per edit; the caller
 * discards the snapshot if anything was reported.
 *
 * Sections made only of named scalars (limits, timeouts, the scalars of a
 * class, the switches of metrics) are tables: each row gives a key, where it
 * is stored, its default and its bounds, and conf__scalars_read() reads them
 * all.  The comments on the tables say why each bound is what it is.  What
 * is not a plain scalar (addresses, lists of pools, backends, buckets) and
 * every rule that relates two keys is code, below its table.
 *
 * Pools may list the models they serve; the loader then builds one sorted
 * table of every model with the mask of the pools that list it
 * (conf_model_pools() reads it), which is why there are at most
 * CONF_POOLS_MAX pools.
 *
 * Two rules matter more than the rest, because they are promises sluice
 * makes to its users: an opportunistic class may not list a reserved pool,
 * and listen and admin_listen may not be the same address.
 *
 * Ownership: everything allocated here hangs off l->c as soon as it is
 * allocated, so conf_destroy() frees it on any path.
 */
#include "conf/schema.h"
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "conf/addr.h"
#include "conf/preempt.h"
#include "conf/tenant.h"
#include "conf/value.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The index in words[0..n) of scalar node v's text, or -1. */
static int word_of(const yaml_node_t *v, const char *const *words, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (conf__node_equals(v, words[i]))
			return (int)i;
	return -1;
}

/* Far above any inference server's batch size, yet small enough that a
 * typo cannot make the backends or queues size a table of billions. */
#define INFLIGHT_MAX (1u << 20)
#define QUEUE_MAX (1u << 24)

/* Room for the keys of the largest table-driven section. */
#define SECTION_KEYS_MAX 8

#define LIMIT(m, unit, def, min, max) CONF__UINT(struct conf_limits, m, unit, def, min, max)

/* Where zero would refuse every request or every connection, the least
 * value is 1. */
static const struct conf__scalar limits_keys[] = {
	/* A body is written upstream in one piece (libuv buffers are 32-bit). */
	LIMIT(max_body_bytes, CONF__UNIT_BYTES, 8ull << 20, 0, 1ull << 30),
	LIMIT(max_header_bytes, CONF__UNIT_BYTES, 16u << 10, 1, UINT32_MAX),
	LIMIT(max_headers, CONF__UNIT_NONE, 100, 1, UINT32_MAX),
	LIMIT(max_queued_bytes, CONF__UNIT_BYTES, 256ull << 20, 1, UINT64_MAX),
	LIMIT(max_connections, CONF__UNIT_NONE, 100000, 1, UINT32_MAX),
	LIMIT(default_max_tokens, CONF__UNIT_NONE, 256, 0, UINT32_MAX),
};

#define TIMEOUT(m, def, min) \
	CONF__UINT(struct conf_timeouts, m, CONF__UNIT_MS, def, min, CONF__MS_MAX)

/* A zero timer fires at once, so zero would fail every request; only the
 * drain wait may be zero ("stop now"). */
static const struct conf__scalar timeouts_keys[] = {
	TIMEOUT(header_ms, 10000, 1),
	TIMEOUT(idle_ms, 60000, 1),
	TIMEOUT(body_ms, 30000, 1),
	TIMEOUT(connect_ms, 2000, 1),
	TIMEOUT(upstream_ms, 300000, 1),
	TIMEOUT(upstream_idle_ms, 60000, 1),
	TIMEOUT(drain_ms, 30000, 0),
};

enum { CLASS_MAX_QUEUE, CLASS_MAX_QUEUE_BYTES, CLASS_MAX_WAIT, CLASS_MIN_SHARE,
       CLASS_MAX_SLOT_SHARE, CLASS_TTFT_OBJECTIVE, CLASS_TENANT_SLOT_SHARE, CLASS_PREEMPTION,
       CLASS_POOLS, NCLASS_KEYS };

/* A queue of zero or a deadline of zero would turn every request of the
 * class away; that is spelt "leave the class out". */
static const struct conf__scalar class_keys[NCLASS_KEYS] = {
	[CLASS_MAX_QUEUE] = CONF__UINT(struct conf_class_cfg, max_queue, CONF__UNIT_NONE,
				       1024, 1, QUEUE_MAX),
	[CLASS_MAX_QUEUE_BYTES] = CONF__UINT(struct conf_class_cfg, max_queue_bytes,
					     CONF__UNIT_BYTES, 64ull << 20, 1, UINT64_MAX),
	[CLASS_MAX_WAIT] = CONF__UINT(struct conf_class_cfg, max_wait_ms, CONF__UNIT_MS,
				      30000, 1, CONF__MS_MAX),
	[CLASS_MIN_SHARE] = CONF__NUM(struct conf_class_cfg, min_share, 0, 0, false, 1),
	[CLASS_MAX_SLOT_SHARE] = CONF__NUM(struct conf_class_cfg, max_slot_share, 1, 0, true, 1),
	/* 0 (the default) sets no objective. */
	[CLASS_TTFT_OBJECTIVE] = CONF__UINT(struct conf_class_cfg, ttft_objective_ms, CONF__UNIT_MS,
					    0, 0, CONF__MS_MAX),
	[CLASS_TENANT_SLOT_SHARE] = CONF__OTHER("tenant_slot_share"),
	[CLASS_POOLS] = CONF__OTHER("pools"),
	[CLASS_PREEMPTION] = CONF__OTHER("preemption"),	/* conf/preempt.c */
};

/* A pool's backend_defaults.  Slow start is bounded like any duration. */
static const struct conf__scalar backend_default_keys[] = {
	CONF__UINT(struct conf_backend_defaults, max_inflight, CONF__UNIT_NONE, 16, 1, INFLIGHT_MAX),
	CONF__UINT(struct conf_backend_defaults, slow_start_ms, CONF__UNIT_MS, 0, 0, CONF__MS_MAX),
};

/* A DNS refresh more often than every 100 ms would only load the resolver. */
static const struct conf__scalar discovery_keys[] = {
	CONF__OTHER("dns"),
	CONF__UINT(struct conf_discovery, refresh_ms, CONF__UNIT_MS, 5000, 100, CONF__MS_MAX),
};

/* replicas.  More replicas than this would leave every backend one slot
 * per replica long before; the refresh is bounded like discovery's. */
enum { REPLICAS_COUNT, REPLICAS_DNS, REPLICAS_REFRESH, NREPLICAS_KEYS };
static const struct conf__scalar replicas_keys[NREPLICAS_KEYS] = {
	[REPLICAS_COUNT] = CONF__UINT(struct conf_replicas, count, CONF__UNIT_NONE, 1, 1, CONF_REPLICAS_MAX),
	[REPLICAS_DNS] = CONF__OTHER("dns"),
	[REPLICAS_REFRESH] = CONF__UINT(struct conf_replicas, refresh_ms, CONF__UNIT_MS, 5000, 100, CONF__MS_MAX),
};

/* A pool's health checks.  Checks more often than every 100 ms would load
 * the backends more than they tell; a check must end before the next one
 * is due (timeout_ms <= interval_ms, checked below the table).  A verdict
 * needs at most 100 checks either way: beyond that a backend would stay in
 * or out for hours after it changed. */
enum { HEALTH_PATH, NHEALTH_KEYS = 5 };
static const struct conf__scalar health_keys[NHEALTH_KEYS] = {
	[HEALTH_PATH] = CONF__OTHER("path"),
	CONF__UINT(struct conf_health, interval_ms, CONF__UNIT_MS, 2000, 100, CONF__MS_MAX),
	CONF__UINT(struct conf_health, timeout_ms, CONF__UNIT_MS, 1000, 1, CONF__MS_MAX),
	CONF__UINT(struct conf_health, unhealthy_after, CONF__UNIT_NONE, 2, 1, 100),
	CONF__UINT(struct conf_health, healthy_after, CONF__UNIT_NONE, 2, 1, 100),
};

/* A pool's outlier ejection.  A share of 0 would never eject (leave the
 * section out instead); max_eject_ms >= eject_ms is checked below. */
enum { NOUTLIER_KEYS = 4 };
static const struct conf__scalar outlier_keys[NOUTLIER_KEYS] = {
	CONF__UINT(struct conf_outlier, consecutive_failures, CONF__UNIT_NONE, 5, 1, 1000),
	CONF__UINT(struct conf_outlier, eject_ms, CONF__UNIT_MS, 10000, 1, CONF__MS_MAX),
	CONF__UINT(struct conf_outlier, max_eject_ms, CONF__UNIT_MS, 300000, 1, CONF__MS_MAX),
	CONF__NUM(struct conf_outlier, max_ejected_share, 0.5, 0, true, 1),
};

/* A pool's slots.  The bounds are the backend's, across replicas, like
 * max_inflight; min >= 1 and min <= max are checked below the table.
 * Polling faster than every 100 ms would load the backend's metrics
 * endpoint more than its gauges move. */
enum { SLOTS_ADAPT, NSLOTS_KEYS = 4 };
static const struct conf__scalar slots_keys[NSLOTS_KEYS] = {
	[SLOTS_ADAPT] = CONF__OTHER("adapt"),
	CONF__UINT(struct conf_slots, min, CONF__UNIT_NONE, 2, 1, INFLIGHT_MAX),
	CONF__UINT(struct conf_slots, max, CONF__UNIT_NONE, 256, 1, INFLIGHT_MAX),
	CONF__UINT(struct conf_slots, interval_ms, CONF__UNIT_MS, 1000, 100, CONF__MS_MAX),
};

enum { METRICS_HISTOGRAMS, METRICS_TENANT_HISTOGRAMS, METRICS_BUCKETS, NMETRICS_KEYS };

static const struct conf__scalar metrics_keys[NMETRICS_KEYS] = {
	[METRICS_HISTOGRAMS] = CONF__BOOL(struct conf_metrics, histograms, true),
	[METRICS_TENANT_HISTOGRAMS] = CONF__BOOL(struct conf_metrics, tenant_histograms, false),
	[METRICS_BUCKETS] = CONF__OTHER("buckets"),
};

/* shared_limits.  More than a thousand replicas would make each one's
 * fallback share of a tenant's rate meaningless. */
enum { SHARED_REDIS, SHARED_PREFIX, NSHARED_KEYS = 3 };
static const struct conf__scalar shared_keys[NSHARED_KEYS] = {
	[SHARED_REDIS] = CONF__OTHER("redis"),
	[SHARED_PREFIX] = CONF__OTHER("key_prefix"),
	CONF__UINT(struct conf_shared_limits, expected_replicas, CONF__UNIT_NONE, 1, 1, 1000),
};

_Static_assert(ARRAY_SIZE(limits_keys) <= SECTION_KEYS_MAX, "limits_keys is too long");
_Static_assert(ARRAY_SIZE(timeouts_keys) <= SECTION_KEYS_MAX, "timeouts_keys is too long");
_Static_assert(ARRAY_SIZE(backend_default_keys) <= SECTION_KEYS_MAX, "backend_default_keys is too long");
_Static_assert(ARRAY_SIZE(discovery_keys) <= SECTION_KEYS_MAX, "discovery_keys is too long");
_Static_assert(ARRAY_SIZE(replicas_keys) <= SECTION_KEYS_MAX, "replicas_keys is too long");
_Static_assert(ARRAY_SIZE(health_keys) <= SECTION_KEYS_MAX, "health_keys is too long");
_Static_assert(ARRAY_SIZE(outlier_keys) <= SECTION_KEYS_MAX, "outlier_keys is too long");
_Static_assert(ARRAY_SIZE(slots_keys) <= SECTION_KEYS_MAX, "slots_keys is too long");

/* A top-level section made only of named scalars, read through table t. */
static void scalar_section(struct conf__loader *l, const struct conf__field *sec,
			   const struct conf__scalar *t, size_t n, void *base)
{
	struct conf__field f[SECTION_KEYS_MAX];
	const yaml_node_t *m = conf__section(l, sec, NULL, YAML_MAPPING_NODE);

	if (m)
		conf__scalars_read(l, m, sec->name, t, n, base, f);
}

/* Room for the items of sequence seq, which must not be empty: "CTX has no
 * WHAT".  NULL after reporting either problem. */
static void *items_alloc(struct conf__loader *l, const yaml_node_t *seq, const char *ctx,
			 const char *what, size_t size)
{
	if (conf__seq_len(seq) == 0) {
		conf__err(l, seq, "%s has no %s", ctx, what);
		return NULL;
	}
	return conf__calloc(l, conf__seq_len(seq), size);
}

/* ---- pools -------------------------------------------------------------- */

static void parse_gpu(struct conf__loader *l, struct conf_pool *p, const struct conf__field *sec,
		      const char *ctx)
{
	enum { MODEL, MIG, N };
	struct conf__field f[N] = {
		[MODEL] = { .name = "model" },
		[MIG] = { .name = "mig_profile" },
	};
	const yaml_node_t *m = conf__section(l, sec, ctx, YAML_MAPPING_NODE);
	char gctx[CONF__NAME_MAX + 32];

	if (!m)
		return;
	snprintf(gctx, sizeof gctx, "gpu of %s", ctx);
	conf__fields(l, m, gctx, f, N);
	conf__value_str(l, &f[MODEL], gctx, &p->gpu_model);
	conf__value_str(l, &f[MIG], gctx, &p->mig_profile);
}

/* A credential fit for a header: printable, no spaces, at most 4 KiB. */
static bool credential_ok(const char *s, size_t len)
{
	if (len == 0 || len > 4096)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

/* The bytes of a key file, without a final newline; NULL when unreadable. */
static char *read_key_file(const char *path)
{
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return NULL;
	char buf[4098];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	char *out = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return out;
}

/*
 * upstream_auth: the backend's key, from the environment or a file (the
 * YAML, often a ConfigMap, names where it is, never the key itself).
 * Errors name the variable or the path, never the value.
 */
static void parse_upstream_auth(struct conf__loader *l, struct conf_pool *p, const struct conf__field *sec,
				const char *ctx)
{
	enum { ENV, FILE_, N };
	struct conf__field f[N] = {
		[ENV] = { .name = "bearer_env" },
		[FILE_] = { .name = "bearer_file" },
	};
	const yaml_node_t *m = conf__section(l, sec, ctx, YAML_MAPPING_NODE);
	char actx[CONF__NAME_MAX + 48];
	char *env = NULL, *path = NULL;

	if (!m)
		return;
	snprintf(actx, sizeof actx, "upstream_auth of %s", ctx);
	conf__fields(l, m, actx, f, N);
	conf__value_str(l, &f[ENV], actx, &env);
	conf__value_str(l, &f[FILE_], actx, &path);
	if ((env != NULL) == (path != NULL)) {
		conf__err(l, m, "%s needs exactly one of bearer_env and bearer_file", actx);
	} else if (env != NULL) {
		const char *v = getenv(env);
		if (v == NULL || !credential_ok(v, strlen(v)))
			conf__err(l, f[ENV].val, "%s: environment variable %s is %s", actx, env,
				  v == NULL ? "not set" : "not a usable key (empty, spaces or control bytes)");
		else if (!(p->upstream_bearer = strdup(v)))
			conf__nomem(l);
	} else {
		p->upstream_bearer = read_key_file(path);
		if (p->upstream_bearer == NULL || !credential_ok(p->upstream_bearer, strlen(p->upstream_bearer))) {
			conf__err(l, f[FILE_].val, "%s: %s %s", actx, path,
				  p->upstream_bearer == NULL ? "cannot be read" : "does not hold a usable key");
			if (p->upstream_bearer != NULL)
				explicit_bzero(p->upstream_bearer, strlen(p->upstream_bearer));
			free(p->upstream_bearer);
			p->upstream_bearer = NULL;
		}
	}
	free(env);
	free(path);
}

/* A model name fit for logs, headers and JSON: 1 to CONF_MODEL_MAX bytes,
 * no control characters.  Anything else (UTF-8 included) is the name's. */
static const char *model_name_problem(const char *s, size_t len)
{
	if (len == 0)
		return "may not be empty";
	if (len > CONF_MODEL_MAX)
		return "is longer than 255 bytes";
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return "may not hold control characters";
	return NULL;
}

/* models: [NAME, ...]: the models the pool serves (absent: any). */
static void parse_models(struct conf__loader *l, struct conf_pool *p, const struct conf__field *f,
			 const char *ctx)
{
	const yaml_node_t *seq;
	size_t i, j, n;

	if (!f->key || !(seq = conf__want(l, f, ctx, YAML_SEQUENCE_NODE)))
		return;
	n = conf__seq_len(seq);
	if (n > CONF_MODELS_MAX) {
		conf__err(l, seq, "%s lists %zu models; at most %d", ctx, n, CONF_MODELS_MAX);
		return;
	}
	if (!(p->models = items_alloc(l, seq, ctx, "models", sizeof *p->models)))
		return;
	for (i = 0; i < n; i++) {
		const yaml_node_t *item = conf__seq_item(l, seq, i);
		const char *why;

		if (!conf__node_is(item, YAML_SCALAR_NODE) || conf__node_is_null(item)) {
			conf__err(l, item, "models in %s: expected a model name, got %s", ctx,
				  conf__kind(l, item));
			continue;
		}
		if ((why = model_name_problem(conf__node_text(item), item->data.scalar.length))) {
			conf__err(l, item, "model '%s' in %s %s", conf__show(l, item), ctx, why);
			continue;
		}
		for (j = 0; j < i; j++) {
			const yaml_node_t *prev = conf__seq_item(l, seq, j);

			if (conf__node_is(prev, YAML_SCALAR_NODE) &&
			    prev->data.scalar.length == item->data.scalar.length &&
			    memcmp(conf__node_text(prev), conf__node_text(item), item->data.scalar.length) == 0)
				break;
		}
		if (j < i) {
			conf__err(l, item, "%s lists model '%s' twice (first at line %zu)", ctx,
				  conf__show(l, item), conf__node_line(conf__seq_item(l, seq, j)));
			continue;
		}
		if (!(p->models[p->nmodels] = conf__node_dup(l, item)))
			return;
		p->nmodels++;
	}
}

static void parse_backend(struct conf__loader *l, struct conf_pool *p, const yaml_node_t *item,
			  size_t idx)
{
	enum { ADDRESS, INFLIGHT, N };
	struct conf__field f[N] = {
		[ADDRESS] = { .name = "address" },
		[INFLIGHT] = { .name = "max_inflight" },
	};
	struct conf_backend *b = &p->backends[idx];
	char ctx[CONF__NAME_MAX + 48];
	uint64_t v = 0;
	size_t i;

	b->line = (int)conf__node_line(item);
	snprintf(ctx, sizeof ctx, "backend %zu of pool '%s'", idx + 1, p->name);
	if (!conf__node_is(item, YAML_MAPPING_NODE)) {
		conf__err(l, item, "%s: expected a mapping with address and max_inflight, got %s",
			  ctx, conf__kind(l, item));
		return;
	}
	conf__fields(l, item, ctx, f, N);
	if (conf__need(l, &f[ADDRESS], ctx, item, YAML_SCALAR_NODE) &&
	    conf__addr_read(l, &f[ADDRESS], ctx, false, &b->addr)) {
		for (i = 0; i < idx; i++)
			if (p->backends[i].addr.text && conf__addr_same(&p->backends[i].addr, &b->addr)) {
				conf__err(l, f[ADDRESS].val,
					  "pool '%s' lists backend '%s' twice (first at line %d)",
					  p->name, conf__show(l, f[ADDRESS].val), p->backends[i].line);
				break;
			}
	}
	if (conf__need(l, &f[INFLIGHT], ctx, item, YAML_SCALAR_NODE) &&
	    conf__value_uint(l, &f[INFLIGHT], ctx, CONF__UNIT_NONE, 1, INFLIGHT_MAX, &v))
		b->max_inflight = (unsigned)v;
}

/* "HOST:PORT" or "[V6]:PORT", not resolved here: discovery looks it up
 * again and again at run time.  Sets *host (malloc'd) and *port. */
static bool read_hostport(struct conf__loader *l, const yaml_node_t *n, const char *what, const char *ctx,
			  char **host, uint16_t *port)
{
	const char *s = conf__show(l, n);
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hlen = colon ? (size_t)(colon - s) : 0;
	char *end;
	unsigned long v = colon ? strtoul(colon + 1, &end, 10) : 0;

	bool bracketed = hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']';

	if (bracketed) {
		h++;
		hlen -= 2;
	}
	if (!colon || hlen == 0 || hlen > 253 || (!bracketed && memchr(h, ':', hlen)) ||
	    colon[1] == '\0' || *end != '\0' || v == 0 || v > 65535) {
		conf__err(l, n, "%s in %s must be HOST:PORT (a name and a port 1-65535), got '%s'", what, ctx, s);
		return false;
	}
	if (!(*host = strndup(h, hlen))) {
		conf__nomem(l);
		return false;
	}
	*port = (uint16_t)v;
	return true;
}

static void parse_discovery(struct conf__loader *l, struct conf_pool *p, const struct conf__field *sec,
			    const char *pctx)
{
	struct conf__field f[SECTION_KEYS_MAX];
	char ctx[CONF__NAME_MAX + 32];
	const yaml_node_t *m, *n;

	snprintf(ctx, sizeof ctx, "discovery of %s", pctx);
	conf__scalars_init(discovery_keys, ARRAY_SIZE(discovery_keys), &p->discovery);
	if (!(m = conf__section(l, sec, pctx, YAML_MAPPING_NODE)))
		return;
	conf__scalars_read(l, m, ctx, discovery_keys, ARRAY_SIZE(discovery_keys), &p->discovery, f);
	if ((n = conf__need(l, &f[0], ctx, m, YAML_SCALAR_NODE)))
		read_hostport(l, n, "dns", ctx, &p->discovery.dns_host, &p->discovery.dns_port);
}

/* A request target sent as is: an origin-form path, printable, no spaces. */
static bool check_path_ok(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > 1024 || s[0] != '/')
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static void parse_health(struct conf__loader *l, struct conf_pool *p, const struct conf__field *sec,
			 const char *pctx)
{
	struct conf__field f[SECTION_KEYS_MAX];
	struct conf_health *h = &p->health;
	char ctx[CONF__NAME_MAX + 32];
	const yaml_node_t *m;

	if (!(m = conf__section(l, sec, pctx, YAML_MAPPING_NODE)))
		return;
	snprintf(ctx, sizeof ctx, "health of %s", pctx);
	h->enabled = true;
	h->line = (int)conf__node_line(sec->key);
	conf__scalars_read(l, m, ctx, health_keys, NHEALTH_KEYS, h, f);
	if (f[HEALTH_PATH].key && conf__value_str(l, &f[HEALTH_PATH], ctx, &h->path) && !check_path_ok(h->path))
		conf__err(l, f[HEALTH_PATH].val, "path in %s must be a path starting with '/', printable, "
			  "without spaces, at most 1024 bytes, got '%s'", ctx, conf__show(l, f[HEALTH_PATH].val));
	if (h->path == NULL && !(h->path = strdup("/health")))
		conf__nomem(l);
	if (h->timeout_ms > h->interval_ms)
		conf__err(l, m, "%s: timeout_ms (%llu ms) must not exceed interval_ms (%llu ms)", ctx,
			  (unsigned long long)h->timeout_ms, (unsigned long long)h->interval_ms);
}

static void parse_outlier(struct conf__loader *l, struct conf_pool *p, const struct conf__field *sec,
			  const char *pctx)
{
	struct conf__field f[SECTION_KEYS_MAX];
	struct conf_outlier *o = &p->outlier;
	char ctx[CONF__NAME_MAX + 32];
	const yaml_node_t *m;

	if (!(m = conf__section(l, sec, pctx, YAML_MAPPING_NODE)))
		return;
	snprintf(ctx, sizeof ctx, "outlier of %s", pctx);
	o->enabled = true;
	o->line = (int)conf__node_line(sec->key);
	conf__scalars_read(l, m, ctx, outlier_keys, NOUTLIER_KEYS, o, f);
	if (o->max_eject_ms < o->eject_ms)
		conf__err(l, m, "%s: max_eject_ms (%llu ms) must not be below eject_ms (%llu ms)", ctx,
			  (unsigned long long)o->max_eject_ms, (unsigned long long)o->eject_ms);
}

static void parse_slots(struct conf__loader *l, struct conf_pool *p, const struct conf__field *sec,
			const char *pctx)
{
	struct conf__field f[SECTION_KEYS_MAX];
	struct conf_slots *s = &p->slots;
	char ctx[CONF__NAME_MAX + 32];
	const yaml_node_t *m, *a;

	if (!(m = conf__section(l, sec, pctx, YAML_MAPPING_NODE)))
		return;
	snprintf(ctx, sizeof ctx, "slots of %s", pctx);
	s->line = (int)conf__node_line(sec->key);
	conf__scalars_read(l, m, ctx, slots_keys, NSLOTS_KEYS, s, f);
	if ((a = f[SLOTS_ADAPT].val) != NULL) {
		int i = word_of(a, conf_slots_adapt_words, ARRAY_SIZE(conf_slots_adapt_words));
		if (i >= 0)
			s->adapt = (enum conf_slots_adapt)i;
		else
			conf__err(l, a, "adapt in %s must be vllm_metrics, latency or off, got '%s'", ctx,
				  conf__show(l, a));
	}
	if (s->min > s->max)
		conf__err(l, m, "%s: min (%u) must not exceed max (%u)", ctx, s->min, s->max);
}

static void parse_pool(struct conf__loader *l, struct conf_pool *p, const yaml_node_t *k,
		       const yaml_node_t *v)
{
	enum { SLICE, GPU, AUTH, MODELS, BACKENDS, DISCOVERY, DEFAULTS, HEALTH, OUTLIER, SLOTS, N };
	struct conf__field f[N] = {
		[SLICE] = { .name = "slice" },
		[GPU] = { .name = "gpu" },
		[AUTH] = { .name = "upstream_auth" },
		[MODELS] = { .name = "models" },
		[BACKENDS] = { .name = "backends" },
		[DISCOVERY] = { .name = "discovery" },
		[DEFAULTS] = { .name = "backend_defaults" },
		[HEALTH] = { .name = "health" },
		[OUTLIER] = { .name = "outlier" },
		[SLOTS] = { .name = "slots" },
	};
	struct conf__field df[SECTION_KEYS_MAX];
	char ctx[CONF__NAME_MAX + 16];
	const yaml_node_t *n;
	size_t i;

	snprintf(ctx, sizeof ctx, "pool '%s'", p->name);
	if (!conf__node_is(v, YAML_MAPPING_NODE)) {
		conf__err(l, v, "%s: expected a mapping, got %s", ctx, conf__kind(l, v));
		return;
	}
	conf__fields(l, v, ctx, f, N);

	if ((n = conf__need(l, &f[SLICE], ctx, k, YAML_SCALAR_NODE))) {
		if (conf__node_equals(n, "reserved"))
			p->slice = CONF_SLICE_RESERVED;
		else if (conf__node_equals(n, "elastic"))
			p->slice = CONF_SLICE_ELASTIC;
		else
			conf__err(l, n, "slice in %s must be reserved or elastic, got '%s'", ctx,
				  conf__show(l, n));
	}
	parse_gpu(l, p, &f[GPU], ctx);
	parse_upstream_auth(l, p, &f[AUTH], ctx);
	parse_models(l, p, &f[MODELS], ctx);
	conf__scalars_init(backend_default_keys, ARRAY_SIZE(backend_default_keys), &p->backend_defaults);
	if ((n = conf__section(l, &f[DEFAULTS], ctx, YAML_MAPPING_NODE)))
		conf__scalars_read(l, n, "backend_defaults", backend_default_keys,
				   ARRAY_SIZE(backend_default_keys), &p->backend_defaults, df);
	conf__scalars_init(health_keys, NHEALTH_KEYS, &p->health);
	conf__scalars_init(outlier_keys, NOUTLIER_KEYS, &p->outlier);
	parse_health(l, p, &f[HEALTH], ctx);
	parse_outlier(l, p, &f[OUTLIER], ctx);
	conf__scalars_init(slots_keys, NSLOTS_KEYS, &p->slots);
	parse_slots(l, p, &f[SLOTS], ctx);

	/* A pool's backends are listed or discovered, never both: a static
	 * list beside discovery would be a second source of truth. */
	if (f[DISCOVERY].key) {
		if (f[BACKENDS].key)
			conf__err(l, f[BACKENDS].key, "%s has both backends and discovery: use one", ctx);
		else
			parse_discovery(l, p, &f[DISCOVERY], ctx);
		return;
	}
	if (!(n = conf__need(l, &f[BACKENDS], ctx, k, YAML_SEQUENCE_NODE)) ||
	    !(p->backends = items_alloc(l, n, ctx, "backends", sizeof *p->backends)))
		return;
	p->nbackends = conf__seq_len(n);
	for (i = 0; i < p->nbackends; i++)
		parse_backend(l, p, conf__seq_item(l, n, i), i);
}

/* A required top-level mapping of named entries: NULL, after reporting it,
 * when it is absent, not a mapping or empty. */
static const yaml_node_t *entries_section(struct conf__loader *l, const struct conf__field *sec,
					  const char *what)
{
	const yaml_node_t *m = conf__need(l, sec, NULL, NULL, YAML_MAPPING_NODE);

	if (m && conf__map_len(m) == 0) {
		conf__err(l, m, "%s must define at least one %s", sec->name, what);
		return NULL;
	}
	return m;
}

static void parse_pools(struct conf__loader *l, const struct conf__field *sec)
{
	struct conf *c = l->c;
	const yaml_node_t *m = entries_section(l, sec, "pool");
	struct conf__entry e = { 0 };

	if (!m || !(c->pools = conf__calloc(l, conf__map_len(m), sizeof *c->pools)))
		return;
	while (conf__entry_next(l, m, &e)) {
		struct conf_pool *p = &c->pools[c->npools];

		/* Pools are bits of a 64-bit mask (the pools a model may use). */
		if (c->npools == CONF_POOLS_MAX) {
			conf__err(l, e.key, "pools: at most %d pools (pool '%s' is one more)", CONF_POOLS_MAX,
				  conf__show(l, e.key));
			return;
		}

		/* Even a badly named pool is kept, so the classes that list it do
		 * not add "unknown pool" noise to the one real error. */
		conf__value_name(l, e.key, "pool");
		if (!(p->name = conf__node_dup(l, e.key)))
			return;
		c->npools++;
		p->line = (int)conf__node_line(e.key);
		/* Elastic until proven otherwise: a pool whose slice failed to
		 * parse must not also trip the opportunistic-reserved rule. */
		p->slice = CONF_SLICE_ELASTIC;
		parse_pool(l, p, e.key, e.val);
	}
}

static int model_order(const void *a, const void *b)
{
	const struct conf_model *x = a, *y = b;

	return conf__model_cmp(x->name, x->len, y->name, y->len);
}

/* conf.models: every listed model once, sorted, with the pools listing it;
 * conf.pools_any: the pools that list none. */
static void build_models(struct conf__loader *l)
{
	struct conf *c = l->c;
	size_t total = 0, i, j, n = 0;

	for (i = 0; i < c->npools; i++) {
		total += c->pools[i].nmodels;
		if (c->pools[i].models == NULL)
			c->pools_any |= UINT64_C(1) << i;
	}
	if (total == 0 || !(c->models = conf__calloc(l, total, sizeof *c->models)))
		return;
	for (i = 0; i < c->npools; i++)
		for (j = 0; j < c->pools[i].nmodels; j++)
			c->models[n++] = (struct conf_model){ c->pools[i].models[j], strlen(c->pools[i].models[j]),
							       UINT64_C(1) << i };
	qsort(c->models, n, sizeof *c->models, model_order);
	c->nmodels = 0;
	for (i = 0; i < n; i++) {
		struct conf_model *last = c->nmodels ? &c->models[c->nmodels - 1] : NULL;

		if (last && model_order(last, &c->models[i]) == 0)
			last->pools |= c->models[i].pools;
		else
			c->models[c->nmodels++] = c->models[i];
	}
}

/* One server in a reserved and an elastic pool would let batch work reach
 * the reserved slice through the elastic pool: refused, naming both. */
static void check_slices_apart(struct conf__loader *l)
{
	const struct conf *c = l->c;
	for (size_t i = 0; i < c->npools; i++) {
		const struct conf_pool *r = &c->pools[i];
		if (r->slice != CONF_SLICE_RESERVED)
			continue;
		for (size_t j = 0; j < c->npools; j++) {
			const struct conf_pool *e = &c->pools[j];
			if (e->slice != CONF_SLICE_ELASTIC)
				continue;
			for (size_t a = 0; a < r->nbackends; a++)
				for (size_t b = 0; b < e->nbackends; b++)
					if (r->backends[a].addr.text && e->backends[b].addr.text &&
					    conf__addr_same(&r->backends[a].addr, &e->backends[b].addr))
						conf__diags_add(&l->diags, (size_t)e->backends[b].line,
								"backend %s of elastic pool '%s' is also in reserved pool "
								"'%s' (line %d): batch work would reach the reserved slice",
								e->backends[b].addr.text, e->name, r->name,
								r->backends[a].line);
		}
	}
}

/* resolvers: [ IP:PORT, ... ], kept as c-ares' "IP:PORT,IP:PORT" form
 * (an IPv6 server as "[V6]:PORT"). */
static void parse_resolvers(struct conf__loader *l, const struct conf__field *sec)
{
	const yaml_node_t *n = conf__section(l, sec, NULL, YAML_SEQUENCE_NODE);
	size_t cap = 1, len = 0;
	char *csv;

	if (!n || conf__seq_len(n) == 0)
		return;
	for (size_t i = 0; i < conf__seq_len(n); i++)
		cap += strlen(conf__show(l, conf__seq_item(l, n, i))) + 1;
	if (!(csv = malloc(cap))) {
		conf__nomem(l);
		return;
	}
	for (size_t i = 0; i < conf__seq_len(n); i++) {
		const yaml_node_t *item = conf__seq_item(l, n, i);
		const char *s = conf__show(l, item);
		const char *colon = strrchr(s, ':');
		char ip[64], *end;
		unsigned char bin[16];
		unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
		size_t iplen = colon ? (size_t)(colon - s) : 0;
		const char *ipstart = s;
		if (iplen >= 2 && s[0] == '[' && s[iplen - 1] == ']') {
			ipstart++;
			iplen -= 2;
		}
		bool ok = conf__node_is(item, YAML_SCALAR_NODE) && colon && iplen < sizeof(ip) &&
			  colon[1] != '\0' && *end == '\0' && port > 0 && port <= 65535;
		if (ok) {
			memcpy(ip, ipstart, iplen);
			ip[iplen] = '\0';
			ok = inet_pton(strchr(ip, ':') ? AF_INET6 : AF_INET, ip, bin) == 1;
		}
		if (!ok) {
			conf__err(l, item, "resolvers: expected IP:PORT (an address, not a name), got '%s'", s);
			continue;
		}
		len += (size_t)snprintf(csv + len, cap - len, "%s%s", len ? "," : "", s);
	}
	l->c->resolvers = csv;
}

/* replicas: { count: N } or { dns: HOST:PORT, refresh_ms }, not both: two
 * sources of N would disagree sooner or later. */
static void parse_replicas(struct conf__loader *l, const struct conf__field *sec)
{
	struct conf__field f[SECTION_KEYS_MAX];
	const yaml_node_t *m = conf__section(l, sec, NULL, YAML_MAPPING_NODE), *n;
	struct conf_replicas *r = &l->c->replicas;

	if (!m)
		return;
	conf__scalars_read(l, m, "replicas", replicas_keys, NREPLICAS_KEYS, r, f);
	if (f[REPLICAS_DNS].key && f[REPLICAS_COUNT].key) {
		conf__err(l, f[REPLICAS_DNS].key, "replicas has both count and dns: use one");
		return;
	}
	if (f[REPLICAS_REFRESH].key && !f[REPLICAS_DNS].key) {
		conf__err(l, f[REPLICAS_REFRESH].key, "replicas: refresh_ms needs dns");
		return;
	}
	if (!f[REPLICAS_DNS].key && !f[REPLICAS_COUNT].key) {
		conf__err(l, m, "replicas needs count or dns");
		return;
	}
	if (f[REPLICAS_DNS].key && (n = conf__need(l, &f[REPLICAS_DNS], "replicas", m, YAML_SCALAR_NODE)))
		read_hostport(l, n, "dns", "replicas", &r->dns_host, &r->dns_port);
}

/* ---- classes ------------------------------------------------------------ */

/* The index of the pool that scalar n names, or -1. */
static int pool_index(const struct conf *c, const yaml_node_t *n)
{
	size_t j;

	for (j = 0; j < c->npools; j++)
		if (conf__node_equals(n, c->pools[j].name))
			return (int)j;
	return -1;
}

static void parse_class_pools(struct conf__loader *l, struct conf_class_cfg *cc,
			      enum conf_class cls, const yaml_node_t *seq, const char *ctx)
{
	const struct conf *c = l->c;
	size_t i, j;

	if (!(cc->pools = items_alloc(l, seq, ctx, "pools", sizeof *cc->pools)))
		return;
	for (i = 0; i < conf__seq_len(seq); i++) {
		const yaml_node_t *n = conf__seq_item(l, seq, i);
		int pi;

		if (!conf__node_is(n, YAML_SCALAR_NODE) || conf__node_is_null(n)) {
			conf__err(l, n, "pools in %s: expected a pool name, got %s", ctx,
				  conf__kind(l, n));
			continue;
		}
		if ((pi = pool_index(c, n)) < 0) {
			conf__err(l, n, "%s lists unknown pool '%s'", ctx, conf__show(l, n));
			continue;
		}
		for (j = 0; j < cc->npools && cc->pools[j] != (size_t)pi; j++)
			;
		if (j < cc->npools) {
			conf__err(l, n, "%s lists pool '%s' twice", ctx, conf__show(l, n));
			continue;
		}
		/* The promise at the heart of sluice: batch work never holds a
		 * reserved slice, so interactive work never waits behind it. */
		if (cls == CONF_CLASS_OPPORTUNISTIC && c->pools[pi].slice == CONF_SLICE_RESERVED) {
			conf__err(l, n, "class 'opportunistic' may not use reserved pool '%s': "
					"batch can never claim a reserved slice", conf__show(l, n));
			continue;
		}
		cc->pools[cc->npools++] = (size_t)pi;
	}
}

static void parse_class(struct conf__loader *l, enum conf_class cls, const yaml_node_t *k,
			const yaml_node_t *v)
{
	struct conf__field f[NCLASS_KEYS];
	struct conf_class_cfg *cc = &l->c->classes[cls];
	char ctx[32];
	const yaml_node_t *n;

	cc->defined = true;
	cc->line = (int)conf__node_line(k);
	conf__scalars_init(class_keys, NCLASS_KEYS, cc);
	snprintf(ctx, sizeof ctx, "class '%s'", conf_class_name(cls));
	if (!conf__node_is(v, YAML_MAPPING_NODE)) {
		conf__err(l, v, "%s: expected a mapping, got %s", ctx, conf__kind(l, v));
		return;
	}
	conf__scalars_read(l, v, ctx, class_keys, NCLASS_KEYS, cc, f);
	/* Off unless asked (the zeroed snapshot): fair shares keep slots for
	 * active tenants, which costs throughput (bench/RESULTS.md,
	 * tenant-fairness). */
	if (f[CLASS_TENANT_SLOT_SHARE].key &&
	    (n = conf__want(l, &f[CLASS_TENANT_SLOT_SHARE], ctx, YAML_SCALAR_NODE))) {
		int i = word_of(n, conf_tenant_slot_share_words, ARRAY_SIZE(conf_tenant_slot_share_words));
		if (i >= 0)
			cc->tenant_slot_share = (enum conf_tenant_slot_share)i;
		else
			conf__err(l, n, "tenant_slot_share in %s must be fair or off, got '%s'", ctx,
				  conf__show(l, n));
	}
	if ((n = conf__need(l, &f[CLASS_POOLS], ctx, k, YAML_SEQUENCE_NODE)))
		parse_class_pools(l, cc, cls, n, ctx);
	conf__preemption_read(l, cc, cls, &f[CLASS_PREEMPTION], ctx);
}

static void parse_classes(struct conf__loader *l, const struct conf__field *sec)
{
	const yaml_node_t *m = entries_section(l, sec, "class");
	struct conf__entry e = { 0 };
	enum conf_class cls;

	if (!m)
		return;
	while (conf__entry_next(l, m, &e)) {
		if (conf_class_parse(conf__node_text(e.key), e.key->data.scalar.length, &cls) < 0) {
			conf__err(l, e.key, "unknown class '%s' (expected interactive, standard or opportunistic)",
				  conf__show(l, e.key));
			continue;
		}
		if (l->c->classes[cls].defined)
			continue;	/* a duplicate that conf__dups_check() could not record */
		parse_class(l, cls, e.key, e.val);
	}
}

/* ---- metrics and the access log ----------------------------------------- */

/* Prometheus `le` bounds: at most CONF_BUCKETS_MAX, each in (0, 1 day], and
 * strictly ascending as Prometheus needs.  The first error ends the list. */
static void parse_buckets(struct conf__loader *l, const struct conf__field *f,
			  const yaml_node_t *seq)
{
	struct conf_metrics *m = &l->c->metrics;
	yaml_node_item_t *it;
	size_t n = 0;

	for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
		struct conf__field item = { "bucket", f->key, conf__node(l, *it) };
		double v;

		if (n == CONF_BUCKETS_MAX) {
			conf__err(l, item.val, "metrics: at most %d buckets", CONF_BUCKETS_MAX);
			return;
		}
		if (!conf__value_num(l, &item, "metrics.buckets", 0, true, 86400, &v))
			return;
		if (n > 0 && v <= m->buckets[n - 1]) {
			conf__err(l, item.val, "metrics.buckets must be ascending: %g after %g", v,
				  m->buckets[n - 1]);
			return;
		}
		m->buckets[n++] = v;
	}
	if (n == 0) {
		conf__err(l, f->val, "metrics.buckets: expected at least one bound");
		return;
	}
	m->nbuckets = n;
}

static void parse_metrics(struct conf__loader *l, const struct conf__field *sec)
{
	struct conf__field f[NMETRICS_KEYS];
	const yaml_node_t *map = conf__section(l, sec, NULL, YAML_MAPPING_NODE);
	const yaml_node_t *seq;

	if (!map)
		return;
	conf__scalars_read(l, map, "metrics", metrics_keys, NMETRICS_KEYS, &l->c->metrics, f);
	if (f[METRICS_BUCKETS].key &&
	    (seq = conf__want(l, &f[METRICS_BUCKETS], "metrics", YAML_SEQUENCE_NODE)))
		parse_buckets(l, &f[METRICS_BUCKETS], seq);
}

/* "off" and "" both mean no access log. */
static void parse_access_log(struct conf__loader *l, const struct conf__field *f)
{
	struct conf *c = l->c;

	if (!conf__value_str(l, f, NULL, &c->access_log))
		return;
	if (c->access_log != NULL && (strcmp(c->access_log, "off") == 0 || c->access_log[0] == '\0')) {
		free(c->access_log);
		c->access_log = NULL;
	}
}

/* log_format: text | json; log_level: debug | info | warn | error. */
static void parse_log(struct conf__loader *l, const struct conf__field *format, const struct conf__field *level)
{
	struct conf *c = l->c;
	const yaml_node_t *n;

	c->log_level = CONF_LOG_INFO;
	if (format->key && (n = conf__want(l, format, NULL, YAML_SCALAR_NODE))) {
		if (conf__node_equals(n, "json"))
			c->log_json = true;
		else if (!conf__node_equals(n, "text"))
			conf__err(l, n, "log_format must be text or json, got '%s'", conf__show(l, n));
	}
	if (level->key && (n = conf__want(l, level, NULL, YAML_SCALAR_NODE))) {
		int i = word_of(n, conf_log_level_words, ARRAY_SIZE(conf_log_level_words));
		if (i >= 0)
			c->log_level = (enum conf_log_level)i;
		else
			conf__err(l, n, "log_level must be debug, info, warn or error, got '%s'", conf__show(l, n));
	}
}

/* ---- shared limits ------------------------------------------------------ */

static void parse_shared_limits(struct conf__loader *l, const struct conf__field *sec)
{
	struct conf_shared_limits *sl = &l->c->shared_limits;
	struct conf__field f[SECTION_KEYS_MAX];
	const yaml_node_t *m, *n;

	conf__scalars_init(shared_keys, NSHARED_KEYS, sl);
	if (!sec->key || !(m = conf__section(l, sec, NULL, YAML_MAPPING_NODE)))
		return;
	conf__scalars_read(l, m, "shared_limits", shared_keys, NSHARED_KEYS, sl, f);
	if ((n = conf__need(l, &f[SHARED_REDIS], "shared_limits", m, YAML_SCALAR_NODE)))
		read_hostport(l, n, "redis", "shared_limits", &sl->redis_host, &sl->redis_port);
	if (f[SHARED_PREFIX].key) {
		if (conf__value_str(l, &f[SHARED_PREFIX], "shared_limits", &sl->key_prefix) && sl->key_prefix &&
		    strlen(sl->key_prefix) > CONF_KEY_PREFIX_MAX)
			conf__err(l, f[SHARED_PREFIX].val, "shared_limits.key_prefix: at most %d bytes",
				  CONF_KEY_PREFIX_MAX);
	} else if (!(sl->key_prefix = strdup("sluice:")))
		conf__nomem(l);
}

/* ---- the top level ------------------------------------------------------ */

static void set_defaults(struct conf__loader *l)
{
	/* Log-spaced from 1 ms to 10 min: interactive TTFB at the low end,
	 * batch generations at the high end. */
	static const double buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
					  1, 2.5, 5, 10, 25, 60, 120, 300, 600 };
	static const char admin[] = "127.0.0.1:9090";
	struct conf *c = l->c;
	char why[160];

	conf__scalars_init(limits_keys, ARRAY_SIZE(limits_keys), &c->limits);
	conf__scalars_init(timeouts_keys, ARRAY_SIZE(timeouts_keys), &c->timeouts);
	conf__scalars_init(metrics_keys, NMETRICS_KEYS, &c->metrics);
	conf__scalars_init(replicas_keys, NREPLICAS_KEYS, &c->replicas);
	c->metrics.nbuckets = ARRAY_SIZE(buckets);
	memcpy(c->metrics.buckets, buckets, sizeof buckets);
	if (conf__addr_resolve(admin, strlen(admin), true, &c->admin_listen, why, sizeof why) < 0)
		conf__nomem(l);	/* a numeric address only fails to be copied */
}

/* listen is required; admin_listen has a default.  Two sockets on one
 * address are caught here rather than as a bind error at start-up, or
 * worse, after a reload. */
static void parse_listen(struct conf__loader *l, const struct conf__field *listen,
			 const struct conf__field *admin)
{
	struct conf *c = l->c;
	bool lok = false, aok;

	if (conf__need(l, listen, NULL, NULL, YAML_SCALAR_NODE))
		lok = conf__addr_read(l, listen, NULL, true, &c->listen);
	aok = conf__addr_read(l, admin, NULL, true, &c->admin_listen);
	if (lok && aok && !conf__addr_port_zero(&c->listen) &&
	    conf__addr_same(&c->listen, &c->admin_listen))
		conf__err(l, admin->key ? admin->val : listen->val,
			  "admin_listen must differ from listen (both are %s)", c->listen.text);
}

void conf__schema_read(struct conf__loader *l, const yaml_node_t *root)
{
	enum { LISTEN, ADMIN, LIMITS, TIMEOUTS, CLASSES, POOLS, TENANTS, ANON, METRICS,
	       ACCESS_LOG, LOG_FORMAT, LOG_LEVEL, RESOLVERS, REPLICAS, SHARED, N };
	struct conf__field f[N] = {
		[LISTEN] = { .name = "listen" },
		[ADMIN] = { .name = "admin_listen" },
		[LIMITS] = { .name = "limits" },
		[TIMEOUTS] = { .name = "timeouts" },
		[CLASSES] = { .name = "classes" },
		[POOLS] = { .name = "pools" },
		[TENANTS] = { .name = "tenants" },
		[ANON] = { .name = "anonymous_tenant" },
		[METRICS] = { .name = "metrics" },
		[ACCESS_LOG] = { .name = "access_log" },
		[LOG_FORMAT] = { .name = "log_format" },
		[LOG_LEVEL] = { .name = "log_level" },
		[RESOLVERS] = { .name = "resolvers" },
		[REPLICAS] = { .name = "replicas" },
		[SHARED] = { .name = "shared_limits" },
	};

	set_defaults(l);
	if (!conf__node_is(root, YAML_MAPPING_NODE)) {
		conf__err(l, root, "expected a mapping at the top level, got %s", conf__kind(l, root));
		return;
	}
	conf__fields(l, root, NULL, f, N);
	parse_listen(l, &f[LISTEN], &f[ADMIN]);
	scalar_section(l, &f[LIMITS], limits_keys, ARRAY_SIZE(limits_keys), &l->c->limits);
	scalar_section(l, &f[TIMEOUTS], timeouts_keys, ARRAY_SIZE(timeouts_keys), &l->c->timeouts);
	parse_pools(l, &f[POOLS]);
	build_models(l);
	parse_classes(l, &f[CLASSES]);
	conf__tenants_read(l, &f[TENANTS], &f[ANON]);
	conf__anonymous_read(l, &f[ANON]);
	check_slices_apart(l);
	parse_metrics(l, &f[METRICS]);
	parse_access_log(l, &f[ACCESS_LOG]);
	parse_log(l, &f[LOG_FORMAT], &f[LOG_LEVEL]);
	parse_resolvers(l, &f[RESOLVERS]);
	parse_replicas(l, &f[REPLICAS]);
	parse_shared_limits(l, &f[SHARED]);
}

/* ---- the running config, as JSON ---------------------------------------- */

/*
 * conf__schema_dump() is the reading above turned round: the snapshot as a
 * JSON object laid out like the file, every default filled in, so that two
 * dumps can be compared key by key (`sluice -t --diff`).  The table-driven
 * sections are written by walking the same tables the loader reads, so a key
 * added to a table shows without more code here.  Named things (pools,
 * backends, tenants, classes) are objects keyed by name rather than arrays,
 * so that adding one in the middle of a list changes one entry, not every
 * index after it; lists whose order means nothing (keys, models) are sorted.
 *
 * Secrets: a tenant key is shown as the first 12 hex digits of the sha256
 * the file holds, and an upstream credential as "sha256:" and 12 hex digits
 * of its hash: enough to tell a rotation, nothing that helps guess one.
 */

struct dump {
	bool ok;			/* false once anything failed to allocate */
};

/* Set o[k] = v, taking v (jansson frees it on failure too), and remember
 * any failure. */
static json_t *child(struct dump *d, json_t *o, const char *k, json_t *v);

static void put(struct dump *d, json_t *o, const char *k, json_t *v)
{
	(void)child(d, o, k, v);
}

/* As put(), for a new object or array that the caller fills next: returns
 * it, or NULL (which put() and add() accept) when it could not be added. */
static json_t *child(struct dump *d, json_t *o, const char *k, json_t *v)
{
	if (o == NULL || v == NULL) {
		json_decref(v);
		d->ok = false;
		return NULL;
	}
	if (json_object_set_new(o, k, v) < 0) {
		d->ok = false;
		return NULL;
	}
	return v;
}

static void add(struct dump *d, json_t *a, json_t *v)
{
	if (a == NULL || v == NULL) {
		json_decref(v);
		d->ok = false;
	} else if (json_array_append_new(a, v) < 0) {
		d->ok = false;
	}
}

static void scalars(struct dump *d, json_t *o, const struct conf__scalar *t, size_t n, const void *base)
{
	if (o == NULL || conf__scalars_dump(t, n, base, o) < 0)
		d->ok = false;
}

/* How hash h is shown (conf__key_hex()), after `prefix`. */
static json_t *fingerprint(const char *prefix, const uint8_t *h)
{
	char s[CONF__KEY_HEX + 1];

	conf__key_hex(h, s);
	return json_sprintf("%s%s", prefix, s);
}

static json_t *hostport(const char *host, uint16_t port)
{
	return json_sprintf(strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
}

static int str_order(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A JSON array of strings v[0..n), sorted. */
static json_t *sorted_strings(struct dump *d, char *const *v, size_t n)
{
	json_t *a = json_array();
	const char **s = malloc((n ? n : 1) * sizeof *s);

	if (s == NULL) {
		d->ok = false;
		return a;
	}
	memcpy(s, v, n * sizeof *s);
	qsort(s, n, sizeof *s, str_order);
	for (size_t i = 0; i < n; i++)
		add(d, a, json_string(s[i]));
	free(s);
	return a;
}

static json_t *dump_pool(struct dump *d, const struct conf_pool *p)
{
	json_t *o = json_object(), *sub;

	put(d, o, "slice", json_string(conf_slice_words[p->slice]));
	if (p->gpu_model != NULL || p->mig_profile != NULL) {
		sub = child(d, o, "gpu", json_object());
		if (p->gpu_model != NULL)
			put(d, sub, "model", json_string(p->gpu_model));
		if (p->mig_profile != NULL)
			put(d, sub, "mig_profile", json_string(p->mig_profile));
	}
	if (p->upstream_bearer != NULL) {
		uint8_t h[SHA256_DIGEST_LENGTH];

		SHA256((const unsigned char *)p->upstream_bearer, strlen(p->upstream_bearer), h);
		put(d, child(d, o, "upstream_auth", json_object()), "bearer", fingerprint("sha256:", h));
	}
	if (p->models != NULL)
		put(d, o, "models", sorted_strings(d, p->models, p->nmodels));
	if (p->discovery.dns_host != NULL) {
		sub = child(d, o, "discovery", json_object());
		put(d, sub, "dns", hostport(p->discovery.dns_host, p->discovery.dns_port));
		scalars(d, sub, discovery_keys, ARRAY_SIZE(discovery_keys), &p->discovery);
	} else {
		sub = child(d, o, "backends", json_object());
		for (size_t i = 0; i < p->nbackends; i++)
			put(d, sub, p->backends[i].addr.text,
			    json_pack("{s:I}", "max_inflight", (json_int_t)p->backends[i].max_inflight));
	}
	sub = child(d, o, "backend_defaults", json_object());
	scalars(d, sub, backend_default_keys, ARRAY_SIZE(backend_default_keys), &p->backend_defaults);
	if (p->health.enabled) {
		sub = child(d, o, "health", json_object());
		put(d, sub, "path", json_string(p->health.path));
		scalars(d, sub, health_keys, NHEALTH_KEYS, &p->health);
	}
	if (p->outlier.enabled) {
		sub = child(d, o, "outlier", json_object());
		scalars(d, sub, outlier_keys, NOUTLIER_KEYS, &p->outlier);
	}
	sub = child(d, o, "slots", json_object());
	put(d, sub, "adapt", json_string(conf_slots_adapt_words[p->slots.adapt]));
	scalars(d, sub, slots_keys, NSLOTS_KEYS, &p->slots);
	return o;
}

static json_t *dump_class(struct dump *d, const struct conf *c, enum conf_class k)
{
	const struct conf_class_cfg *cc = &c->classes[k];
	json_t *o = json_object(), *pools = json_array();

	scalars(d, o, class_keys, NCLASS_KEYS, cc);
	put(d, o, "tenant_slot_share", json_string(conf_tenant_slot_share_words[cc->tenant_slot_share]));
	if (o == NULL || conf__preemption_dump(cc, k, o) < 0)
		d->ok = false;
	for (size_t i = 0; i < cc->npools; i++)
		add(d, pools, json_string(c->pools[cc->pools[i]].name));
	put(d, o, "pools", pools);
	return o;
}

static int hash_cmp(const void *a, const void *b)
{
	return memcmp(*(const uint8_t *const *)a, *(const uint8_t *const *)b, 32);
}

static json_t *dump_tenant(struct dump *d, const struct conf_tenant *t)
{
	json_t *o = json_object();
	/* In the order of their hashes, which is the order of what is shown. */
	const uint8_t **h = calloc(t->nkeys ? t->nkeys : 1, sizeof *h);

	if (h != NULL) {
		json_t *keys = child(d, o, "keys", json_array());
		for (size_t i = 0; i < t->nkeys; i++)
			h[i] = t->keys[i].sha256;
		qsort(h, t->nkeys, sizeof *h, hash_cmp);
		for (size_t i = 0; i < t->nkeys; i++)
			add(d, keys, fingerprint("", h[i]));
	} else {
		d->ok = false;
	}
	free(h);
	put(d, o, "default_class", json_string(conf_class_name(t->default_class)));
	put(d, o, "max_class", json_string(conf_class_name(t->max_class)));
	put(d, o, "weight", json_real(t->weight));
	put(d, o, "requests_per_s", json_real(t->requests_per_s));
	put(d, o, "burst", json_real(t->burst));
	put(d, o, "tokens_per_min", json_real(t->tokens_per_min));
	return o;
}

json_t *conf__schema_dump(const struct conf *c)
{
	struct dump d = { .ok = true };
	json_t *root = json_object(), *sub;

	put(&d, root, "listen", json_string(c->listen.text));
	put(&d, root, "admin_listen", json_string(c->admin_listen.text));
	sub = child(&d, root, "limits", json_object());
	scalars(&d, sub, limits_keys, ARRAY_SIZE(limits_keys), &c->limits);
	sub = child(&d, root, "timeouts", json_object());
	scalars(&d, sub, timeouts_keys, ARRAY_SIZE(timeouts_keys), &c->timeouts);
	sub = child(&d, root, "pools", json_object());
	for (size_t i = 0; i < c->npools; i++)
		put(&d, sub, c->pools[i].name, dump_pool(&d, &c->pools[i]));
	sub = child(&d, root, "classes", json_object());
	for (int k = 0; k < CONF_CLASS_COUNT; k++)
		if (c->classes[k].defined)
			put(&d, sub, conf_class_name((enum conf_class)k), dump_class(&d, c, (enum conf_class)k));
	sub = child(&d, root, "tenants", json_object());
	for (size_t i = 0; i < c->ntenants; i++)
		put(&d, sub, c->tenants[i].name, dump_tenant(&d, &c->tenants[i]));
	if (c->anonymous_tenant != NULL)
		put(&d, root, "anonymous_tenant", json_string(c->anonymous_tenant));
	sub = child(&d, root, "metrics", json_object());
	scalars(&d, sub, metrics_keys, NMETRICS_KEYS, &c->metrics);
	json_t *buckets = json_array();
	for (size_t i = 0; i < c->metrics.nbuckets; i++)
		add(&d, buckets, json_real(c->metrics.buckets[i]));
	put(&d, sub, "buckets", buckets);
	put(&d, root, "access_log", c->access_log != NULL ? json_string(c->access_log) : json_string("off"));
	put(&d, root, "log_format", json_string(c->log_json ? "json" : "text"));
	put(&d, root, "log_level", json_string(conf_log_level_words[c->log_level]));
	if (c->resolvers != NULL)
		put(&d, root, "resolvers", json_string(c->resolvers));
	sub = child(&d, root, "replicas", json_object());
	if (c->replicas.dns_host != NULL) {
		put(&d, sub, "dns", hostport(c->replicas.dns_host, c->replicas.dns_port));
		put(&d, sub, "refresh_ms", json_integer((json_int_t)c->replicas.refresh_ms));
	} else {
		put(&d, sub, "count", json_integer(c->replicas.count));
	}
	if (c->shared_limits.redis_host != NULL) {
		sub = child(&d, root, "shared_limits", json_object());
		put(&d, sub, "redis", hostport(c->shared_limits.redis_host, c->shared_limits.redis_port));
		put(&d, sub, "key_prefix", json_string(c->shared_limits.key_prefix));
		scalars(&d, sub, shared_keys, NSHARED_KEYS, &c->shared_limits);
	}
	if (!d.ok) {
		json_decref(root);
		return NULL;
	}
	return root;
}
