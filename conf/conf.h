/*
 * conf.h - the configuration snapshot.
 *
 * A `struct conf` is built once from a YAML file by conf_load() and is
 * immutable afterwards: every string and array it points to is owned by the
 * snapshot and freed by conf_destroy().  A reload builds a second snapshot
 * and swaps it in; nothing ever edits a live one.
 *
 * Validation happens entirely at load time and refuses configurations that
 * would break a promise sluice makes to its users (see docs/DESIGN.md): an
 * opportunistic class that lists a reserved pool, a class with no pool, a
 * tenant whose default class is above its max class, duplicate keys, and so
 * on.  Every error names the file and line it comes from.
 *
 * This header includes nothing from gateway/, queue/ or backends/: the
 * config is plain data.
 */
#ifndef SLUICE_CONF_CONF_H
#define SLUICE_CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Classes in strict priority order: a lower value is more urgent. */
enum conf_class {
	CONF_CLASS_INTERACTIVE = 0,
	CONF_CLASS_STANDARD,
	CONF_CLASS_OPPORTUNISTIC,
	CONF_CLASS_COUNT
};

/* log_level, in the order of gateway/log.h's levels. */
enum conf_log_level { CONF_LOG_DEBUG = 0, CONF_LOG_INFO, CONF_LOG_WARN, CONF_LOG_ERROR };

enum conf_slice {
	CONF_SLICE_RESERVED = 0,	/* only the classes that list it; never opportunistic */
	CONF_SLICE_ELASTIC,
};

/* An address as written in the file plus its resolved form. */
struct conf_addr {
	char *text;			/* "127.0.0.1:8080", as written */
	struct sockaddr_storage sa;	/* resolved at load time */
	socklen_t salen;
};

struct conf_backend {
	struct conf_addr addr;
	unsigned max_inflight;		/* concurrent requests all sluice replicas together may send it */
	int line;
};

/* Pool indexes fit one 64-bit mask (queue/: the pools a request may use). */
#define CONF_POOLS_MAX 64
/* A model name is at most this many bytes (the request body scan keeps
 * that many), and a pool lists at most CONF_MODELS_MAX of them. */
#define CONF_MODEL_MAX 255
#define CONF_MODELS_MAX 256

/* discovery: { dns: HOST:PORT, refresh_ms }: every A and AAAA record of
 * HOST is a backend on PORT, looked up again every refresh_ms. */
struct conf_discovery {
	char *dns_host;			/* NULL: no discovery */
	uint16_t dns_port;
	uint64_t refresh_ms;
};

/* backend_defaults: { max_inflight, slow_start_ms }: the slots of a
 * discovered backend, and how long a backend that joins a running pool
 * takes to reach all of its slots. */
struct conf_backend_defaults {
	unsigned max_inflight;
	uint64_t slow_start_ms;
};

/* health: active checks of every backend of a pool (absent: none). */
struct conf_health {
	bool enabled;			/* the pool has a health section */
	char *path;			/* GET target, "/health" by default */
	uint64_t interval_ms;		/* between two checks of one backend (jittered +-10%) */
	uint64_t timeout_ms;		/* connect to response head; at most interval_ms */
	uint32_t unhealthy_after;	/* consecutive failed checks that take a backend out */
	uint32_t healthy_after;		/* consecutive passed checks that put it back */
	int line;
};

/* outlier: passive ejection on the outcomes of real requests (absent: none). */
struct conf_outlier {
	bool enabled;
	uint32_t consecutive_failures;	/* 5xx, resets, timeouts in a row that eject */
	uint64_t eject_ms;		/* first ejection; doubles with each one after */
	uint64_t max_eject_ms;		/* cap on the doubling */
	double max_ejected_share;	/* (0, 1]: never more of the pool ejected at once */
	int line;
};

