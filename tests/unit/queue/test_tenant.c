/*
 * test_tenant.c - tenants: finding one by its API key, and classifying its
 * requests (header, the class the body asks for, default; capped at
 * max_class).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "queue/tenant.h"

static const char yaml[] =
	"listen: 127.0.0.1:0\n"
	"admin_listen: 127.0.0.1:1\n"
	"classes:\n"
	"  interactive: { pools: [gold] }\n"
	"  standard: { pools: [gold] }\n"
	"  opportunistic: { pools: [spot] }\n"
	"pools:\n"
	"  gold: { slice: reserved, backends: [ { address: 127.0.0.1:9001, max_inflight: 4 } ] }\n"
	"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 8 } ] }\n"
	"tenants:\n"
	"  a: { keys: [ { sha256: \"%s\" } ], default_class: interactive, max_class: interactive }\n"
	"  c: { keys: [ { sha256: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9 } ], default_class: opportunistic, max_class: standard }\n";

struct fixture {
	struct conf *conf;
	struct queue_tenants tenants;
};

static void setup(struct fixture *f)
{
	char key[65], text[2048];
	uint8_t h[32];
	queue_key_hash("sk-a", 4, h);
	for (int i = 0; i < 32; i++)
		sprintf(key + 2 * i, "%02x", h[i]);
	snprintf(text, sizeof(text), yaml, key);
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("test.yaml", text, strlen(text), &f->conf, &diag), 0, "%s",
		     diag.count ? diag.msg[0] : "");
	cr_assert_eq(queue_tenants_init(&f->tenants, f->conf, 0), 0);
}

static void teardown(struct fixture *f)
{
	queue_tenants_finish(&f->tenants);
	conf_destroy(f->conf);
}

Test(tenant, keys_and_classification, .timeout = 5)
{
	struct fixture f;
	setup(&f);
	cr_assert_eq(queue_tenant_by_key(&f.tenants, "sk-a", 4), f.tenants.v[0]);
	cr_assert_null(queue_tenant_by_key(&f.tenants, "sk-b", 4));
	cr_assert_null(queue_tenant_by_key(&f.tenants, "sk-", 3));
	bool capped;
	const struct queue_tenant *c = f.tenants.v[1];
	cr_assert_eq(queue_classify(c, NULL, 0, -1, &capped), CONF_CLASS_OPPORTUNISTIC);
	cr_assert_not(capped);
	cr_assert_eq(queue_classify(c, "standard", 8, -1, &capped), CONF_CLASS_STANDARD);
	cr_assert_eq(queue_classify(c, "interactive", 11, -1, &capped), CONF_CLASS_STANDARD);
	cr_assert(capped, "asking above max_class is capped and says so");
	cr_assert_eq(queue_classify(c, NULL, 0, CONF_CLASS_INTERACTIVE, &capped), CONF_CLASS_STANDARD);
	cr_assert(capped, "the body's class is capped too");
	cr_assert_eq(queue_classify(c, "opportunistic", 13, CONF_CLASS_STANDARD, &capped), CONF_CLASS_OPPORTUNISTIC,
		     "the header wins over the body");
	cr_assert_eq(queue_classify(c, "bogus", 5, CONF_CLASS_STANDARD, &capped), CONF_CLASS_STANDARD,
		     "an invalid header falls through to the body's class");
	teardown(&f);
}

/* --- reload: tenants added, removed, reordered and changed ---------------- */

static const char head[] =
	"listen: 127.0.0.1:0\n"
	"admin_listen: 127.0.0.1:1\n"
	"classes:\n"
	"  standard: { pools: [spot] }\n"
	"pools:\n"
	"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 8 } ] }\n";

/* A config with `tenants` lines: "NAME KEY rest-of-flow-mapping" each,
 * KEY hashed here ("-" for none). */
