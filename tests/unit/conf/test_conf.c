/*
 * test_conf.c - the config loader, as an operator meets it.
 *
 * Most tests parse inline YAML with conf_parse() under the name "t.yaml" and
 * check either the values in the snapshot or the exact "t.yaml:LINE: ..."
 * message an invalid file produces.  Tests of one mistake also assert that it
 * produces exactly one message: a loader that cascades one typo into five
 * errors is a loader operators learn to ignore.
 *
 * Files under tests/data/conf/ and conf/examples/ are found through
 * SLUICE_TEST_DATA (set by tests/meson.build) or SLUICE_SOURCE_DIR.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

/* Seven lines every error test builds on; extra lines start at line 8.
 * MINI_TAIL is the same without its first line, the listen address. */
#define MINI "listen: 127.0.0.1:0\n" MINI_TAIL
#define MINI_TAIL \
	"classes:\n" \
	"  standard: { pools: [spot] }\n" \
	"pools:\n" \
	"  spot:\n" \
	"    slice: elastic\n" \
	"    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n"

/* The example from docs/DESIGN.md, with its key hash written out in full. */
static const char design_yaml[] =
	"listen: 0.0.0.0:8080\n"
	"admin_listen: 127.0.0.1:9090\n"
	"classes:\n"
	"  interactive:   { max_queue: 256,  max_wait_ms: 250,    pools: [gold, spot] }\n"
	"  standard:      { max_queue: 2048, max_wait_ms: 5000,   pools: [spot] }\n"
	"  opportunistic: { max_queue: 8192, max_wait_ms: 600000, pools: [spot], min_share: 0.05, max_slot_share: 0.75 }\n"
	"pools:\n"
	"  gold:\n"
	"    slice: reserved                  # reserved | elastic\n"
	"    gpu: { model: H100, mig_profile: 3g.40gb }\n"
	"    backends: [ { address: 10.0.0.5:8000, max_inflight: 8 } ]\n"
	"  spot:\n"
	"    slice: elastic\n"
	"    backends: [ { address: 10.0.1.7:8000, max_inflight: 16 } ]\n"
	"tenants:\n"
	"  chat:\n"
	"    keys: [ { sha256: \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\" } ]\n"
	"    default_class: interactive\n"
	"    max_class: interactive\n"
	"    requests_per_s: 50\n"
	"    burst: 100\n"
	"    tokens_per_min: 2000000\n";

#define HASH_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HASH_B "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
#define HASH_C "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"
/* A tenant needs a key (or to be the anonymous one) to be reachable. */
#define KEY_A "keys: [ { sha256: " HASH_A " } ]"
#define KEY_B "keys: [ { sha256: " HASH_B " } ]"
#define KEY_C "keys: [ { sha256: " HASH_C " } ]"

static struct conf_diag diag;

static const char *all_msgs(void)
{
	static char buf[CONF_DIAG_MAX * 260];
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < diag.count && i < CONF_DIAG_MAX; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "\n  %s", diag.msg[i]);
	return buf;
}

static struct conf *parse_ok(const char *text)
{
	struct conf *c = NULL;
	int rc = conf_parse("t.yaml", text, strlen(text), &c, &diag);

	cr_assert_eq(rc, 0, "conf_parse failed (%d):%s", rc, all_msgs());
	cr_assert_not_null(c);
	cr_assert_eq(diag.count, 0);
	return c;
}

/* Parse text that must be refused; returns the number of messages. */
static size_t parse_bad(const char *text)
{
	struct conf *c = (struct conf *)&diag;	/* must be reset to NULL */
	int rc = conf_parse("t.yaml", text, strlen(text), &c, &diag);

	cr_assert_eq(rc, -EINVAL, "conf_parse returned %d, want -EINVAL:%s", rc, all_msgs());
	cr_assert_null(c);
	cr_assert_geq(diag.count, 1);
	return diag.count;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Whether some message starts "t.yaml:LINE: " and contains `needle`. */
static bool has_msg(int line, const char *needle)
{
	char prefix[32];
	size_t i;

	snprintf(prefix, sizeof prefix, "t.yaml:%d: ", line);
	for (i = 0; i < diag.count && i < CONF_DIAG_MAX; i++)
		if (starts_with(diag.msg[i], prefix) && strstr(diag.msg[i], needle))
			return true;
	return false;
}

/* Exactly one error, on `line`, containing `needle`. */
static void expect_one(const char *text, int line, const char *needle)
{
	size_t n = parse_bad(text);

	cr_assert(has_msg(line, needle), "want 't.yaml:%d: ...%s...', got:%s", line, needle,
		  all_msgs());
	cr_assert_eq(n, 1, "want exactly one error, got %zu:%s", n, all_msgs());
}

static uint16_t port_of(const struct conf_addr *a)
{
	if (a->sa.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)&a->sa)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)(const void *)&a->sa)->sin6_port);
}

static const char *ipv4_of(const struct conf_addr *a, char *buf)
{
	cr_assert_eq(a->sa.ss_family, AF_INET);
	return inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)&a->sa)->sin_addr,
			 buf, INET_ADDRSTRLEN);
}

static const char *data_dir(void)
{
	const char *d = getenv("SLUICE_TEST_DATA");

	return d ? d : "tests/data";
}

/* The source root: SLUICE_SOURCE_DIR, else the parent of tests/data. */
static void source_path(char *buf, size_t size, const char *rel)
{
	const char *src = getenv("SLUICE_SOURCE_DIR");

	if (src)
		snprintf(buf, size, "%s/%s", src, rel);
	else
		snprintf(buf, size, "%s/../../%s", data_dir(), rel);
}

/* ---- values ------------------------------------------------------------- */

Test(conf, design_example_parses, .timeout = 10)
{
	struct conf *c = parse_ok(design_yaml);
	const struct conf_class_cfg *in = &c->classes[CONF_CLASS_INTERACTIVE];
	const struct conf_class_cfg *st = &c->classes[CONF_CLASS_STANDARD];
	const struct conf_class_cfg *op = &c->classes[CONF_CLASS_OPPORTUNISTIC];
	const struct conf_tenant *t;
	int gold, spot;
	char ip[INET_ADDRSTRLEN];

	cr_assert_str_eq(c->path, "t.yaml");
	cr_assert_str_eq(c->listen.text, "0.0.0.0:8080");
	cr_assert_str_eq(ipv4_of(&c->listen, ip), "0.0.0.0");
	cr_assert_eq(port_of(&c->listen), 8080);
	cr_assert_eq(c->listen.salen, sizeof(struct sockaddr_in));
	cr_assert_str_eq(c->admin_listen.text, "127.0.0.1:9090");
	cr_assert_eq(port_of(&c->admin_listen), 9090);

	cr_assert_eq(c->npools, 2);
	gold = conf_pool_find(c, "gold");
	spot = conf_pool_find(c, "spot");
	cr_assert(gold >= 0 && spot >= 0 && gold != spot);
	cr_assert_eq(c->pools[gold].slice, CONF_SLICE_RESERVED);
	cr_assert_eq(c->pools[spot].slice, CONF_SLICE_ELASTIC);
	cr_assert_str_eq(c->pools[gold].gpu_model, "H100");
	cr_assert_str_eq(c->pools[gold].mig_profile, "3g.40gb");
	cr_assert_null(c->pools[spot].gpu_model);
	cr_assert_null(c->pools[spot].mig_profile);
	cr_assert_eq(c->pools[gold].line, 8);
	cr_assert_eq(c->pools[gold].nbackends, 1);
	cr_assert_str_eq(c->pools[gold].backends[0].addr.text, "10.0.0.5:8000");
	cr_assert_str_eq(ipv4_of(&c->pools[gold].backends[0].addr, ip), "10.0.0.5");
	cr_assert_eq(port_of(&c->pools[gold].backends[0].addr), 8000);
	cr_assert_eq(c->pools[gold].backends[0].max_inflight, 8);
	cr_assert_eq(c->pools[gold].backends[0].line, 11);
	cr_assert_eq(c->pools[spot].backends[0].max_inflight, 16);

	cr_assert(in->defined && st->defined && op->defined);
	cr_assert_eq(in->max_queue, 256);
	cr_assert_eq(in->max_wait_ms, 250);
	cr_assert_eq(in->npools, 2);
	cr_assert_eq(in->pools[0], (size_t)gold, "pools keep the file's preference order");
	cr_assert_eq(in->pools[1], (size_t)spot);
	cr_assert_eq(in->line, 4);
	cr_assert_eq(st->max_queue, 2048);
	cr_assert_eq(st->max_wait_ms, 5000);
	cr_assert_eq(st->npools, 1);
	cr_assert_eq(st->pools[0], (size_t)spot);
	cr_assert_eq(st->max_queue_bytes, 64u << 20, "default max_queue_bytes");
	cr_assert_float_eq(st->min_share, 0.0, 1e-12);
	cr_assert_float_eq(st->max_slot_share, 1.0, 1e-12);
	cr_assert_eq(op->max_queue, 8192);
	cr_assert_eq(op->max_wait_ms, 600000);
	cr_assert_float_eq(op->min_share, 0.05, 1e-12);
	cr_assert_float_eq(op->max_slot_share, 0.75, 1e-12);

	cr_assert_eq(c->ntenants, 1);
	t = &c->tenants[0];
	cr_assert_str_eq(t->name, "chat");
	cr_assert_eq(t->nkeys, 1);
	cr_assert_eq(t->keys[0].sha256[0], 0x9f);
	cr_assert_eq(t->keys[0].sha256[1], 0x86);
	cr_assert_eq(t->keys[0].sha256[31], 0x08);
	cr_assert_eq(t->default_class, CONF_CLASS_INTERACTIVE);
	cr_assert_eq(t->max_class, CONF_CLASS_INTERACTIVE);
	cr_assert_float_eq(t->weight, 1.0, 1e-12);
	cr_assert_float_eq(t->requests_per_s, 50.0, 1e-12);
	cr_assert_float_eq(t->burst, 100.0, 1e-12);
	cr_assert_float_eq(t->tokens_per_min, 2e6, 1e-6);
	cr_assert_eq(t->line, 16);
	cr_assert_null(c->anonymous_tenant);

	/* Nothing set: every limit and timeout has its documented default. */
	cr_assert_eq(c->limits.max_body_bytes, 8u << 20);
	cr_assert_eq(c->limits.max_header_bytes, 16u << 10);
	cr_assert_eq(c->limits.max_headers, 100);
	cr_assert_eq(c->limits.max_queued_bytes, 256u << 20);
	cr_assert_eq(c->limits.max_connections, 100000);
	cr_assert_eq(c->timeouts.header_ms, 10000);
	cr_assert_eq(c->timeouts.idle_ms, 60000);
	cr_assert_eq(c->timeouts.body_ms, 30000);
	cr_assert_eq(c->timeouts.connect_ms, 2000);
	cr_assert_eq(c->timeouts.upstream_ms, 300000);
	cr_assert_eq(c->timeouts.upstream_idle_ms, 60000);
	cr_assert_eq(c->timeouts.drain_ms, 30000);
	conf_destroy(c);
}