/*
 * slots: how many requests each backend of the pool takes at once.  `off`
 * (the default): its max_inflight, as written.  Otherwise sluice adapts each
 * backend's slots between min and max from the backend's load, starting at
 * max_inflight (clamped): `vllm_metrics` polls the backend's Prometheus
 * /metrics every interval_ms (num_requests_running / _waiting,
 * kv_cache_usage_perc); `latency` follows the time to first token of
 * sluice's own requests.  min and max count the backend's slots across all
 * replicas, as max_inflight does (backends/adapt.h).
 */
enum conf_slots_adapt {
	CONF_SLOTS_OFF = 0,
	CONF_SLOTS_VLLM_METRICS,
	CONF_SLOTS_LATENCY,
};

struct conf_slots {
	enum conf_slots_adapt adapt;
	uint32_t min, max;		/* bounds of a backend's adapted slots (all replicas) */
	uint64_t interval_ms;		/* between two polls / controller steps of one backend */
	int line;
};

struct conf_pool {
	char *name;
	enum conf_slice slice;
	char *gpu_model;		/* optional, informational (may be NULL) */
	char *mig_profile;		/* optional, informational (may be NULL) */
	/* upstream_auth: { bearer_env: NAME } or { bearer_file: PATH }: the
	 * backend's own key, read at load (and at each reload) from the
	 * environment or a file, never written in the YAML; sent upstream as
	 * `Authorization: Bearer` in place of the client's credentials.  Never
	 * logged or shown.  NULL: no credential is sent. */
	char *upstream_bearer;
	struct conf_backend *backends;	/* the static list (none with discovery) */
	size_t nbackends;
	struct conf_discovery discovery;
	struct conf_backend_defaults backend_defaults;
	struct conf_health health;
	struct conf_outlier outlier;
	struct conf_slots slots;
	/* The models the pool serves, as a request body's `model` names them;
	 * NULL (nmodels 0) when the file gives no list: any model. */
	char **models;
	size_t nmodels;
	int line;
};

/* One model that some pool lists, with the pools that list it. */
struct conf_model {
	char *name;			/* owned by the pool that lists it first */
	size_t len;
	uint64_t pools;			/* bit p: pool p lists it */
};

/* tenant_slot_share of a class: whether one tenant may hold every slot of
 * a pool that its class uses while another tenant of the class is active. */
enum conf_tenant_slot_share {
	CONF_TENANT_SLOT_SHARE_OFF = 0,		/* first come, first served within the class (default) */
	CONF_TENANT_SLOT_SHARE_FAIR,		/* each active tenant: its weighted share */
};

/* preemption: on a class whose work may be ended early so that an
 * interactive request meets its deadline (gateway/preempt.h).  Only the
 * opportunistic class may set it. */
struct conf_preemption {
	bool enabled;
	double max_per_s;		/* preemptions per second, at most (a token bucket) */
	int line;			/* 0: not in the file */
};

struct conf_class_cfg {
	bool defined;			/* false when the file has no such class */
	unsigned max_queue;		/* queued requests */
	uint64_t max_queue_bytes;	/* bytes of queued request bodies */
	uint64_t max_wait_ms;		/* queue deadline */
	size_t *pools;			/* indexes into conf.pools, preference order */
	size_t npools;
	double min_share;		/* 0..1, share of a pool's dispatches while waiting */
	double max_slot_share;		/* 0..1, cap on a pool's slots held at once (1 = none) */
	uint64_t ttft_objective_ms;	/* refuse a waiter predicted to miss it (queue/admit.c); 0: none */
	enum conf_tenant_slot_share tenant_slot_share;	/* per-tenant cap on the class's slots (queue/share.h) */
	struct conf_preemption preemption;
	int line;
};

struct conf_key {
	uint8_t sha256[32];		/* SHA-256 of the API key; the key itself is never stored */
};

struct conf_tenant {
	char *name;
	struct conf_key *keys;
	size_t nkeys;
	enum conf_class default_class;
	enum conf_class max_class;	/* most urgent class the tenant may use */
	double weight;			/* fair-share weight inside a class (default 1) */
	double requests_per_s;		/* 0 = unlimited */
	double burst;			/* bucket depth in requests (default: max(1, requests_per_s)) */
	double tokens_per_min;		/* 0 = unlimited */
	int line;
};