static struct conf *config(const char *const *tenants, const char *extra)
{
	char text[8192];
	size_t n = (size_t)snprintf(text, sizeof(text), "%s%s%s", head, extra ? extra : "", tenants[0] ? "tenants:\n" : "");
	for (size_t i = 0; tenants[i] != NULL; i++) {
		char name[32], key[32], rest[256] = "";
		cr_assert_geq(sscanf(tenants[i], "%31s %31s %255[^\n]", name, key, rest), 2);
		n += (size_t)snprintf(text + n, sizeof(text) - n, "  %s: { default_class: standard, max_class: standard",
				      name);
		if (strcmp(key, "-") != 0) {
			uint8_t h[32];
			char hex[65];
			queue_key_hash(key, strlen(key), h);
			for (int j = 0; j < 32; j++)
				sprintf(hex + 2 * j, "%02x", h[j]);
			n += (size_t)snprintf(text + n, sizeof(text) - n, ", keys: [ { sha256: \"%s\" } ]", hex);
		}
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%s }\n", rest[0] ? ", " : "", rest);
	}
	struct conf *c = NULL;
	struct conf_diag diag = { 0 };
	cr_assert_eq(conf_parse("test.yaml", text, n, &c, &diag), 0, "%s\n%s", diag.count ? diag.msg[0] : "", text);
	return c;
}

static struct queue_tenant *by_key(struct queue_tenants *ts, const char *key)
{
	return queue_tenant_by_key(ts, key, strlen(key));
}

Test(tenant, reload_matches_tenants_by_name_and_carries_their_buckets, .timeout = 5)
{
	const char *const one[] = { "a sk-a requests_per_s: 10, burst: 10", "b sk-b requests_per_s: 1",
				    "c sk-c tokens_per_min: 600", NULL };
	struct conf *c1 = config(one, NULL);
	struct queue_tenants ts;
	cr_assert_eq(queue_tenants_init(&ts, c1, 0), 0);
	struct queue_tenant *a = by_key(&ts, "sk-a"), *c = by_key(&ts, "sk-c");
	uint64_t wait;
	for (int i = 0; i < 10; i++)
		cr_assert(queue_bucket_take(&a->requests, 1, 0, &wait));
	cr_assert_not(queue_bucket_take(&a->requests, 1, 0, &wait), "a spent its burst");
	cr_assert(queue_bucket_take(&c->tokens, 400, 0, &wait));

	/* b goes, d comes, c and a swap places; a gets a new key and a smaller
	 * burst, c a larger rate. */
	const char *const two[] = { "d sk-d requests_per_s: 5", "c sk-c tokens_per_min: 1200",
				    "a sk-a2 requests_per_s: 10, burst: 4", NULL };
	struct conf *c2 = config(two, NULL);
	cr_assert_eq(queue_tenants_reconfigure(&ts, c2, 0), 0);
	conf_destroy(c1);	/* nothing may point into the old snapshot now */
	cr_assert_eq(ts.n, 3);
	cr_assert_eq(by_key(&ts, "sk-a2"), a, "a kept tenant is the same object");
	cr_assert_eq(by_key(&ts, "sk-c"), c);
	cr_assert_null(by_key(&ts, "sk-a"), "a's old key is gone");
	cr_assert_null(by_key(&ts, "sk-b"), "a removed tenant's key is gone");
	struct queue_tenant *d = by_key(&ts, "sk-d");
	cr_assert_not_null(d);
	cr_assert_eq(ts.v[0], d);
	cr_assert_eq(ts.v[1], c);
	cr_assert_eq(ts.v[2], a);
	cr_assert_eq(a->index, 2);
	cr_assert_eq(c->index, 1);
	cr_assert_str_eq(a->cfg->name, "a");
	cr_assert_float_eq(a->cfg->burst, 4, 1e-9);
	cr_assert_float_eq(queue_bucket_level(&a->requests, 0), 0, 1e-9, "an empty bucket stays empty");
	cr_assert_not(queue_bucket_take(&a->requests, 1, 0, &wait), "still limited after the reload");
	cr_assert_float_eq(queue_bucket_level(&a->requests, 100), 1, 1e-9, "and refills at its rate");
	cr_assert_float_eq(queue_bucket_level(&c->tokens, 0), 200, 1e-9, "a partial level carries over");
	cr_assert_float_eq(c->tokens.burst, 1200, 1e-9);
	cr_assert_float_eq(queue_bucket_level(&d->requests, 0), 5, 1e-9, "a new tenant starts full");
	cr_assert_null(ts.retired, "b held no request: freed at once");

	/* A partial bucket above the new burst is capped at it; a full one
	 * stays full at the new size. */
	const char *const three[] = { "d sk-d requests_per_s: 5, burst: 2", "c sk-c tokens_per_min: 100",
				      "a sk-a2 requests_per_s: 10, burst: 4", NULL };
	struct conf *c3 = config(three, NULL);
	cr_assert_eq(queue_tenants_reconfigure(&ts, c3, 0), 0);
	conf_destroy(c2);
	cr_assert_float_eq(queue_bucket_level(&c->tokens, 0), 100, 1e-9);
	cr_assert_float_eq(queue_bucket_level(&d->requests, 0), 2, 1e-9);
	queue_tenants_finish(&ts);
	conf_destroy(c3);
}