Test(conf, defaults_for_minimal_file, .timeout = 10)
{
	struct conf *c = parse_ok(MINI
		"tenants:\n"
		"  a: { " KEY_A " }\n"
		"  b: { " KEY_B ", requests_per_s: 0.5 }\n"
		"  c: { " KEY_C ", requests_per_s: 20, default_class: standard }\n");
	const struct conf_class_cfg *st = &c->classes[CONF_CLASS_STANDARD];

	cr_assert_str_eq(c->admin_listen.text, "127.0.0.1:9090");
	cr_assert_eq(port_of(&c->admin_listen), 9090);
	cr_assert_not(c->classes[CONF_CLASS_INTERACTIVE].defined);
	cr_assert_not(c->classes[CONF_CLASS_OPPORTUNISTIC].defined);
	cr_assert(st->defined);
	cr_assert_eq(st->max_queue, 1024);
	cr_assert_eq(st->max_queue_bytes, 64u << 20);
	cr_assert_eq(st->max_wait_ms, 30000);
	cr_assert_float_eq(st->min_share, 0.0, 1e-12);
	cr_assert_float_eq(st->max_slot_share, 1.0, 1e-12);

	cr_assert_eq(c->ntenants, 3);
	cr_assert_eq(c->tenants[0].nkeys, 1);
	cr_assert_eq(c->tenants[0].default_class, CONF_CLASS_STANDARD);
	cr_assert_eq(c->tenants[0].max_class, CONF_CLASS_STANDARD, "max_class = default_class");
	cr_assert_float_eq(c->tenants[0].weight, 1.0, 1e-12);
	cr_assert_float_eq(c->tenants[0].requests_per_s, 0.0, 1e-12);
	cr_assert_float_eq(c->tenants[0].burst, 1.0, 1e-12);
	cr_assert_float_eq(c->tenants[0].tokens_per_min, 0.0, 1e-12);
	cr_assert_float_eq(c->tenants[1].burst, 1.0, 1e-12, "burst is at least 1");
	cr_assert_float_eq(c->tenants[2].burst, 20.0, 1e-12, "burst defaults to requests_per_s");
	conf_destroy(c);
}

Test(conf, size_and_duration_strings, .timeout = 10)
{
	struct conf *c = parse_ok(MINI
		"limits:\n"
		"  max_body_bytes: 512KiB\n"
		"  max_header_bytes: 100KB\n"
		"  max_headers: 64\n"
		"  max_queued_bytes: \"1 GiB\"\n"
		"  max_connections: 1000\n"
		"timeouts:\n"
		"  header_ms: 30s\n"
		"  idle_ms: 10m\n"
		"  body_ms: 250ms\n"
		"  connect_ms: 1500\n"
		"  upstream_ms: 1h\n"
		"  upstream_idle_ms: 2S\n"
		"  drain_ms: 0\n"
		"tenants:\n"
		"  a: { " KEY_A ", weight: 2.5, tokens_per_min: 1e6 }\n");

	cr_assert_eq(c->limits.max_body_bytes, 512u * 1024);
	cr_assert_eq(c->limits.max_header_bytes, 100000);
	cr_assert_eq(c->limits.max_headers, 64);
	cr_assert_eq(c->limits.max_queued_bytes, 1ull << 30);
	cr_assert_eq(c->limits.max_connections, 1000);
	cr_assert_eq(c->timeouts.header_ms, 30000);
	cr_assert_eq(c->timeouts.idle_ms, 600000);
	cr_assert_eq(c->timeouts.body_ms, 250);
	cr_assert_eq(c->timeouts.connect_ms, 1500);
	cr_assert_eq(c->timeouts.upstream_ms, 3600000);
	cr_assert_eq(c->timeouts.upstream_idle_ms, 2000);
	cr_assert_eq(c->timeouts.drain_ms, 0);
	cr_assert_float_eq(c->tenants[0].weight, 2.5, 1e-12);
	cr_assert_float_eq(c->tenants[0].tokens_per_min, 1e6, 1e-6);
	conf_destroy(c);

	c = parse_ok("listen: 127.0.0.1:0\n"
		"classes:\n"
		"  standard: { max_wait_ms: 5s, max_queue_bytes: 64MiB, pools: [spot] }\n"
		"pools:\n"
		"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ] }\n");
	cr_assert_eq(c->classes[CONF_CLASS_STANDARD].max_wait_ms, 5000);
	cr_assert_eq(c->classes[CONF_CLASS_STANDARD].max_queue_bytes, 64u << 20);
	conf_destroy(c);
}

Test(conf, bad_sizes_and_durations, .timeout = 10)
{
	expect_one(MINI "limits: { max_body_bytes: 8 parsecs }\n", 8,
		   "max_body_bytes in limits: expected a size in bytes");
	expect_one(MINI "limits: { max_body_bytes: 99999999999999999999 }\n", 8,
		   "max_body_bytes in limits: expected a size");
	expect_one(MINI "limits: { max_queued_bytes: 100000000TiB }\n", 8,
		   "max_queued_bytes in limits is too large");
	expect_one(MINI "limits: { max_header_bytes: 8GiB }\n", 8,
		   "max_header_bytes in limits must be at most 4294967295");
	expect_one(MINI "limits: { max_headers: 10KiB }\n", 8,
		   "max_headers in limits: expected an integer");
	expect_one(MINI "timeouts: { idle_ms: 1.5s }\n", 8,
		   "idle_ms in timeouts: expected a duration");
	expect_one(MINI "timeouts: { idle_ms: 10 days }\n", 8,
		   "idle_ms in timeouts: expected a duration");
	expect_one(MINI "timeouts: { header_ms: 0 }\n", 8,
		   "header_ms in timeouts must be at least 1");
	expect_one(MINI "timeouts: { upstream_ms: 1000000h }\n", 8,
		   "upstream_ms in timeouts must be at most");
}

Test(conf, addresses, .timeout = 10)
{
	struct conf *c;
	char ip[INET_ADDRSTRLEN];

	c = parse_ok("listen: \"[::1]:8443\"\n"
		"admin_listen: localhost:0\n"
		"classes:\n"
		"  standard: { pools: [spot] }\n"
		"pools:\n"
		"  spot:\n"
		"    slice: elastic\n"
		"    backends: [ { address: \"[::1]:9000\", max_inflight: 1 }, { address: localhost:9000, max_inflight: 1 } ]\n");
	cr_assert_eq(c->listen.sa.ss_family, AF_INET6);
	cr_assert_eq(c->listen.salen, sizeof(struct sockaddr_in6));
	cr_assert_eq(port_of(&c->listen), 8443);
	cr_assert_str_eq(ipv4_of(&c->admin_listen, ip), "127.0.0.1",
			 "a hostname resolves to its IPv4 address first");
	cr_assert_eq(port_of(&c->admin_listen), 0);
	cr_assert_eq(c->pools[0].backends[0].addr.sa.ss_family, AF_INET6);
	cr_assert_str_eq(ipv4_of(&c->pools[0].backends[1].addr, ip), "127.0.0.1");
	cr_assert_eq(port_of(&c->pools[0].backends[1].addr), 9000);
	conf_destroy(c);

	expect_one("listen: 8080\n" MINI_TAIL, 1,
		   "listen: invalid address '8080': no port");
	expect_one("listen: 127.0.0.1\n" MINI_TAIL, 1,
		   "invalid address '127.0.0.1': no port (expected HOST:PORT)");
	expect_one("listen: ::1:80\n" MINI_TAIL, 1,
		   "an IPv6 address needs brackets");
	expect_one("listen: \"[::1:80\"\n" MINI_TAIL, 1,
		   "expected [IPv6]:PORT");
	expect_one("listen: \"[zz]:80\"\n" MINI_TAIL, 1,
		   "cannot resolve host");
	expect_one("listen: 127.0.0.1:65536\n" MINI_TAIL, 1,
		   "port must be a number from 0 to 65535");
	expect_one("listen: :80\n" MINI_TAIL, 1,
		   "no host");
	expect_one(MINI "admin_listen: 127.0.0.1:x\n", 8, "admin_listen: invalid address");
	expect_one("listen: 127.0.0.1:7000\nadmin_listen: 127.0.0.1:7000\n"
		   MINI_TAIL, 2,
		   "admin_listen must differ from listen");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: elastic\n"
		   "    backends: [ { address: 127.0.0.1:0, max_inflight: 4 } ]\n", 7,
		   "address in backend 1 of pool 'spot': invalid address '127.0.0.1:0': "
		   "port must be a number from 1 to 65535");
}

/* ---- syntax and structure ----------------------------------------------- */

Test(conf, syntax_error_line, .timeout = 10)
{
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot: slice: elastic\n", 5,
		   "YAML syntax error: mapping values are not allowed");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot]\n"
		   "pools:\n", 4,
		   "YAML syntax error: did not find expected ',' or '}' "
		   "(while parsing a flow mapping at line 3)");
	expect_one("listen: 127.0.0.1:0\n\tclasses: {}\n", 2, "YAML syntax error");
	expect_one("listen: 127.0.0.1:0\nx: \xff\n", 2, "YAML syntax error: invalid leading UTF-8");
	expect_one("a: *nowhere\n", 1, "YAML syntax error: found undefined alias");
}

Test(conf, empty_and_multi_document, .timeout = 10)
{
	expect_one("", 1, "the configuration is empty");
	expect_one("# nothing but a comment\n", 1, "the configuration is empty");
	expect_one(MINI "---\nlisten: 127.0.0.1:1\n", 9, "only one YAML document is allowed");
	expect_one("- listen\n", 1, "expected a mapping at the top level, got a list");
}

Test(conf, unknown_keys, .timeout = 10)
{
	struct conf *c = NULL;
	size_t n;
	int rc;

	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { max_queu: 10, pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: elastic\n"
		   "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n", 3,
		   "unknown key 'max_queu' in class 'standard'");
	cr_assert_str_eq(diag.msg[0], "t.yaml:3: unknown key 'max_queu' in class 'standard'");
	expect_one(MINI "lisen: 127.0.0.1:1\n", 8, "unknown key 'lisen' in the top level");
	expect_one(MINI "limits: { max_body: 1 }\n", 8, "unknown key 'max_body' in limits");
	expect_one(MINI "timeouts: { idle: 1 }\n", 8, "unknown key 'idle' in timeouts");
	n = parse_bad("listen: 127.0.0.1:0\n"
		      "classes:\n"
		      "  standard: { pools: [spot] }\n"
		      "pools:\n"
		      "  spot:\n"
		      "    slice: elastic\n"
		      "    gpu: { model: H100, mig: 1g.10gb }\n"
		      "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4, weight: 2 } ]\n");
	cr_assert_eq(n, 2, "%s", all_msgs());
	cr_assert(has_msg(7, "unknown key 'mig' in gpu of pool 'spot'"), "%s", all_msgs());
	cr_assert(has_msg(8, "unknown key 'weight' in backend 1 of pool 'spot'"), "%s", all_msgs());
	expect_one(MINI "tenants:\n  a: { keys: [ { sha256: " HASH_A ", note: x } ] }\n", 9,
		   "unknown key 'note' in tenant 'a'");
	expect_one(MINI "tenants:\n  a: { max_clas: standard }\nanonymous_tenant: a\n", 9,
		   "unknown key 'max_clas' in tenant 'a'");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  batch: { pools: [spot] }\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: elastic\n"
		   "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n", 3,
		   "unknown class 'batch' (expected interactive, standard or opportunistic)");

	/* Without a diag the result is the same, only unexplained. */
	rc = conf_parse("t.yaml", MINI "lisen: x\n", sizeof MINI "lisen: x\n" - 1, &c, NULL);
	cr_assert_eq(rc, -EINVAL);
	cr_assert_null(c);
}

