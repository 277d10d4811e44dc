/*
 * admission_bench.c - what admission costs per request with a deep queue.
 *
 * Runs what gateway/dispatch.c does for a request, without the sockets:
 * key lookup (SHA-256 and a digest table), then the admission policy
 * (queue_admit: classification, both token buckets, the queue check and the
 * push), with `depth` requests already queued across 3 classes and
 * `tenants` tenants, every slot busy; then the dispatch side (queue_pop,
 * queue_on_dispatch, queue_on_release) that keeps the depth steady.  Prints
 * nanoseconds per request for each side.
 *
 *   admission_bench [DEPTH=10000] [TENANTS=100] [ROUNDS=200000]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "queue/admit.h"
#include "queue/queue.h"
#include "queue/tenant.h"

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static const char *const class_names[] = { "interactive", "standard", "opportunistic" };

int main(int argc, char **argv)
{
	int depth = argc > 1 ? atoi(argv[1]) : 10000;
	int ntenants = argc > 2 ? atoi(argv[2]) : 100;
	int rounds = argc > 3 ? atoi(argv[3]) : 200000;
	if (depth < 1 || ntenants < 1 || rounds < 1) {
		fprintf(stderr, "usage: admission_bench [DEPTH] [TENANTS] [ROUNDS]\n");
		return 2;
	}

	/* A config as an operator would write it, with ntenants tenants. */
	size_t cap = 4096 + (size_t)ntenants * 200;
	char *yaml = malloc(cap);
	int n = snprintf(yaml, cap,
		"listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:1\n"
		"limits: { max_queued_bytes: 1GiB }\n"
		"classes:\n"
		"  interactive: { max_queue: 1000000, max_wait_ms: 600000, pools: [gold, spot] }\n"
		"  standard: { max_queue: 1000000, max_wait_ms: 600000, pools: [spot] }\n"
		"  opportunistic: { max_queue: 1000000, max_wait_ms: 600000, pools: [spot], min_share: 0.05, max_slot_share: 0.75 }\n"
		"pools:\n"
		"  gold: { slice: reserved, backends: [ { address: 127.0.0.1:9001, max_inflight: 64 } ] }\n"
		"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 64 } ] }\n"
		"tenants:\n");
	for (int t = 0; t < ntenants; t++) {
		char key[32];
		uint8_t h[32];
		snprintf(key, sizeof(key), "sk-tenant-%d", t);
		queue_key_hash(key, strlen(key), h);
		n += snprintf(yaml + n, cap - (size_t)n, "  t%d: { keys: [ { sha256: \"", t);
		for (int i = 0; i < 32; i++)
			n += snprintf(yaml + n, cap - (size_t)n, "%02x", h[i]);
		n += snprintf(yaml + n, cap - (size_t)n, "\" } ], default_class: standard, max_class: interactive, "
			      "requests_per_s: 1000000, tokens_per_min: 1000000000 }\n");
	}
	struct conf *conf;
	struct conf_diag diag = { 0 };
	if (conf_parse("bench.yaml", yaml, (size_t)n, &conf, &diag) < 0) {
		fprintf(stderr, "%s\n", diag.msg[0]);
		return 1;
	}
	struct queue_tenants ts;
	struct queue q;
	queue_tenants_init(&ts, conf, 0);
	queue_init(&q, conf);
	queue_set_pool_slots(&q, 0, 64);
	queue_set_pool_slots(&q, 1, 64);

	int total = depth + rounds;
	struct queue_item *items = calloc((size_t)total, sizeof(*items));
	char (*keys)[32] = calloc((size_t)ntenants, sizeof(*keys));
	for (int t = 0; t < ntenants; t++)
		snprintf(keys[t], sizeof(keys[t]), "sk-tenant-%d", t);

	uint64_t clock_ms = 1;
	unsigned long long sink = 0;
	/* Every slot is busy: each request is admitted to wait. */
	uint8_t pools[2] = { QUEUE_POOL_UP, QUEUE_POOL_UP };
	/* Admit one request: everything dispatch.c does before it waits. */
#define ADMIT(i) do {									\
		int t_ = (int)((i) * 7 % ntenants);					\
		struct queue_tenant *t = queue_tenant_by_key(&ts, keys[t_], strlen(keys[t_])); \
		const char *cn = class_names[(i) % 3];					\
		struct queue_facts f = { .class_header = cn, .class_header_len = strlen(cn), \
					 .body_bytes = 1200, .prompt_tokens = 300, .output_tokens = 0,		\
					 .deadline_ms = 600000 + (uint64_t)((i) % 977), .body_class = -1, .pools = pools }; \
		struct queue_verdict v;							\
		queue_admit(&q, t, &f, clock_ms, &items[i], &v);			\
		sink += v.action;							\
	} while (0)

	for (int i = 0; i < depth; i++)
		ADMIT(i);

	double admit_ns = 0, pop_ns = 0;
	for (int r = 0; r < rounds; r++) {
		int i = depth + r;
		double t0 = now_ns();
		ADMIT(i);
		double t1 = now_ns();
		struct queue_item *it = queue_pop(&q, (size_t)(r & 1));
		if (it == NULL)
			it = queue_pop(&q, 1);
		queue_on_dispatch(&q, (size_t)(r & 1), (enum conf_class)it->klass);
		queue_on_release(&q, (size_t)(r & 1), (enum conf_class)it->klass, 100);
		double t2 = now_ns();
		admit_ns += t1 - t0;
		pop_ns += t2 - t1;
		clock_ms += (r & 15) == 0;
	}
	printf("admission_bench: %d queued, %d tenants, %d rounds\n", q.count, ntenants, rounds);
	printf("admit (key lookup + queue_admit: classify, 2 buckets, check, push): %.0f ns/request\n", admit_ns / rounds);
	printf("dispatch (pop + dispatch + release):                                 %.0f ns/request\n", pop_ns / rounds);
	printf("(verdict checksum %llu: keeps the compiler from dropping the admissions)\n", sink);

	struct queue_item *it;
	while ((it = queue_expired(&q, UINT64_MAX)) != NULL)
		queue_remove(&q, it);
	queue_finish(&q);
	queue_tenants_finish(&ts);
	conf_destroy(conf);
	free(items);
	free(keys);
	free(yaml);
	return 0;
}