Test(tenant, a_removed_tenant_lives_until_its_last_request_ends, .timeout = 5)
{
	const char *const one[] = { "a sk-a", "b sk-b requests_per_s: 2, burst: 2", NULL };
	struct conf *c1 = config(one, NULL);
	struct queue_tenants ts;
	cr_assert_eq(queue_tenants_init(&ts, c1, 0), 0);
	struct queue_tenant *b = by_key(&ts, "sk-b");
	uint64_t wait;
	cr_assert(queue_bucket_take(&b->requests, 2, 0, &wait));
	struct queue_tenant *r1 = queue_tenant_get(b), *r2 = queue_tenant_get(b);

	const char *const two[] = { "a sk-a", NULL };
	struct conf *c2 = config(two, NULL);
	cr_assert_eq(queue_tenants_reconfigure(&ts, c2, 0), 0);
	conf_destroy(c1);
	cr_assert_eq(ts.n, 1);
	cr_assert_null(by_key(&ts, "sk-b"));
	cr_assert_eq(ts.retired, b, "held by two requests: retired, not freed");
	cr_assert_eq(b->index, QUEUE_TENANT_RETIRED);
	/* What its requests still read outlives the snapshot that named it. */
	cr_assert_str_eq(b->cfg->name, "b");
	cr_assert_float_eq(b->cfg->requests_per_s, 2, 1e-9);
	cr_assert_eq(b->cfg->nkeys, 0);
	queue_bucket_adjust(&b->requests, 1, 0);	/* a refund settles against it */

	/* b comes back under the same name: a new tenant, with a full bucket,
	 * untouched by the old b's settlements. */
	const char *const three[] = { "a sk-a", "b sk-b requests_per_s: 2, burst: 2", NULL };
	struct conf *c3 = config(three, NULL);
	cr_assert_eq(queue_tenants_reconfigure(&ts, c3, 0), 0);
	conf_destroy(c2);
	struct queue_tenant *b2 = by_key(&ts, "sk-b");
	cr_assert_neq(b2, b);
	cr_assert_float_eq(queue_bucket_level(&b2->requests, 0), 2, 1e-9);
	queue_bucket_adjust(&b->requests, 1, 0);
	cr_assert_float_eq(queue_bucket_level(&b2->requests, 0), 2, 1e-9);
	cr_assert_eq(ts.retired, b, "still held");

	queue_tenant_put(&r1);
	cr_assert_null(r1);
	cr_assert_eq(ts.retired, b);
	queue_tenant_put(&r2);	/* the last one: freed (ASan would see a use after free) */
	cr_assert_null(ts.retired);
	struct queue_tenant *none = NULL;
	queue_tenant_put(&none);
	queue_tenants_finish(&ts);
	conf_destroy(c3);
}