Test(conf, duplicate_yaml_keys, .timeout = 10)
{
	expect_one(MINI "listen: 127.0.0.1:1\n", 8, "duplicate key 'listen' (first at line 1)");
	parse_bad("listen: 127.0.0.1:0\n"
		  "classes:\n"
		  "  standard: { pools: [spot], max_queue: 1, max_queue: 2 }\n"
		  "pools:\n"
		  "  spot:\n"
		  "    slice: elastic\n"
		  "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n"
		  "    slice: reserved\n");
	cr_assert(has_msg(8, "duplicate key 'slice' (first at line 6)"), "%s", all_msgs());
	cr_assert(has_msg(3, "duplicate key 'max_queue' (first at line 3)"), "%s", all_msgs());
	cr_assert_eq(diag.count, 2, "%s", all_msgs());
	expect_one(MINI "  spot:\n    slice: elastic\n", 8, "duplicate key 'spot' (first at line 5)");
	expect_one(MINI "tenants:\n  a: { " KEY_A " }\n  \"a\": {}\n", 10, "duplicate key 'a' (first at line 9)");
	expect_one(MINI "? [a, b]\n: 1\n", 8, "mapping keys must be plain strings");
}

Test(conf, wrong_types, .timeout = 10)
{
	expect_one("listen: [127.0.0.1:0]\n" MINI_TAIL, 1,
		   "listen: expected a value, got a list");
	expect_one("listen:\n" MINI_TAIL, 1,
		   "listen: expected a value, got an empty value");
	expect_one(MINI "limits: 5\n", 8, "limits: expected a mapping, got '5'");
	expect_one(MINI "tenants: [a, b]\n", 8, "tenants: expected a mapping, got a list");
	cr_assert_eq(parse_bad("listen: 127.0.0.1:0\n"
			       "classes:\n"
			       "  standard: { pools: spot, max_queue: lots }\n"
			       "pools:\n"
			       "  spot:\n"
			       "    slice: elastic\n"
			       "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n"), 2);
	cr_assert(has_msg(3, "pools in class 'standard': expected a list, got 'spot'"),
		  "%s", all_msgs());
	cr_assert(has_msg(3, "max_queue in class 'standard': expected an integer, got 'lots'"),
		  "%s", all_msgs());
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: [spot]\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: elastic\n"
		   "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n", 3,
		   "class 'standard': expected a mapping, got a list");
	expect_one(MINI "tenants:\n  a: { weight: heavy }\nanonymous_tenant: a\n", 9,
		   "weight in tenant 'a': expected a number, got 'heavy'");
	expect_one(MINI "tenants:\n  a: { weight: .nan }\nanonymous_tenant: a\n", 9, "expected a number");
	expect_one(MINI "tenants:\n  a: { requests_per_s: 0x10 }\nanonymous_tenant: a\n", 9, "expected a number");
	expect_one(MINI "tenants:\n  a: { default_class: urgent }\nanonymous_tenant: a\n", 9,
		   "default_class in tenant 'a': unknown class 'urgent'");
	expect_one(MINI "tenants:\n  a: { keys: " HASH_A " }\n", 9,
		   "keys in tenant 'a': expected a list");
}

Test(conf, missing_required_keys, .timeout = 10)
{
	size_t n = parse_bad("admin_listen: 127.0.0.1:9091\n");

	cr_assert_eq(n, 3, "%s", all_msgs());
	cr_assert(has_msg(1, "missing required key 'listen'"), "%s", all_msgs());
	cr_assert(has_msg(1, "missing required key 'classes'"), "%s", all_msgs());
	cr_assert(has_msg(1, "missing required key 'pools'"), "%s", all_msgs());

	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n", 5,
		   "missing required key 'slice' in pool 'spot'");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: elastic\n", 5,
		   "missing required key 'backends' in pool 'spot'");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: elastic\n"
		   "    backends:\n"
		   "      - max_inflight: 4\n", 8,
		   "missing required key 'address' in backend 1 of pool 'spot'");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: elastic\n"
		   "    backends: [ { address: 127.0.0.1:9000 } ]\n", 7,
		   "missing required key 'max_inflight' in backend 1 of pool 'spot'");
	expect_one(MINI "tenants:\n  a: { keys: [ {} ] }\n", 9,
		   "missing required key 'sha256' in tenant 'a'");
}

/* ---- pools and classes -------------------------------------------------- */

Test(conf, opportunistic_may_not_use_reserved_pool, .timeout = 10)
{
	const char *text =
		"listen: 127.0.0.1:0\n"
		"classes:\n"
		"  interactive: { pools: [gold, spot] }\n"
		"  opportunistic:\n"
		"    pools:\n"
		"      - spot\n"
		"      - gold\n"
		"pools:\n"
		"  gold: { slice: reserved, backends: [ { address: 127.0.0.1:9001, max_inflight: 1 } ] }\n"
		"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 1 } ] }\n";

	expect_one(text, 7, "class 'opportunistic' may not use reserved pool 'gold': "
			    "batch can never claim a reserved slice");
}

Test(conf, reserved_pool_allowed_for_other_classes, .timeout = 10)
{
	struct conf *c = parse_ok(
		"listen: 127.0.0.1:0\n"
		"classes:\n"
		"  interactive: { pools: [gold] }\n"
		"  standard: { pools: [gold, spot] }\n"
		"  opportunistic: { pools: [spot] }\n"
		"pools:\n"
		"  gold: { slice: reserved, backends: [ { address: 127.0.0.1:9001, max_inflight: 1 } ] }\n"
		"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 1 } ] }\n"
		"  unused: { slice: elastic, backends: [ { address: 127.0.0.1:9003, max_inflight: 1 } ] }\n");

	cr_assert_eq(c->npools, 3, "an unused pool is allowed");
	cr_assert_eq(c->classes[CONF_CLASS_STANDARD].pools[0], 0);
	cr_assert_eq(c->classes[CONF_CLASS_STANDARD].pools[1], 1);
	conf_destroy(c);
}

Test(conf, class_pool_list_errors, .timeout = 10)
{
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [] }\n"
		   "pools:\n"
		   "  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 1 } ] }\n",
		   3, "class 'standard' has no pools");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { max_queue: 5 }\n"
		   "pools:\n"
		   "  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 1 } ] }\n",
		   3, "missing required key 'pools' in class 'standard'");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard:\n"
		   "    pools: [spot,\n"
		   "            gld]\n"
		   "pools:\n"
		   "  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 1 } ] }\n",
		   5, "class 'standard' lists unknown pool 'gld'");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot, spot] }\n"
		   "pools:\n"
		   "  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 1 } ] }\n",
		   3, "class 'standard' lists pool 'spot' twice");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes: {}\n"
		   "pools:\n"
		   "  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 1 } ] }\n",
		   2, "classes must define at least one class");
	parse_bad("listen: 127.0.0.1:0\n"
		  "classes:\n"
		  "  standard: { pools: [spot] }\n"
		  "pools: {}\n");
	cr_assert(has_msg(4, "pools must define at least one pool"), "%s", all_msgs());
}

Test(conf, class_number_ranges, .timeout = 10)
{
	const char *head = "listen: 127.0.0.1:0\nclasses:\n  standard: { pools: [spot], ";
	const char *tail = " }\npools:\n  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 1 } ] }\n";
	static const struct {
		const char *field;
		const char *msg;
	} cases[] = {
		{ "max_queue: -1", "max_queue in class 'standard' must not be negative, got '-1'" },
		{ "max_queue: 0", "max_queue in class 'standard' must be at least 1" },
		{ "max_wait_ms: 0", "max_wait_ms in class 'standard' must be at least 1" },
		{ "max_queue_bytes: -5MiB", "max_queue_bytes in class 'standard' must not be negative" },
		{ "min_share: 1.5", "min_share in class 'standard' must be at least 0 and at most 1, got '1.5'" },
		{ "min_share: -0.1", "min_share in class 'standard' must be at least 0 and at most 1" },
		{ "max_slot_share: 0", "max_slot_share in class 'standard' must be greater than 0 and at most 1, got '0'" },
		{ "max_slot_share: 1.01", "max_slot_share in class 'standard' must be greater than 0 and at most 1" },
	};
	char text[512];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(text, sizeof text, "%s%s%s", head, cases[i].field, tail);
		expect_one(text, 3, cases[i].msg);
	}
	snprintf(text, sizeof text, "%s%s%s", head, "min_share: 1, max_slot_share: 1", tail);
	conf_destroy(parse_ok(text));
}

Test(conf, pool_errors, .timeout = 10)
{
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: shared\n"
		   "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n", 6,
		   "slice in pool 'spot' must be reserved or elastic, got 'shared'");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: elastic\n"
		   "    backends: []\n", 7,
		   "pool 'spot' has no backends");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: elastic\n"
		   "    backends:\n"
		   "      - { address: 127.0.0.1:9000, max_inflight: 4 }\n"
		   "      - { address: 127.0.0.1:9001, max_inflight: 0 }\n", 9,
		   "max_inflight in backend 2 of pool 'spot' must be at least 1, got '0'");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: elastic\n"
		   "    backends: [ { address: 127.0.0.1:9000, max_inflight: -8 } ]\n", 7,
		   "max_inflight in backend 1 of pool 'spot' must not be negative");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: elastic\n"
		   "    backends:\n"
		   "      - { address: 127.0.0.1:9000, max_inflight: 4 }\n"
		   "      - { address: 127.0.0.2:9000, max_inflight: 4 }\n"
		   "      - { address: \"127.0.0.1:09000\", max_inflight: 4 }\n", 10,
		   "pool 'spot' lists backend '127.0.0.1:09000' twice (first at line 8)");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  spot:\n"
		   "    slice: elastic\n"
		   "    backends: [ 127.0.0.1:9000 ]\n", 7,
		   "backend 1 of pool 'spot': expected a mapping with address and max_inflight");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [\"spot pool\"] }\n"
		   "pools:\n"
		   "  \"spot pool\":\n"
		   "    slice: elastic\n"
		   "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n", 5,
		   "pool name 'spot pool' may use only letters, digits");
}

