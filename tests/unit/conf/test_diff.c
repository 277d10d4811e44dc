/*
 * test_diff.c - the running config as JSON (conf_dump()) and what a reload
 * would change (conf_diff_print()), as `sluice -t --diff` shows them.
 *
 * The first test walks the example files' YAML and asserts that every key
 * they write appears in the dump: a key added to the schema and not to the
 * dump would make --diff blind to it.
 */
#include <criterion/criterion.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "conf/conf.h"
#include "conf/diff.h"

#define BASE \
	"listen: 127.0.0.1:0\n" \
	"classes:\n" \
	"  interactive: { max_wait_ms: 250, pools: [gold] }\n" \
	"  standard: { pools: [spot] }\n" \
	"pools:\n" \
	"  gold:\n" \
	"    slice: reserved\n" \
	"    upstream_auth: { bearer_env: SLUICE_TEST_DIFF_BEARER }\n" \
	"    backends: [ { address: 127.0.0.1:9001, max_inflight: 8 } ]\n" \
	"  spot:\n" \
	"    slice: elastic\n" \
	"    backends: [ { address: 127.0.0.1:9002, max_inflight: 4 } ]\n" \
	"tenants:\n" \
	"  chat:\n" \
	"    keys: [ { sha256: \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\" } ]\n" \
	"    default_class: interactive\n"

static struct conf *parse(const char *text)
{
	struct conf_diag diag = { 0 };
	struct conf *c = NULL;

	setenv("SLUICE_TEST_DIFF_BEARER", "sk-upstream-very-secret", 1);
	cr_assert_eq(conf_parse("t.yaml", text, strlen(text), &c, &diag), 0, "%s", diag.msg[0]);
	return c;
}

static json_t *dump(const char *text)
{
	struct conf *c = parse(text);
	json_t *j = conf_dump(c);

	cr_assert_not_null(j);
	conf_destroy(c);
	return j;
}

/* ---- every key an operator writes is in the dump ----------------------- */

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static void expect_keys(yaml_document_t *doc, const yaml_node_t *m, const json_t *j, const char *path);

static void expect_value(yaml_document_t *doc, const char *key, const yaml_node_t *v, const json_t *jv,
			 const char *path)
{
	if (v->type == YAML_MAPPING_NODE && strcmp(key, "upstream_auth") != 0) {
		expect_keys(doc, v, jv, path);
	} else if (v->type == YAML_SEQUENCE_NODE && strcmp(key, "backends") == 0) {
		/* A list in the file, an object keyed by address in the dump. */
		for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top; i++) {
			const yaml_node_t *item = yaml_document_get_node(doc, *i);
			for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++)
				if (strcmp(scalar(yaml_document_get_node(doc, p->key)), "address") == 0) {
					const char *addr = scalar(yaml_document_get_node(doc, p->value));
					cr_assert_not_null(json_object_get(jv, addr), "%s: backend %s is not in the dump",
							   path, addr);
				}
		}
	} else if (v->type == YAML_SEQUENCE_NODE && strcmp(key, "keys") == 0) {
		cr_assert_eq(json_array_size(jv), (size_t)(v->data.sequence.items.top - v->data.sequence.items.start),
			     "%s: every key is shown", path);
	}
}

static void expect_keys(yaml_document_t *doc, const yaml_node_t *m, const json_t *j, const char *path)
{
	cr_assert(json_is_object(j), "%s is not an object in the dump", path);
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		const char *key = scalar(yaml_document_get_node(doc, p->key));
		char sub[512];
		snprintf(sub, sizeof sub, "%s.%s", path, key);
		const json_t *jv = json_object_get(j, key);
		cr_assert_not_null(jv, "%s is in the file but not in the dump", sub);
		expect_value(doc, key, yaml_document_get_node(doc, p->value), jv, sub);
	}
}

Test(diff, every_key_of_the_examples_is_in_the_dump, .timeout = 10)
{
	static const char *const files[] = { "conf/examples/demo.yaml", "conf/examples/production.yaml" };
	const char *data = getenv("SLUICE_TEST_DATA");

	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/../../%s", data ? data : "tests/data", files[f]);
		struct conf_diag diag = { 0 };
		struct conf *c = NULL;
		cr_assert_eq(conf_load(path, &c, &diag), 0, "%s: %s", path, diag.msg[0]);
		json_t *j = conf_dump(c);
		cr_assert_not_null(j);

		FILE *in = fopen(path, "r");
		cr_assert_not_null(in);
		yaml_parser_t parser;
		yaml_document_t doc;
		yaml_parser_initialize(&parser);
		yaml_parser_set_input_file(&parser, in);
		cr_assert(yaml_parser_load(&parser, &doc));
		expect_keys(&doc, yaml_document_get_root_node(&doc), j, files[f]);
		yaml_document_delete(&doc);
		yaml_parser_delete(&parser);
		fclose(in);
		json_decref(j);
		conf_destroy(c);
	}
}

/* ---- no secrets --------------------------------------------------------- */

Test(diff, the_dump_holds_no_secret, .timeout = 10)
{
	json_t *j = dump(BASE);
	char *text = json_dumps(j, JSON_COMPACT);

	cr_assert_null(strstr(text, "very-secret"), "the upstream credential is not shown: %s", text);
	cr_assert_null(strstr(text, "9f86d081884c7d659a2f"), "nor a key's whole hash");
	cr_assert_not_null(strstr(text, "\"keys\":[\"9f86d081884c\"]"), "%s", text);
	const char *fp = json_string_value(json_object_get(
		json_object_get(json_object_get(json_object_get(j, "pools"), "gold"), "upstream_auth"), "bearer"));
	cr_assert(fp != NULL && strncmp(fp, "sha256:", 7) == 0 && strlen(fp) == 7 + 12, "%s", fp ? fp : "none");
	free(text);
	json_decref(j);
}

