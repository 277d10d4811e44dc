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