Test(conf, same_backend_in_two_pools_is_allowed, .timeout = 10)
{
	struct conf *c = parse_ok(
		"listen: 127.0.0.1:0\n"
		"classes:\n"
		"  standard: { pools: [a, b] }\n"
		"pools:\n"
		"  a: { slice: elastic, backends: [ { address: 127.0.0.1:9000, max_inflight: 1 } ] }\n"
		"  b: { slice: elastic, backends: [ { address: 127.0.0.1:9000, max_inflight: 1 } ] }\n");

	conf_destroy(c);
}

/* ---- tenants ------------------------------------------------------------ */

Test(conf, tenant_default_class_above_max_class, .timeout = 10)
{
	const char *classes =
		"listen: 127.0.0.1:0\n"
		"classes:\n"
		"  interactive: { pools: [spot] }\n"
		"  standard: { pools: [spot] }\n"
		"  opportunistic: { pools: [spot] }\n"
		"pools:\n"
		"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ] }\n"
		"tenants:\n";
	char text[1024];
	struct conf *c;

	snprintf(text, sizeof text, "%s%s", classes,
		 "  a:\n"
		 "    " KEY_A "\n"
		 "    default_class: interactive\n"
		 "    max_class: standard\n");
	expect_one(text, 11, "tenant 'a': default_class 'interactive' is above its max_class 'standard'");

	/* Defaulted default_class (standard) above an explicit max_class. */
	snprintf(text, sizeof text, "%s%s", classes, "  a: { " KEY_A ", max_class: opportunistic }\n");
	expect_one(text, 9, "tenant 'a': default_class 'standard' is above its max_class 'opportunistic'");

	/* A tenant may default low and ask for more. */
	snprintf(text, sizeof text, "%s%s", classes,
		 "  a: { " KEY_A ", default_class: opportunistic, max_class: interactive }\n");
	c = parse_ok(text);
	cr_assert_eq(c->tenants[0].default_class, CONF_CLASS_OPPORTUNISTIC);
	cr_assert_eq(c->tenants[0].max_class, CONF_CLASS_INTERACTIVE);
	conf_destroy(c);
}

Test(conf, tenant_default_class_must_exist, .timeout = 10)
{
	expect_one(MINI "tenants:\n  a: { default_class: interactive, max_class: interactive }\nanonymous_tenant: a\n", 9,
		   "tenant 'a': default_class 'interactive' is not defined under classes");
}

Test(conf, tenant_number_ranges, .timeout = 10)
{
	expect_one(MINI "tenants:\n  a: { weight: 0 }\nanonymous_tenant: a\n", 9,
		   "weight in tenant 'a' must be greater than 0, got '0'");
	expect_one(MINI "tenants:\n  a: { weight: -1 }\nanonymous_tenant: a\n", 9,
		   "weight in tenant 'a' must be greater than 0, got '-1'");
	expect_one(MINI "tenants:\n  a: { requests_per_s: -5 }\nanonymous_tenant: a\n", 9,
		   "requests_per_s in tenant 'a' must not be negative");
	expect_one(MINI "tenants:\n  a: { tokens_per_min: -1 }\nanonymous_tenant: a\n", 9,
		   "tokens_per_min in tenant 'a' must not be negative");
	expect_one(MINI "tenants:\n  a: { requests_per_s: 10, burst: 0.5 }\nanonymous_tenant: a\n", 9,
		   "burst in tenant 'a' must be at least 1");
	expect_one(MINI "tenants:\n  \"a/b\": { " KEY_A " }\n", 9, "tenant name 'a/b' may use only");
	expect_one(MINI "tenants:\n  a: { " KEY_A ", burst: 10 }\n", 9,
		   "burst in tenant 'a' needs requests_per_s: without a rate, requests are not limited");
	expect_one(MINI "tenants:\n  a: { " KEY_A ", requests_per_s: 0, burst: 10 }\n", 9,
		   "burst in tenant 'a' needs requests_per_s");
}

Test(conf, tenant_key_hashes, .timeout = 10)
{
	struct conf *c;
	static const uint8_t want[32] = {
		0x2c, 0xf2, 0x4d, 0xba, 0x5f, 0xb0, 0xa3, 0x0e, 0x26, 0xe8, 0x3b, 0x2a,
		0xc5, 0xb9, 0xe2, 0x9e, 0x1b, 0x16, 0x1e, 0x5c, 0x1f, 0xa7, 0x42, 0x5e,
		0x73, 0x04, 0x33, 0x62, 0x93, 0x8b, 0x98, 0x24,
	};
	char upper[] = HASH_B;
	char text[512];
	size_t i;

	for (i = 0; upper[i]; i++)
		if (upper[i] >= 'a' && upper[i] <= 'f')
			upper[i] = (char)(upper[i] - 'a' + 'A');
	snprintf(text, sizeof text, MINI "tenants:\n  a: { keys: [ { sha256: %s }, { sha256: \"%s\" } ] }\n",
		 HASH_A, upper);
	c = parse_ok(text);
	cr_assert_eq(c->tenants[0].nkeys, 2);
	cr_assert_arr_eq(c->tenants[0].keys[1].sha256, want, 32, "upper-case hex parses");
	conf_destroy(c);

	expect_one(MINI "tenants:\n  a: { keys: [ { sha256: 9f86d081 } ] }\n", 9,
		   "sha256 in tenant 'a' must be 64 hex digits, got 8 characters");
	expect_one(MINI "tenants:\n  a: { keys: [ { sha256: "
		   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0g } ] }\n", 9,
		   "sha256 in tenant 'a' is not hexadecimal (character 64)");
	expect_one(MINI "tenants:\n  a: { keys: [ { sha256: \"" HASH_A " \" } ] }\n", 9,
		   "must be 64 hex digits, got 65 characters");
}

Test(conf, raw_api_key_is_not_echoed, .timeout = 10)
{
	expect_one(MINI "tenants:\n  a: { keys: [ { sha256: sk-live-secret-1234 } ] }\n", 9,
		   "this looks like the key itself");
	cr_assert_null(strstr(diag.msg[0], "secret"), "a raw key must never be echoed: %s",
		       diag.msg[0]);
	expect_one(MINI "tenants:\n  a: { keys: [ sk-live-secret-1234 ] }\n", 9,
		   "keys in tenant 'a': expected a mapping like { sha256:");
	cr_assert_null(strstr(diag.msg[0], "secret"), "a raw key must never be echoed: %s",
		       diag.msg[0]);
}

Test(conf, duplicate_tenant_keys, .timeout = 10)
{
	expect_one(MINI
		   "tenants:\n"
		   "  a:\n"
		   "    keys:\n"
		   "      - { sha256: " HASH_A " }\n"
		   "      - { sha256: " HASH_B " }\n"
		   "      - { sha256: " HASH_A " }\n", 13,
		   "tenant 'a' lists key 9f86d081884c... twice (first at line 11)");
	expect_one(MINI
		   "tenants:\n"
		   "  a:\n"
		   "    keys: [ { sha256: " HASH_A " } ]\n"
		   "  b:\n"
		   "    keys: [ { sha256: " HASH_B " } ]\n"
		   "  c:\n"
		   "    keys: [ { sha256: " HASH_A " } ]\n", 14,
		   "duplicate key 9f86d081884c... in tenant 'c': already used by tenant 'a' at line 10");
	/* Case does not make two hashes different. */
	expect_one(MINI
		   "tenants:\n"
		   "  a: { keys: [ { sha256: " HASH_A " } ] }\n"
		   "  b: { keys: [ { sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08 } ] }\n",
		   10, "already used by tenant 'a'");
}

Test(conf, anonymous_tenant, .timeout = 10)
{
	struct conf *c = parse_ok(MINI "tenants:\n  public: { requests_per_s: 1 }\nanonymous_tenant: public\n");

	cr_assert_str_eq(c->anonymous_tenant, "public");
	conf_destroy(c);
	cr_assert_eq(parse_bad(MINI "tenants:\n  public: {}\nanonymous_tenant: pubic\n"), 2, "%s",
		     all_msgs());
	cr_assert(has_msg(9, "tenant 'public' has no keys and is not the anonymous_tenant"), "%s",
		  all_msgs());
	cr_assert(has_msg(10, "anonymous_tenant names unknown tenant 'pubic'"), "%s", all_msgs());
	expect_one(MINI "tenants:\n  a: { " KEY_A " }\n  b: { keys: [] }\n", 10,
		   "tenant 'b' has no keys and is not the anonymous_tenant: no request could reach it");
	expect_one(MINI "tenants:\n  a: { requests_per_s: 5 }\n", 9,
		   "tenant 'a' has no keys");
	expect_one(MINI "anonymous_tenant: public\n", 8,
		   "anonymous_tenant names unknown tenant 'public'");
}

Test(conf, empty_optional_sections, .timeout = 10)
{
	struct conf *c = parse_ok(MINI "limits:\ntimeouts:\ntenants:\n# all commented out\n");

	cr_assert_eq(c->ntenants, 0);
	cr_assert_eq(c->limits.max_headers, 100);
	conf_destroy(c);
}

/* Every kind of table-driven key lands in its own field, at its own width. */
Test(conf, scalar_table_keys, .timeout = 10)
{
	struct conf *c = parse_ok(MINI
		"limits: { max_connections: 4294967295, default_max_tokens: 0 }\n"
		"metrics: { histograms: false, tenant_histograms: true, buckets: [0.1, 1, 2.5] }\n");

	cr_assert_eq(c->limits.max_connections, UINT32_MAX);
	cr_assert_eq(c->limits.default_max_tokens, 0);
	cr_assert_eq(c->limits.max_body_bytes, 8u << 20, "untouched keys keep their defaults");
	cr_assert_eq(c->limits.max_queued_bytes, 256u << 20);
	cr_assert_eq(c->timeouts.connect_ms, 2000);
	cr_assert_not(c->metrics.histograms);
	cr_assert(c->metrics.tenant_histograms);
	cr_assert_eq(c->metrics.nbuckets, 3);
	cr_assert_float_eq(c->metrics.buckets[2], 2.5, 1e-12);
	conf_destroy(c);

	c = parse_ok(MINI);
	cr_assert(c->metrics.histograms);
	cr_assert_not(c->metrics.tenant_histograms);
	cr_assert_eq(c->metrics.nbuckets, 18);
	cr_assert_eq(c->limits.default_max_tokens, 256);
	conf_destroy(c);
}

Test(conf, limits_and_metrics_errors, .timeout = 10)
{
	static const struct {
		const char *yaml;	/* line 8, after MINI */
		const char *msg;
	} cases[] = {
		{ "limits: { max_connections: 4294967296 }",
		  "max_connections in limits must be at most 4294967295, got '4294967296'" },
		{ "limits: { default_max_tokens: 1k }",
		  "default_max_tokens in limits: expected an integer, got '1k'" },
		{ "metrics: { histograms: yes }",
		  "histograms in metrics: expected true or false, got 'yes'" },
		{ "metrics: { buckets: [0.1, 0.05] }",
		  "metrics.buckets must be ascending: 0.05 after 0.1" },
		{ "metrics: { buckets: [] }",
		  "metrics.buckets: expected at least one bound" },
		{ "metrics: { buckets: [0] }",
		  "bucket in metrics.buckets must be greater than 0 and at most 86400, got '0'" },
	};
	char text[512];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(text, sizeof text, "%s%s\n", MINI, cases[i].yaml);
		expect_one(text, 8, cases[i].msg);
	}
}