Test(tenant, reload_moves_the_anonymous_tenant_and_opens_and_closes_the_gateway, .timeout = 5)
{
	const char *const none[] = { NULL };
	struct conf *c1 = config(none, NULL);
	struct queue_tenants ts;
	cr_assert_eq(queue_tenants_init(&ts, c1, 0), 0);
	cr_assert(ts.open);
	struct queue_tenant *open = ts.anonymous;
	cr_assert_str_eq(open->cfg->name, "anonymous");
	struct queue_tenant *held = queue_tenant_get(open);

	const char *const two[] = { "a sk-a", "guest - requests_per_s: 1", NULL };
	struct conf *c2 = config(two, "anonymous_tenant: guest\n");
	cr_assert_eq(queue_tenants_reconfigure(&ts, c2, 0), 0);
	conf_destroy(c1);
	cr_assert_not(ts.open);
	cr_assert_str_eq(ts.anonymous->cfg->name, "guest");
	cr_assert_eq(ts.retired, open, "the open gateway's tenant is retired like any other");
	cr_assert_eq(by_key(&ts, "sk-a"), ts.v[0]);
	cr_assert_null(by_key(&ts, "sk-x"));

	const char *const three[] = { "a sk-a", "guest sk-g requests_per_s: 1", NULL };
	struct conf *c3 = config(three, NULL);
	cr_assert_eq(queue_tenants_reconfigure(&ts, c3, 0), 0);
	conf_destroy(c2);
	cr_assert_null(ts.anonymous, "anonymous_tenant removed: a key is required");

	struct conf *c4 = config(none, NULL);
	cr_assert_eq(queue_tenants_reconfigure(&ts, c4, 0), 0);
	conf_destroy(c3);
	cr_assert(ts.open);
	cr_assert_eq(ts.n, 1);
	cr_assert_str_eq(ts.anonymous->cfg->name, "anonymous");
	cr_assert(queue_bucket_unlimited(&ts.anonymous->requests));
	queue_tenant_put(&held);
	cr_assert_null(ts.retired);
	queue_tenants_finish(&ts);
	conf_destroy(c4);
}

Test(tenant, a_prepared_reload_changes_nothing_until_committed, .timeout = 5)
{
	const char *const one[] = { "a sk-a", "b sk-b", NULL };
	const char *const two[] = { "c sk-c", "b sk-b2 weight: 2, tokens_per_min: 100", NULL };
	struct conf *c1 = config(one, NULL), *c2 = config(two, NULL);
	struct queue_tenants ts;
	cr_assert_eq(queue_tenants_init(&ts, c1, 0), 0);
	struct queue_tenant *a = ts.v[0], *b = ts.v[1];
	struct queue_tenants_next next;
	cr_assert_eq(queue_tenants_prepare(&ts, c2, &next), 0);
	cr_assert_eq(next.n, 2);
	cr_assert_eq(next.from[0], QUEUE_TENANT_NEW);
	cr_assert_eq(next.from[1], 1);
	cr_assert_eq(next.ngone, 1);
	cr_assert_eq(next.gone[0], 0);
	cr_assert_eq(queue_tenant_changes(b->cfg, &c2->tenants[1]),
		     QUEUE_TENANT_CHANGED_KEYS | QUEUE_TENANT_CHANGED_WEIGHT | QUEUE_TENANT_CHANGED_TOKENS_PER_MIN);
	cr_assert_eq(queue_tenant_changes(a->cfg, a->cfg), 0);
	cr_assert_str_eq(queue_tenant_change_name(QUEUE_TENANT_CHANGED_TOKENS_PER_MIN), "tokens_per_min");
	queue_tenants_discard(&next);
	cr_assert_eq(ts.n, 2);
	cr_assert_eq(ts.v[0], a);
	cr_assert_eq(by_key(&ts, "sk-a"), a);
	cr_assert_eq(a->cfg, &c1->tenants[0]);
	cr_assert_null(by_key(&ts, "sk-c"));
	queue_tenants_finish(&ts);
	conf_destroy(c1);
	conf_destroy(c2);
}