/* ---- the diff ----------------------------------------------------------- */

static char out[8192];

static struct conf_diff diff(const char *a, const char *b)
{
	json_t *ja = dump(a), *jb = dump(b);
	FILE *f = fmemopen(out, sizeof out, "w");
	struct conf_diff d;

	cr_assert_not_null(f);
	conf_diff_print(f, ja, jb, &d);
	fclose(f);
	json_decref(ja);
	json_decref(jb);
	return d;
}

static char *replace(const char *s, const char *from, const char *to)
{
	static char buf[4096];
	const char *at = strstr(s, from);

	cr_assert_not_null(at, "'%s' is in the base config", from);
	snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
	return buf;
}

Test(diff, the_same_file_changes_nothing, .timeout = 10)
{
	struct conf_diff d = diff(BASE, BASE);

	cr_assert_eq(d.changes, 0, "%s", out);
	cr_assert_str_eq(out, "");
}

Test(diff, one_line_per_change_named_by_path, .timeout = 10)
{
	char next[4096];

	snprintf(next, sizeof next, "%s", replace(BASE, "max_wait_ms: 250", "max_wait_ms: 1s"));
	snprintf(next, sizeof next, "%s", replace(next, "max_inflight: 4", "max_inflight: 6"));
	strcat(next, "  newco: { keys: [ { sha256: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" } ] }\n");
	struct conf_diff d = diff(BASE, next);

	cr_assert_eq(d.changes, 3, "%s", out);
	cr_assert_eq(d.restart, 0, "%s", out);
	cr_assert_not_null(strstr(out, "~ classes.interactive.max_wait_ms: 250 -> 1000\n"), "%s", out);
	cr_assert_not_null(strstr(out, "~ pools.spot.backends[\"127.0.0.1:9002\"].max_inflight: 4 -> 6\n"), "%s", out);
	cr_assert_not_null(strstr(out, "+ tenants.newco: {\"burst\":1.0,\"default_class\":\"standard\","
				       "\"keys\":[\"aaaaaaaaaaaa\"],"), "%s", out);

	/* The other way round, a tenant and a backend go. */
	snprintf(next, sizeof next, "%s",
		 replace(BASE, "{ address: 127.0.0.1:9002, max_inflight: 4 }",
			 "{ address: 127.0.0.1:9003, max_inflight: 4 }"));
	d = diff(BASE, next);
	cr_assert_eq(d.changes, 2, "%s", out);
	cr_assert_not_null(strstr(out, "- pools.spot.backends[\"127.0.0.1:9002\"]: {\"max_inflight\":4}\n"), "%s", out);
	cr_assert_not_null(strstr(out, "+ pools.spot.backends[\"127.0.0.1:9003\"]: {\"max_inflight\":4}\n"), "%s", out);
}

Test(diff, a_rotated_credential_shows_without_its_value, .timeout = 10)
{
	json_t *a = dump(BASE);
	setenv("SLUICE_TEST_DIFF_BEARER", "sk-upstream-rotated", 1);
	struct conf_diag diag = { 0 };
	struct conf *c = NULL;
	cr_assert_eq(conf_parse("t.yaml", BASE, strlen(BASE), &c, &diag), 0);
	json_t *b = conf_dump(c);
	FILE *f = fmemopen(out, sizeof out, "w");
	struct conf_diff d;

	conf_diff_print(f, a, b, &d);
	fclose(f);
	cr_assert_eq(d.changes, 1, "%s", out);
	cr_assert(strncmp(out, "~ pools.gold.upstream_auth.bearer: \"sha256:", 43) == 0, "%s", out);
	cr_assert_null(strstr(out, "rotated"), "%s", out);
	json_decref(a);
	json_decref(b);
	conf_destroy(c);
}

Test(diff, what_a_reload_refuses_is_flagged, .timeout = 10)
{
	char next[4096];

	snprintf(next, sizeof next, "%s", replace(BASE, "listen: 127.0.0.1:0", "listen: 127.0.0.1:8080"));
	struct conf_diff d = diff(BASE, next);
	cr_assert_eq(d.changes, 1, "%s", out);
	cr_assert_eq(d.restart, 1, "%s", out);
	cr_assert_str_eq(out, "~ listen: \"127.0.0.1:0\" -> \"127.0.0.1:8080\"  (needs a restart)\n");

	snprintf(next, sizeof next, "%s",
		 replace(BASE, "  standard: { pools: [spot] }\n",
			 "  standard: { pools: [spot] }\n  opportunistic: { pools: [spot] }\n"));
	d = diff(BASE, next);
	cr_assert_eq(d.restart, 1, "%s", out);
	cr_assert(strncmp(out, "+ classes.opportunistic: {", 26) == 0, "%s", out);
	cr_assert_not_null(strstr(out, "}  (needs a restart)\n"), "%s", out);

	/* A change inside a class is not a class added. */
	snprintf(next, sizeof next, "%s", replace(BASE, "standard: { pools: [spot] }",
						     "standard: { pools: [spot], max_queue: 9 }"));
	d = diff(BASE, next);
	cr_assert_eq(d.restart, 0, "%s", out);
	cr_assert_str_eq(out, "~ classes.standard.max_queue: 1024 -> 9\n");
}