/* ---- many errors -------------------------------------------------------- */

Test(conf, multiple_errors_collected_in_line_order, .timeout = 10)
{
	size_t n = parse_bad(
		"listen: 127.0.0.1:0\n"					/* 1 */
		"classes:\n"						/* 2 */
		"  standard: { pools: [spot], max_queu: 1 }\n"		/* 3 */
		"  opportunistic: { pools: [gold] }\n"			/* 4 */
		"pools:\n"						/* 5 */
		"  gold: { slice: reserved, backends: [ { address: 127.0.0.1:9001, max_inflight: 0 } ] }\n" /* 6 */
		"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9002, max_inflight: 1 } ] }\n" /* 7 */
		"tenants:\n"						/* 8 */
		"  a: { " KEY_A ", weight: 0 }\n");				/* 9 */

	cr_assert_eq(n, 4, "%s", all_msgs());
	cr_assert_str_eq(diag.msg[0], "t.yaml:3: unknown key 'max_queu' in class 'standard'");
	cr_assert(starts_with(diag.msg[1], "t.yaml:4: class 'opportunistic' may not use reserved pool 'gold'"),
		  "%s", all_msgs());
	cr_assert(starts_with(diag.msg[2], "t.yaml:6: max_inflight in backend 1 of pool 'gold'"),
		  "%s", all_msgs());
	cr_assert(starts_with(diag.msg[3], "t.yaml:9: weight in tenant 'a'"), "%s", all_msgs());
}

Test(conf, more_errors_than_diag_holds, .timeout = 10)
{
	char text[8192];
	size_t n, i, off;

	off = (size_t)snprintf(text, sizeof text, "%s", MINI "tenants:\n");
	for (i = 0; i < 40; i++)
		off += (size_t)snprintf(text + off, sizeof text - off,
					"  t%zu: { keys: [ { sha256: %064zx } ], weight: 0 }\n", i, i + 1);
	n = parse_bad(text);
	cr_assert_eq(n, 40, "count includes the errors that were not kept");
	cr_assert(has_msg(9, "weight in tenant 't0'"), "%s", all_msgs());
	cr_assert(has_msg(9 + CONF_DIAG_MAX - 1, "tenant 't15'"), "the first ones are kept:%s",
		  all_msgs());
}

Test(conf, aliases_cannot_blow_up, .timeout = 10)
{
	/* A billion-laughs document must be refused quickly, not expanded. */
	parse_bad("a: &a [x, x, x, x, x, x, x, x, x]\n"
		   "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
		   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
		   "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
		   "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
		   "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
		   "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
		   "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
		   "listen: 127.0.0.1:0\n"
		   "classes: { standard: { pools: *h } }\n"
		   "pools: { x: { slice: elastic, backends: [ { address: 127.0.0.1:1, max_inflight: 1 } ] } }\n");
	cr_assert(has_msg(1, "unknown key 'a' in the top level"), "%s", all_msgs());
	/* An aliased node reports the line where its anchor was defined. */
	cr_assert(has_msg(7, "pools in class 'standard': expected a pool name, got a list"),
		  "%s", all_msgs());
	cr_assert_eq(diag.count, 8 + 9, "one per unknown key and per list item, no more");
}

Test(conf, aliases_are_followed, .timeout = 10)
{
	struct conf *c = parse_ok(
		"listen: 127.0.0.1:0\n"
		"classes:\n"
		"  interactive: { pools: &p [spot] }\n"
		"  standard: { pools: *p }\n"
		"pools:\n"
		"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ] }\n");

	cr_assert_eq(c->classes[CONF_CLASS_STANDARD].npools, 1);
	conf_destroy(c);
}

/* ---- files -------------------------------------------------------------- */

Test(conf, load_missing_file, .timeout = 10)
{
	struct conf *c = (struct conf *)&diag;
	int rc = conf_load("/nonexistent/sluice.yaml", &c, &diag);

	cr_assert_eq(rc, -ENOENT);
	cr_assert_null(c);
	cr_assert_eq(diag.count, 1);
	cr_assert_str_eq(diag.msg[0], "/nonexistent/sluice.yaml: cannot read: No such file or directory");
}

Test(conf, load_directory, .timeout = 10)
{
	struct conf *c = NULL;

	cr_assert_eq(conf_load(data_dir(), &c, &diag), -EISDIR);
	cr_assert_null(c);
	cr_assert(strstr(diag.msg[0], "cannot read: Is a directory"), "%s", diag.msg[0]);
}

Test(conf, load_fixture_files, .timeout = 10)
{
	char path[PATH_MAX], prefix[PATH_MAX + 128];
	struct conf *c = NULL;
	int rc;

	snprintf(path, sizeof path, "%s/conf/valid.yaml", data_dir());
	rc = conf_load(path, &c, &diag);
	cr_assert_eq(rc, 0, "%s:%s", path, all_msgs());
	cr_assert_str_eq(c->path, path);
	cr_assert_eq(c->listen.sa.ss_family, AF_INET6);
	cr_assert_eq(c->npools, 2);
	cr_assert_eq(c->pools[1].nbackends, 2);
	cr_assert_eq(c->pools[1].backends[1].max_inflight, 5);
	cr_assert_eq(c->pools[1].backends[1].line, 22);
	cr_assert_eq(c->classes[CONF_CLASS_INTERACTIVE].npools, 2);
	conf_destroy(c);

	snprintf(path, sizeof path, "%s/conf/invalid.yaml", data_dir());
	rc = conf_load(path, &c, &diag);
	cr_assert_eq(rc, -EINVAL);
	cr_assert_null(c);
	cr_assert_eq(diag.count, 3, "%s", all_msgs());
	snprintf(prefix, sizeof prefix, "%s:5: unknown key 'max_queu' in class 'standard'", path);
	cr_assert_str_eq(diag.msg[0], prefix);
	snprintf(prefix, sizeof prefix, "%s:8: class 'opportunistic' may not use reserved pool 'gold'", path);
	cr_assert(starts_with(diag.msg[1], prefix), "%s", all_msgs());
	snprintf(prefix, sizeof prefix, "%s:14: max_inflight", path);
	cr_assert(starts_with(diag.msg[2], prefix), "%s", all_msgs());
}

Test(conf, example_files_load, .timeout = 10)
{
	static const char *const files[] = {
		"conf/examples/demo.yaml",
		"conf/examples/production.yaml",
	};
	char path[PATH_MAX];
	struct conf *c;
	size_t i;

	for (i = 0; i < sizeof files / sizeof files[0]; i++) {
		source_path(path, sizeof path, files[i]);
		c = NULL;
		cr_assert_eq(conf_load(path, &c, &diag), 0, "%s:%s", path, all_msgs());
		cr_assert_gt(c->ntenants, 0);
		conf_destroy(c);
	}
}

Test(conf, demo_example_keys, .timeout = 10)
{
	/* SHA-256 of "sk-chat-demo", the key the demo's README tells users. */
	static const uint8_t chat[4] = { 0xb0, 0xe3, 0xe8, 0x49 };
	char path[PATH_MAX];
	struct conf *c = NULL;

	source_path(path, sizeof path, "conf/examples/demo.yaml");
	cr_assert_eq(conf_load(path, &c, &diag), 0, "%s:%s", path, all_msgs());
	cr_assert_eq(c->ntenants, 2);
	cr_assert_str_eq(c->tenants[0].name, "chat");
	cr_assert_arr_eq(c->tenants[0].keys[0].sha256, chat, 4);
	cr_assert_eq(c->tenants[1].default_class, CONF_CLASS_OPPORTUNISTIC);
	cr_assert_eq(c->tenants[1].max_class, CONF_CLASS_OPPORTUNISTIC);
	cr_assert_eq(c->classes[CONF_CLASS_OPPORTUNISTIC].max_wait_ms, 600000);
	cr_assert_eq(c->pools[conf_pool_find(c, "gold")].slice, CONF_SLICE_RESERVED);
	conf_destroy(c);
}

/* ---- small functions ---------------------------------------------------- */

Test(conf, class_names, .timeout = 10)
{
	enum conf_class k;
	int i;

	for (i = 0; i < CONF_CLASS_COUNT; i++) {
		const char *name = conf_class_name((enum conf_class)i);

		cr_assert_eq(conf_class_parse(name, strlen(name), &k), 0);
		cr_assert_eq(k, (enum conf_class)i);
	}
	cr_assert_str_eq(conf_class_name(CONF_CLASS_INTERACTIVE), "interactive");
	cr_assert_str_eq(conf_class_name(CONF_CLASS_STANDARD), "standard");
	cr_assert_str_eq(conf_class_name(CONF_CLASS_OPPORTUNISTIC), "opportunistic");
	cr_assert_str_eq(conf_class_name(CONF_CLASS_COUNT), "invalid");
	/* Length-delimited: a header value need not be NUL-terminated. */
	cr_assert_eq(conf_class_parse("standardXYZ", 8, &k), 0);
	cr_assert_eq(k, CONF_CLASS_STANDARD);
	cr_assert_eq(conf_class_parse("standard", 7, &k), -EINVAL);
	cr_assert_eq(conf_class_parse("Interactive", 11, &k), -EINVAL);
	cr_assert_eq(conf_class_parse("", 0, &k), -EINVAL);
	cr_assert_eq(conf_class_parse(NULL, 0, &k), -EINVAL);
}

Test(conf, pool_find_and_destroy_null, .timeout = 10)
{
	struct conf *c = parse_ok(design_yaml);

	cr_assert_eq(conf_pool_find(c, "gold"), 0);
	cr_assert_eq(conf_pool_find(c, "spot"), 1);
	cr_assert_eq(conf_pool_find(c, "gol"), -1);
	cr_assert_eq(conf_pool_find(c, ""), -1);
	cr_assert_eq(conf_pool_find(NULL, "gold"), -1);
	conf_destroy(c);
	conf_destroy(NULL);
}

Test(conf, one_server_in_a_reserved_and_an_elastic_pool_is_refused, .timeout = 10)
{
	/* Batch work in the elastic pool would reach the reserved slice. */
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  interactive: { pools: [gold] }\n"
		   "  standard: { pools: [spot] }\n"
		   "pools:\n"
		   "  gold:\n"
		   "    slice: reserved\n"
		   "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n"
		   "  spot:\n"
		   "    slice: elastic\n"
		   "    backends: [ { address: 127.0.0.1:9001, max_inflight: 4 }, { address: 127.0.0.1:9000, max_inflight: 4 } ]\n",
		   11, "backend 127.0.0.1:9000 of elastic pool 'spot' is also in reserved pool 'gold' (line 8)");
}