struct conf_limits {
	uint64_t max_body_bytes;	/* buffered request body; 413 beyond */
	uint32_t max_header_bytes;	/* request line + header section; 431 beyond */
	uint32_t max_headers;		/* header fields; 431 beyond */
	uint64_t max_queued_bytes;	/* all classes together */
	uint32_t max_connections;	/* client connections; new ones are closed beyond */
	uint32_t default_max_tokens;	/* output tokens assumed when a request names none */
};

struct conf_timeouts {
	uint64_t header_ms;		/* first byte of a request to end of its headers: 408 */
	uint64_t idle_ms;		/* keep-alive connection with no request in progress */
	uint64_t body_ms;		/* gap between two reads of a request body: 408 */
	uint64_t connect_ms;		/* upstream TCP connect: 504 upstream_connect_timeout */
	uint64_t upstream_ms;		/* upstream silence (before or between bytes): 504 */
	uint64_t upstream_idle_ms;	/* idle pooled upstream connection is closed */
	uint64_t drain_ms;		/* SIGTERM: longest wait for in-flight work */
};

#define CONF_BUCKETS_MAX 40

/*
 * replicas: the sluice replicas in front of the same backends, which split
 * every backend's max_inflight between them (backends/backend.h).  Either
 * { count: N } or { dns: HOST:PORT, refresh_ms }: N is then the number of
 * A and AAAA records of HOST (the gateway's own headless Service), looked
 * up again every refresh_ms; the port is not used.  Absent: count 1.
 */
#define CONF_REPLICAS_MAX 1024
struct conf_replicas {
	unsigned count;			/* 1 by default; with dns, N until the first answer */
	char *dns_host;			/* NULL: count is N */
	uint16_t dns_port;
	uint64_t refresh_ms;
};

struct conf_metrics {
	bool histograms;		/* record latency histograms (default true) */
	bool tenant_histograms;		/* also per tenant: cardinality grows with tenants (default false) */
	double buckets[CONF_BUCKETS_MAX];	/* Prometheus `le` bounds, seconds, ascending */
	size_t nbuckets;
};

/* shared_limits: { redis: HOST:PORT, key_prefix, expected_replicas }:
 * tenants' buckets shared by the replicas through Redis (queue/lease.h). */
#define CONF_KEY_PREFIX_MAX 128
struct conf_shared_limits {
	char *redis_host;		/* NULL: no shared limits (the section is absent) */
	uint16_t redis_port;
	char *key_prefix;		/* before each key, default "sluice:" */
	uint64_t expected_replicas;	/* each replica's share when Redis is down (default 1) */
};

struct conf {
	char *path;
	struct conf_addr listen;
	struct conf_addr admin_listen;
	struct conf_limits limits;
	struct conf_timeouts timeouts;
	struct conf_class_cfg classes[CONF_CLASS_COUNT];
	struct conf_pool *pools;
	size_t npools;			/* at most CONF_POOLS_MAX */
	/* Every model some pool lists, sorted by name (bytes), without
	 * repeats; empty when no pool lists models (no routing by model). */
	struct conf_model *models;
	size_t nmodels;
	uint64_t pools_any;		/* bit p: pool p lists no models (serves any) */
	struct conf_tenant *tenants;
	size_t ntenants;
	char *anonymous_tenant;		/* tenant used when no key is sent, or NULL */
	struct conf_metrics metrics;
	char *access_log;		/* "-" for stdout, a file path, or NULL for none */
	enum conf_log_level log_level;	/* operator log: lines below are dropped */
	bool log_json;			/* log_format: json (one object per line) or text */
	/* resolvers: [ IP:PORT, ... ]: the DNS servers discovery asks, as
	 * "IP:PORT,IP:PORT" (c-ares' form); NULL: the system's. */
	char *resolvers;
	struct conf_replicas replicas;
	struct conf_shared_limits shared_limits;
};