#define DISCOVERING \
	"listen: 127.0.0.1:0\n" \
	"classes:\n" \
	"  standard: { pools: [spot] }\n" \
	"pools:\n" \
	"  spot:\n" \
	"    slice: elastic\n"

Test(conf, discovery_and_backend_defaults, .timeout = 10)
{
	struct conf *c = parse_ok(DISCOVERING
		"    discovery: { dns: vllm.inference.svc.cluster.local:8000, refresh_ms: 2s }\n"
		"    backend_defaults: { max_inflight: 32, slow_start_ms: 30s }\n"
		"resolvers: [ 10.96.0.10:53, \"[fd00::a]:5353\" ]\n");
	const struct conf_pool *p = &c->pools[0];

	cr_assert_eq(p->nbackends, 0);
	cr_assert_str_eq(p->discovery.dns_host, "vllm.inference.svc.cluster.local");
	cr_assert_eq(p->discovery.dns_port, 8000);
	cr_assert_eq(p->discovery.refresh_ms, 2000);
	cr_assert_eq(p->backend_defaults.max_inflight, 32);
	cr_assert_eq(p->backend_defaults.slow_start_ms, 30000);
	cr_assert_str_eq(c->resolvers, "10.96.0.10:53,[fd00::a]:5353");
	conf_destroy(c);

	c = parse_ok(DISCOVERING "    discovery: { dns: \"[fd00::1]:8000\" }\n");
	cr_assert_str_eq(c->pools[0].discovery.dns_host, "fd00::1");
	cr_assert_eq(c->pools[0].discovery.refresh_ms, 5000, "refreshed every 5 s by default");
	cr_assert_eq(c->pools[0].backend_defaults.max_inflight, 16);
	cr_assert_eq(c->pools[0].backend_defaults.slow_start_ms, 0);
	cr_assert_null(c->resolvers, "the system's resolvers");
	conf_destroy(c);
}

Test(conf, discovery_errors, .timeout = 10)
{
	expect_one(DISCOVERING "    discovery: { dns: vllm.svc }\n", 7,
		   "dns in discovery of pool 'spot' must be HOST:PORT");
	expect_one(DISCOVERING "    discovery: { dns: \"vllm.svc:0\" }\n", 7, "must be HOST:PORT");
	expect_one(DISCOVERING "    discovery: { dns: \"fd00::1:80\" }\n", 7, "must be HOST:PORT");
	expect_one(DISCOVERING "    discovery: { refresh_ms: 1s }\n", 7,
		   "missing required key 'dns' in discovery of pool 'spot'");
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\", refresh_ms: 10ms }\n", 7, "refresh_ms");
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\" }\n"
		   "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n", 8,
		   "pool 'spot' has both backends and discovery: use one");
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\" }\n    backend_defaults: { max_inflight: 0 }\n", 8,
		   "max_inflight");
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\" }\nresolvers: [ kube-dns:53 ]\n", 8,
		   "resolvers: expected IP:PORT (an address, not a name), got 'kube-dns:53'");
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\" }\nresolvers: [ 10.0.0.1 ]\n", 8,
		   "resolvers: expected IP:PORT");
}

/* ---- replicas ---------------------------------------------------------- */

Test(conf, replicas_count_or_dns, .timeout = 10)
{
	struct conf *c = parse_ok(DISCOVERING "    discovery: { dns: \"a:1\" }\n");
	cr_assert_eq(c->replicas.count, 1, "one replica unless told");
	cr_assert_null(c->replicas.dns_host);
	conf_destroy(c);

	c = parse_ok(DISCOVERING "    discovery: { dns: \"a:1\" }\nreplicas: { count: 3 }\n");
	cr_assert_eq(c->replicas.count, 3);
	cr_assert_null(c->replicas.dns_host);
	conf_destroy(c);

	c = parse_ok(DISCOVERING "    discovery: { dns: \"a:1\" }\n"
		     "replicas: { dns: sluice-headless.ns.svc.cluster.local:8080, refresh_ms: 2s }\n");
	cr_assert_str_eq(c->replicas.dns_host, "sluice-headless.ns.svc.cluster.local");
	cr_assert_eq(c->replicas.dns_port, 8080);
	cr_assert_eq(c->replicas.refresh_ms, 2000);
	cr_assert_eq(c->replicas.count, 1, "until the first answer");
	conf_destroy(c);

	c = parse_ok(DISCOVERING "    discovery: { dns: \"a:1\" }\nreplicas: { dns: \"s:80\" }\n");
	cr_assert_eq(c->replicas.refresh_ms, 5000, "refreshed every 5 s by default");
	conf_destroy(c);
}

Test(conf, replicas_errors, .timeout = 10)
{
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\" }\nreplicas: { count: 0 }\n", 8, "count");
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\" }\nreplicas: { count: 2000 }\n", 8, "count");
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\" }\nreplicas: { count: 2, dns: \"s:80\" }\n", 8,
		   "replicas has both count and dns: use one");
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\" }\nreplicas: { count: 2, refresh_ms: 1s }\n", 8,
		   "replicas: refresh_ms needs dns");
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\" }\nreplicas: { dns: sluice }\n", 8,
		   "dns in replicas must be HOST:PORT");
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\" }\nreplicas: { dns: \"s:80\", refresh_ms: 10ms }\n", 8,
		   "refresh_ms");
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\" }\nreplicas: { count: 2, cuont: 2 }\n", 8, "cuont");
	expect_one(DISCOVERING "    discovery: { dns: \"a:1\" }\nreplicas: {}\n", 8, "replicas needs count or dns");
}

/* ---- health and outlier ------------------------------------------------- */

Test(conf, pool_health_and_outlier, .timeout = 10)
{
	struct conf *c = parse_ok(MINI
		"    health: { path: /v1/health?deep=1, interval_ms: 5s, timeout_ms: 500, unhealthy_after: 3, healthy_after: 1 }\n"
		"    outlier: { consecutive_failures: 7, eject_ms: 2s, max_eject_ms: 1m, max_ejected_share: 0.25 }\n");
	const struct conf_health *h = &c->pools[0].health;
	const struct conf_outlier *o = &c->pools[0].outlier;

	cr_assert(h->enabled);
	cr_assert_str_eq(h->path, "/v1/health?deep=1");
	cr_assert_eq(h->interval_ms, 5000);
	cr_assert_eq(h->timeout_ms, 500);
	cr_assert_eq(h->unhealthy_after, 3);
	cr_assert_eq(h->healthy_after, 1);
	cr_assert_eq(h->line, 8);
	cr_assert(o->enabled);
	cr_assert_eq(o->consecutive_failures, 7);
	cr_assert_eq(o->eject_ms, 2000);
	cr_assert_eq(o->max_eject_ms, 60000);
	cr_assert_float_eq(o->max_ejected_share, 0.25, 1e-12);
	cr_assert_eq(o->line, 9);
	conf_destroy(c);
}

Test(conf, pool_health_and_outlier_defaults, .timeout = 10)
{
	struct conf *c = parse_ok(MINI);

	cr_assert_not(c->pools[0].health.enabled, "no section: no active checks");
	cr_assert_null(c->pools[0].health.path);
	cr_assert_not(c->pools[0].outlier.enabled, "no section: no ejection");
	conf_destroy(c);

	c = parse_ok(MINI "    health: {}\n    outlier: {}\n");
	const struct conf_health *h = &c->pools[0].health;
	const struct conf_outlier *o = &c->pools[0].outlier;
	cr_assert(h->enabled);
	cr_assert_str_eq(h->path, "/health");
	cr_assert_eq(h->interval_ms, 2000);
	cr_assert_eq(h->timeout_ms, 1000);
	cr_assert_eq(h->unhealthy_after, 2);
	cr_assert_eq(h->healthy_after, 2);
	cr_assert(o->enabled);
	cr_assert_eq(o->consecutive_failures, 5);
	cr_assert_eq(o->eject_ms, 10000);
	cr_assert_eq(o->max_eject_ms, 300000);
	cr_assert_float_eq(o->max_ejected_share, 0.5, 1e-12);
	conf_destroy(c);
}

Test(conf, pool_health_and_outlier_bounds, .timeout = 10)
{
	expect_one(MINI "    health: { interval_ms: 50ms }\n", 8, "interval_ms in health of pool 'spot' must be at least 100");
	expect_one(MINI "    health: { timeout_ms: 0 }\n", 8, "timeout_ms in health of pool 'spot' must be at least 1");
	expect_one(MINI "    health: { unhealthy_after: 0 }\n", 8, "unhealthy_after in health of pool 'spot' must be at least 1");
	expect_one(MINI "    health: { healthy_after: 101 }\n", 8, "healthy_after in health of pool 'spot' must be at most 100");
	expect_one(MINI "    health: { interval_ms: 1s, timeout_ms: 2s }\n", 8,
		   "health of pool 'spot': timeout_ms (2000 ms) must not exceed interval_ms (1000 ms)");
	expect_one(MINI "    health: { path: health }\n", 8, "path in health of pool 'spot' must be a path starting with '/'");
	expect_one(MINI "    health: { path: \"/a b\" }\n", 8, "path in health of pool 'spot' must be a path");
	expect_one(MINI "    health: { paht: /health }\n", 8, "paht");
	expect_one(MINI "    health: /health\n", 8, "health");
	expect_one(MINI "    outlier: { consecutive_failures: 0 }\n", 8,
		   "consecutive_failures in outlier of pool 'spot' must be at least 1");
	expect_one(MINI "    outlier: { max_ejected_share: 0 }\n", 8, "max_ejected_share in outlier of pool 'spot'");
	expect_one(MINI "    outlier: { max_ejected_share: 1.5 }\n", 8, "max_ejected_share in outlier of pool 'spot'");
	expect_one(MINI "    outlier: { eject_ms: 1m, max_eject_ms: 10s }\n", 8,
		   "outlier of pool 'spot': max_eject_ms (10000 ms) must not be below eject_ms (60000 ms)");
}

/* ---- models ------------------------------------------------------------- */

/* Two pools: a lists models from line 6, b lists none (any model). */
#define MODELS_HEAD \
	"listen: 127.0.0.1:0\n" \
	"classes:\n" \
	"  standard: { pools: [a, b] }\n" \
	"pools:\n" \
	"  a:\n"
#define MODELS_TAIL \
	"    slice: elastic\n" \
	"    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n" \
	"  b:\n" \
	"    slice: elastic\n" \
	"    backends: [ { address: 127.0.0.1:9001, max_inflight: 4 } ]\n"

Test(conf, pool_models_parse_into_one_sorted_table, .timeout = 10)
{
	struct conf *c = parse_ok("listen: 127.0.0.1:0\n"
				  "classes:\n"
				  "  standard: { pools: [a, b, c] }\n"
				  "pools:\n"
				  "  a:\n"
				  "    slice: elastic\n"
				  "    models: [llama-3.1-8b-instruct, \"meta-llama/Llama-3.1-70B\", qwen2.5:7b]\n"
				  "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n"
				  "  b:\n"
				  "    slice: elastic\n"
				  "    models:\n"
				  "      - llama-3.1-8b-instruct\n"
				  "      - mistral-7b\n"
				  "    backends: [ { address: 127.0.0.1:9001, max_inflight: 4 } ]\n"
				  "  c:\n"
				  "    slice: elastic\n"
				  "    backends: [ { address: 127.0.0.1:9002, max_inflight: 4 } ]\n");

	cr_assert_eq(c->pools[0].nmodels, 3);
	cr_assert_str_eq(c->pools[0].models[1], "meta-llama/Llama-3.1-70B");
	cr_assert_eq(c->pools[1].nmodels, 2);
	cr_assert_null(c->pools[2].models, "no list: any model");
	cr_assert_eq(c->pools_any, 1u << 2);
	/* Sorted by bytes, listed once, with every pool that lists it. */
	cr_assert_eq(c->nmodels, 4);
	cr_assert_str_eq(c->models[0].name, "llama-3.1-8b-instruct");
	cr_assert_eq(c->models[0].pools, 3u);
	cr_assert_str_eq(c->models[1].name, "meta-llama/Llama-3.1-70B");
	cr_assert_str_eq(c->models[2].name, "mistral-7b");
	cr_assert_eq(c->models[2].pools, 2u);
	cr_assert_str_eq(c->models[3].name, "qwen2.5:7b");
	/* The pools a request may use: those listing its model, and those
	 * listing none. */
	cr_assert_eq(conf_model_pools(c, "llama-3.1-8b-instruct", 21), 7u);
	cr_assert_eq(conf_model_pools(c, "mistral-7b", 10), 6u);
	cr_assert_eq(conf_model_pools(c, "qwen2.5:7b", 10), 5u);
	cr_assert_eq(conf_model_pools(c, "mistral-7bX", 10), 6u, "a counted name, not a C string");
	cr_assert_eq(conf_model_pools(c, "mistral", 7), 4u, "a prefix is another name");
	cr_assert_eq(conf_model_pools(c, "gpt-4o", 6), 4u);
	cr_assert_eq(conf_model_pools(c, "x", CONF_MODEL_MAX + 1), 4u, "too long to be listed");
	conf_destroy(c);

	/* No list anywhere: no routing by model, every pool for every model. */
	c = parse_ok(MINI);
	cr_assert_eq(c->nmodels, 0);
	cr_assert_eq(conf_model_pools(c, "anything", 8), UINT64_MAX);
	conf_destroy(c);
}

Test(conf, pool_models_errors, .timeout = 10)
{
	expect_one(MODELS_HEAD "    models: [m1, m2, m1]\n" MODELS_TAIL, 6,
		   "pool 'a' lists model 'm1' twice (first at line 6)");
	expect_one(MODELS_HEAD "    models:\n      - m1\n      - \"m1\"\n" MODELS_TAIL, 8,
		   "pool 'a' lists model 'm1' twice (first at line 7)");
	expect_one(MODELS_HEAD "    models: llama\n" MODELS_TAIL, 6,
		   "models in pool 'a': expected a list, got 'llama'");
	expect_one(MODELS_HEAD "    models: { llama: 1 }\n" MODELS_TAIL, 6,
		   "models in pool 'a': expected a list, got a mapping");
	expect_one(MODELS_HEAD "    models: []\n" MODELS_TAIL, 6, "pool 'a' has no models");
	expect_one(MODELS_HEAD "    models: [m1, [m2]]\n" MODELS_TAIL, 6,
		   "models in pool 'a': expected a model name, got a list");
	expect_one(MODELS_HEAD "    models: [m1, ~]\n" MODELS_TAIL, 6,
		   "models in pool 'a': expected a model name");
	expect_one(MODELS_HEAD "    models: [m1, \"\"]\n" MODELS_TAIL, 6, "model '' in pool 'a' may not be empty");
	expect_one(MODELS_HEAD "    models: [\"m\\t1\"]\n" MODELS_TAIL, 6, "may not hold control characters");

	/* Bounds: a name of 255 bytes is fine, 256 is not; 256 names, not 257. */
	char text[8192], names[4096];
	char name[CONF_MODEL_MAX + 2];
	memset(name, 'm', sizeof name - 1);
	name[CONF_MODEL_MAX] = '\0';
	snprintf(text, sizeof text, MODELS_HEAD "    models: [%s]\n" MODELS_TAIL, name);
	struct conf *c = parse_ok(text);
	cr_assert_eq(c->models[0].len, CONF_MODEL_MAX);
	conf_destroy(c);
	name[CONF_MODEL_MAX] = 'm';
	name[CONF_MODEL_MAX + 1] = '\0';
	snprintf(text, sizeof text, MODELS_HEAD "    models: [%s]\n" MODELS_TAIL, name);
	expect_one(text, 6, "is longer than 255 bytes");

	size_t n = 0;
	for (int i = 0; i < CONF_MODELS_MAX; i++)
		n += (size_t)snprintf(names + n, sizeof names - n, "%sm%d", i ? "," : "", i);
	snprintf(text, sizeof text, MODELS_HEAD "    models: [%s]\n" MODELS_TAIL, names);
	c = parse_ok(text);
	cr_assert_eq(c->nmodels, CONF_MODELS_MAX);
	conf_destroy(c);
	snprintf(names + n, sizeof names - n, ",m%d", CONF_MODELS_MAX);
	snprintf(text, sizeof text, MODELS_HEAD "    models: [%s]\n" MODELS_TAIL, names);
	expect_one(text, 6, "pool 'a' lists 257 models; at most 256");
}

Test(conf, at_most_64_pools, .timeout = 10)
{
	static char text[64 * 1024];
	size_t n = (size_t)snprintf(text, sizeof text, "listen: 127.0.0.1:0\n"
				    "classes:\n  standard: { pools: [p0] }\npools:\n");
	for (int i = 0; i < CONF_POOLS_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof text - n,
				      "  p%d: { slice: elastic, backends: [ { address: 127.0.0.1:%d, max_inflight: 1 } ] }\n",
				      i, 9000 + i);
	struct conf *c = parse_ok(text);
	cr_assert_eq(c->npools, CONF_POOLS_MAX);
	conf_destroy(c);
	snprintf(text + n, sizeof text - n,
		 "  p64: { slice: elastic, backends: [ { address: 127.0.0.1:9999, max_inflight: 1 } ] }\n");
	expect_one(text, 5 + CONF_POOLS_MAX, "pools: at most 64 pools (pool 'p64' is one more)");
}

#define SHARED_BASE \
	"listen: 127.0.0.1:0\n" \
	"classes:\n" \
	"  standard: { pools: [spot] }\n" \
	"pools:\n" \
	"  spot:\n" \
	"    slice: elastic\n" \
	"    backends: [ { address: 127.0.0.1:8001, max_inflight: 4 } ]\n"

Test(conf, shared_limits, .timeout = 10)
{
	struct conf *c = parse_ok(SHARED_BASE
		"shared_limits: { redis: redis.internal:6379, key_prefix: \"gw1:\", expected_replicas: 3 }\n");
	cr_assert_str_eq(c->shared_limits.redis_host, "redis.internal");
	cr_assert_eq(c->shared_limits.redis_port, 6379);
	cr_assert_str_eq(c->shared_limits.key_prefix, "gw1:");
	cr_assert_eq(c->shared_limits.expected_replicas, 3);
	conf_destroy(c);

	c = parse_ok(SHARED_BASE "shared_limits: { redis: 127.0.0.1:6380 }\n");
	cr_assert_str_eq(c->shared_limits.key_prefix, "sluice:", "the default prefix");
	cr_assert_eq(c->shared_limits.expected_replicas, 1);
	conf_destroy(c);

	c = parse_ok(SHARED_BASE);
	cr_assert_null(c->shared_limits.redis_host, "no section: no shared limits");
	conf_destroy(c);

	expect_one(SHARED_BASE "shared_limits: { redis: localhost }\n", 8, "redis in shared_limits must be HOST:PORT");
	expect_one(SHARED_BASE "shared_limits: { key_prefix: x }\n", 8, "redis");
	expect_one(SHARED_BASE "shared_limits: { redis: r:1, expected_replicas: 0 }\n", 8, "expected_replicas");
}

/* ${VAR}, ${VAR:-default} and $$ in the text, before YAML reads it. */
Test(conf, environment_variables_in_values, .timeout = 10)
{
	setenv("SLUICE_T_IDLE", "7s", 1);
	setenv("SLUICE_T_EMPTY", "", 1);
	unsetenv("SLUICE_T_UNSET");
	struct conf *c = parse_ok(MINI "timeouts: { idle_ms: ${SLUICE_T_IDLE}, header_ms: ${SLUICE_T_UNSET:-3s},\n"
				       "  upstream_ms: \"${SLUICE_T_EMPTY:-9s}\" }  # ${SLUICE_T_UNSET} in a comment\n");
	cr_assert_eq(c->timeouts.idle_ms, 7000);
	cr_assert_eq(c->timeouts.header_ms, 3000);
	cr_assert_eq(c->timeouts.upstream_ms, 9000);
	conf_destroy(c);

	/* Unset without a default: an error on its line, later lines still
	 * numbered as written, and every unset variable reported. */
	size_t n = parse_bad(MINI "timeouts:\n  idle_ms: ${SLUICE_T_UNSET}\n  header_ms: ${SLUICE_T_NOPE}\n");
	cr_assert_eq(n, 2, "%s", all_msgs());
	cr_assert(has_msg(9, "${SLUICE_T_UNSET} is not set"), "%s", all_msgs());
	cr_assert(has_msg(10, "${SLUICE_T_NOPE} is not set"), "%s", all_msgs());
	cr_assert_str_eq(diag.msg[0], "t.yaml:9: ${SLUICE_T_UNSET} is not set");

	/* Set but empty is set: ${X} is "" (here a bad duration, on its line). */
	expect_one(MINI "timeouts: { idle_ms: \"${SLUICE_T_EMPTY}\" }\n", 8, "idle_ms in timeouts");
	expect_one(MINI "timeouts: { idle_ms: ${SLUICE_T_IDLE\n", 8, "bad variable reference");
	expect_one(MINI "timeouts: { idle_ms: ${1X} }\n", 8, "bad variable reference '${1X}'");
	setenv("SLUICE_T_NL", "1s\nadmin: x", 1);
	expect_one(MINI "timeouts: { idle_ms: ${SLUICE_T_NL} }\n", 8, "${SLUICE_T_NL} holds a line break");
	/* After a substitution, errors keep the operator's line numbers. */
	expect_one(MINI "timeouts: { idle_ms: ${SLUICE_T_IDLE} }\nlimits: { max_headers: 10KiB }\n", 9,
		   "max_headers in limits: expected an integer");
}