/* Diagnostics collected while loading; each is "FILE:LINE: message". */
#define CONF_DIAG_MAX 16
struct conf_diag {
	size_t count;			/* may exceed CONF_DIAG_MAX; only the first are kept */
	char msg[CONF_DIAG_MAX][256];
	/* Values that load but are probably not what was meant (a duration
	 * under 50 with no unit): "FILE:LINE: message", kept whether the load
	 * succeeds or not, for the caller to print. */
	size_t nwarn;			/* may exceed CONF_DIAG_MAX; only the first are kept */
	char warn[CONF_DIAG_MAX][256];
};

/*
 * Load and validate a config file.  On success returns 0 and sets *out to a
 * new snapshot owned by the caller (free with conf_destroy()).  On failure
 * returns a negative errno (-EINVAL for an invalid config, -ENOENT etc. when
 * the file cannot be read), leaves *out NULL, and fills diag (when not NULL)
 * with one or more "FILE:LINE: message" lines.
 */
int conf_load(const char *path, struct conf **out, struct conf_diag *diag);

/* As conf_load(), from a buffer; `name` is used in messages. */
int conf_parse(const char *name, const char *text, size_t len,
	       struct conf **out, struct conf_diag *diag);

/* Free a snapshot and everything it owns.  conf_destroy(NULL) is a no-op. */
void conf_destroy(struct conf *c);

/*
 * The snapshot as a new JSON object laid out like the file, with every
 * default filled in and no secret: tenant keys as the first 12 hex digits
 * of their sha256, an upstream credential as "sha256:" and 12 hex digits of
 * its hash.  Pools, backends, classes and tenants are objects keyed by name.
 * GET /config serves it; `sluice -t --diff` compares two of them
 * (conf/diff.h).  Returns NULL when out of memory; the caller owns the
 * result (json_decref()).
 */
struct json_t;
struct json_t *conf_dump(const struct conf *c);

/* "interactive", "standard", "opportunistic". */
const char *conf_class_name(enum conf_class c);

/* The words the file writes for the other enumerations, indexed by value:
 * the loader reads them, and /config, the logs, the metrics' labels and
 * /status write them. */
extern const char *const conf_slice_words[2];			/* reserved, elastic */
extern const char *const conf_slots_adapt_words[3];		/* off, vllm_metrics, latency */
extern const char *const conf_tenant_slot_share_words[2];	/* off, fair */
extern const char *const conf_log_level_words[4];		/* debug, info, warn, error */

/* Parse a class name (exact, lower case; s need not be NUL-terminated);
 * returns 0 and sets *out, or -EINVAL. */
int conf_class_parse(const char *s, size_t len, enum conf_class *out);

/* Index of the pool called `name` or -1. */
int conf_pool_find(const struct conf *c, const char *name);

/* A pool of a newer snapshot that the older one does not have. */
#define CONF_POOL_NEW SIZE_MAX

/* Pools are matched by name across a reload: from[i] is the index in
 * `old` of the pool named like next->pools[i], or CONF_POOL_NEW.  `from`
 * holds next->npools entries (at most CONF_POOLS_MAX). */
void conf_pool_map(const struct conf *old, const struct conf *next, size_t *from);

/*
 * A copy of pool p that outlives its snapshot, for requests still running
 * on a pool that a reload removed: its name, slice, upstream credential,
 * health and outlier settings; no backends, models or discovery.  Returns
 * NULL when out of memory.  Free with conf_pool_free_copy() (NULL-safe).
 */
struct conf_pool *conf_pool_copy(const struct conf_pool *p);
void conf_pool_free_copy(struct conf_pool *p);

/*
 * The pools that serve model `name` (len bytes, not necessarily
 * NUL-terminated), as a mask (bit p: pool p): those that list it and those
 * that list no models.  UINT64_MAX when no pool lists models.  A name
 * longer than CONF_MODEL_MAX matches no list (its bytes are not read).
 */
uint64_t conf_model_pools(const struct conf *c, const char *name, size_t len);

#endif