Test(conf, dollar_dollar_is_a_literal_dollar, .timeout = 10)
{
	unsetenv("SLUICE_T_UNSET");
	/* $$ gives '$' (so $${X} is the text ${X}); a lone '$' stays, and so
	 * does a quote inside a plain scalar (don't) with a comment after it. */
	struct conf *c = parse_ok(MINI "    health:\n      path: /h?a=$$1&b=$${X}&c=$\n"
				       "    # don't ${SLUICE_T_UNSET}\n");
	cr_assert_str_eq(c->pools[0].health.path, "/h?a=$1&b=${X}&c=$");
	conf_destroy(c);
	c = parse_ok(MINI "    health: { path: \"/it's/${SLUICE_T_UNSET:-x}\" }  # ${SLUICE_T_UNSET}\n");
	cr_assert_str_eq(c->pools[0].health.path, "/it's/x");
	conf_destroy(c);
}

/* A range error states the bound in the unit the value was written in. */
Test(conf, bounds_in_the_unit_written, .timeout = 10)
{
	expect_one(MINI "timeouts: { upstream_ms: 1000000h }\n", 8,
		   "upstream_ms in timeouts must be at most 8784h, got '1000000h'");
	expect_one(MINI "timeouts: { upstream_ms: 99999999m }\n", 8,
		   "upstream_ms in timeouts must be at most 527040m, got '99999999m'");
	expect_one(MINI "timeouts: { upstream_ms: 99999999999 }\n", 8,
		   "upstream_ms in timeouts must be at most 31622400000, got '99999999999'");
	expect_one(MINI "    health: { interval_ms: 50ms }\n", 8,
		   "interval_ms in health of pool 'spot' must be at least 100ms, got '50ms'");
	/* 100 ms is not a whole number of seconds: said in ms. */
	expect_one(MINI "    health: { interval_ms: 0s }\n", 8,
		   "interval_ms in health of pool 'spot' must be at least 100ms, got '0s'");
	expect_one(MINI "limits: { max_header_bytes: 8GiB }\n", 8,
		   "max_header_bytes in limits must be at most 4294967295B, got '8GiB'");
}

/* A duration under 50 written without a unit loads, with a warning. */
Test(conf, short_durations_without_a_unit_warn, .timeout = 10)
{
	struct conf *c = parse_ok("listen: 127.0.0.1:0\n"
				  "classes:\n"
				  "  standard: { pools: [spot], max_wait_ms: 5 }\n"
				  "pools:\n"
				  "  spot:\n"
				  "    slice: elastic\n"
				  "    backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ]\n"
				  "timeouts: { idle_ms: 49, header_ms: 50, body_ms: 5ms, upstream_ms: 5s }\n");
	cr_assert_eq(c->classes[CONF_CLASS_STANDARD].max_wait_ms, 5, "a warning, not a change");
	cr_assert_eq(diag.nwarn, 2);
	cr_assert_str_eq(diag.warn[0], "t.yaml:3: max_wait_ms 5 has no unit: 5 ms (write 5ms to silence this, or 5s)");
	cr_assert_str_eq(diag.warn[1],
			 "t.yaml:8: idle_ms 49 has no unit: 49 ms (write 49ms to silence this, or 49s)");
	conf_destroy(c);

	c = parse_ok(MINI "timeouts: { idle_ms: 60000, header_ms: 1s, body_ms: 20ms }\n");
	cr_assert_eq(diag.nwarn, 0);
	conf_destroy(c);
	/* Warnings are kept when the load fails too. */
	parse_bad(MINI "timeouts: { idle_ms: 5, header_ms: nope }\n");
	cr_assert_eq(diag.nwarn, 1);
}

Test(conf, log_format_and_level, .timeout = 10)
{
	struct conf *c = parse_ok(MINI);
	cr_assert_not(c->log_json, "text by default");
	cr_assert_eq(c->log_level, CONF_LOG_INFO);
	conf_destroy(c);

	c = parse_ok(MINI "log_format: json\nlog_level: warn\n");
	cr_assert(c->log_json);
	cr_assert_eq(c->log_level, CONF_LOG_WARN);
	conf_destroy(c);

	c = parse_ok(MINI "log_format: text\nlog_level: debug\n");
	cr_assert_not(c->log_json);
	cr_assert_eq(c->log_level, CONF_LOG_DEBUG);
	conf_destroy(c);

	expect_one(MINI "log_format: xml\n", 8, "log_format must be text or json, got 'xml'");
	expect_one(MINI "log_level: verbose\n", 8, "log_level must be debug, info, warn or error, got 'verbose'");
}

Test(conf, tenant_slot_share_is_off_by_default_and_fair_on_request, .timeout = 10)
{
	struct conf *c = parse_ok(MINI);
	cr_assert_eq(c->classes[CONF_CLASS_STANDARD].tenant_slot_share, CONF_TENANT_SLOT_SHARE_OFF);
	conf_destroy(c);

	c = parse_ok("listen: 127.0.0.1:0\n"
		     "classes:\n"
		     "  interactive: { pools: [spot], tenant_slot_share: off }\n"
		     "  standard: { pools: [spot], tenant_slot_share: fair }\n"
		     "pools:\n"
		     "  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ] }\n");
	cr_assert_eq(c->classes[CONF_CLASS_INTERACTIVE].tenant_slot_share, CONF_TENANT_SLOT_SHARE_OFF);
	cr_assert_eq(c->classes[CONF_CLASS_STANDARD].tenant_slot_share, CONF_TENANT_SLOT_SHARE_FAIR);
	conf_destroy(c);

	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard: { pools: [spot], tenant_slot_share: strict }\n"
		   "pools:\n"
		   "  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ] }\n",
		   3, "tenant_slot_share in class 'standard' must be fair or off, got 'strict'");
	expect_one("listen: 127.0.0.1:0\n"
		   "classes:\n"
		   "  standard:\n"
		   "    pools: [spot]\n"
		   "    tenant_slot_share: [fair]\n"
		   "pools:\n"
		   "  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ] }\n",
		   5, "tenant_slot_share");
}

/* preemption: only opportunistic work may be preempted; bounds on the rate. */
#define PREEMPT_HEAD \
	"listen: 127.0.0.1:0\n" \
	"pools:\n" \
	"  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ] }\n" \
	"classes:\n" \
	"  interactive: { pools: [spot] }\n"

Test(conf, preemption, .timeout = 10)
{
	struct conf *c = parse_ok(PREEMPT_HEAD "  opportunistic: { pools: [spot] }\n");
	cr_assert_not(c->classes[CONF_CLASS_OPPORTUNISTIC].preemption.enabled, "off unless asked for");
	conf_destroy(c);

	c = parse_ok(PREEMPT_HEAD "  opportunistic: { pools: [spot], preemption: { enabled: true, max_per_s: 2.5 } }\n");
	cr_assert(c->classes[CONF_CLASS_OPPORTUNISTIC].preemption.enabled);
	cr_assert_float_eq(c->classes[CONF_CLASS_OPPORTUNISTIC].preemption.max_per_s, 2.5, 1e-9);
	cr_assert_eq(c->classes[CONF_CLASS_OPPORTUNISTIC].preemption.line, 6);
	conf_destroy(c);

	c = parse_ok(PREEMPT_HEAD "  opportunistic: { pools: [spot], preemption: { enabled: true } }\n");
	cr_assert_float_eq(c->classes[CONF_CLASS_OPPORTUNISTIC].preemption.max_per_s, 10, 1e-9, "the default");
	conf_destroy(c);

	expect_one(PREEMPT_HEAD "  standard: { pools: [spot], preemption: { enabled: true } }\n", 6,
		   "class 'standard' may not set preemption: only opportunistic work can be preempted");
	expect_one("listen: 127.0.0.1:0\n"
		   "pools:\n"
		   "  spot: { slice: elastic, backends: [ { address: 127.0.0.1:9000, max_inflight: 4 } ] }\n"
		   "classes:\n"
		   "  interactive: { pools: [spot], preemption: { enabled: false } }\n", 5,
		   "class 'interactive' may not set preemption");
	expect_one(PREEMPT_HEAD "  opportunistic: { pools: [spot], preemption: { enabled: true, max_per_s: 0 } }\n", 6,
		   "max_per_s");
	expect_one(PREEMPT_HEAD "  opportunistic: { pools: [spot], preemption: { enabled: true, max_per_s: 5000 } }\n", 6,
		   "max_per_s");
	expect_one(PREEMPT_HEAD "  opportunistic: { pools: [spot], preemption: { enabled: yes } }\n", 6, "enabled");
	expect_one(PREEMPT_HEAD "  opportunistic: { pools: [spot], preemption: { enable: true } }\n", 6,
		   "unknown key 'enable'");
	expect_one(PREEMPT_HEAD "  opportunistic: { pools: [spot], preemption: true }\n", 6, "preemption");
}

/* ---- slots: adaptive per-backend slots ------------------------------------- */

Test(conf, pool_slots_adapt, .timeout = 10)
{
	struct conf *c = parse_ok(MINI);
	const struct conf_slots *s = &c->pools[0].slots;
	cr_assert_eq(s->adapt, CONF_SLOTS_OFF, "no section: max_inflight as written");
	cr_assert_eq(s->min, 2);
	cr_assert_eq(s->max, 256);
	cr_assert_eq(s->interval_ms, 1000);
	conf_destroy(c);

	c = parse_ok(MINI "    slots: { adapt: vllm_metrics, min: 4, max: 128, interval_ms: 250ms }\n");
	s = &c->pools[0].slots;
	cr_assert_eq(s->adapt, CONF_SLOTS_VLLM_METRICS);
	cr_assert_eq(s->min, 4);
	cr_assert_eq(s->max, 128);
	cr_assert_eq(s->interval_ms, 250);
	cr_assert_eq(s->line, 8);
	conf_destroy(c);

	c = parse_ok(MINI "    slots: { adapt: latency }\n");
	cr_assert_eq(c->pools[0].slots.adapt, CONF_SLOTS_LATENCY);
	conf_destroy(c);
	c = parse_ok(MINI "    slots: { adapt: off, min: 1, max: 1 }\n");
	cr_assert_eq(c->pools[0].slots.adapt, CONF_SLOTS_OFF);
	conf_destroy(c);

	expect_one(MINI "    slots: { adapt: vllm }\n", 8,
		   "adapt in slots of pool 'spot' must be vllm_metrics, latency or off, got 'vllm'");
	expect_one(MINI "    slots: { adapt: latency, min: 64, max: 16 }\n", 8,
		   "slots of pool 'spot': min (64) must not exceed max (16)");
	expect_one(MINI "    slots: { min: 0 }\n", 8, "min in slots of pool 'spot' must be at least 1");
	expect_one(MINI "    slots: { interval_ms: 10ms }\n", 8, "interval_ms in slots of pool 'spot' must be at least 100");
	expect_one(MINI "    slots: { adapt: latency, mxa: 3 }\n", 8, "mxa");
	expect_one(MINI "    slots: latency\n", 8, "slots");
}
