/* test_buf.c - the byte buffer: escaping for the exposition format and the
 * access log, and the fast number appenders the request path uses. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "gateway/buf.h"

static char *take_str(struct gw_buf *b)
{
	gw_buf_append(b, "", 1);
	return b->data;
}

Test(buf, prometheus_label_values_are_escaped, .timeout = 5)
{
	struct gw_buf b = GW_BUF_INIT;
	gw_buf_append_label(&b, "a\"b\\c\nd");
	cr_assert_str_eq(take_str(&b), "a\\\"b\\\\c\\nd");
	gw_buf_finish(&b);
	gw_buf_append_label(&b, "127.0.0.1:8000");
	cr_assert_str_eq(take_str(&b), "127.0.0.1:8000", "ordinary values pass unchanged");
	gw_buf_finish(&b);
}

Test(buf, json_strings_round_trip_through_a_parser, .timeout = 5)
{
	static const char nasty[] = "/v1/\"x\"\\\x01\t\n\x7f\xc3\xa9 end";
	struct gw_buf b = GW_BUF_INIT;
	gw_buf_appends(&b, "{\"p\":");
	gw_buf_append_json(&b, nasty, sizeof(nasty) - 1);
	gw_buf_appends(&b, "}");
	json_error_t err;
	json_t *v = json_loadb(b.data, b.len, 0, &err);
	cr_assert_not_null(v, "not JSON: %.*s (%s)", (int)b.len, b.data, err.text);
	const char *back = json_string_value(json_object_get(v, "p"));
	/* ASCII comes back as it was; every other byte as its own code point */
	cr_assert(strncmp(back, "/v1/\"x\"\\\x01\t\n\x7f", 12) == 0);
	cr_assert(strstr(back, " end") != NULL);
	json_decref(v);
	gw_buf_finish(&b);
}

Test(buf, number_appenders, .timeout = 5)
{
	struct gw_buf b = GW_BUF_INIT;
	gw_buf_append_u64(&b, 0);
	gw_buf_append(&b, " ", 1);
	gw_buf_append_u64(&b, UINT64_MAX);
	gw_buf_append(&b, " ", 1);
	gw_buf_append_hex(&b, 0x1f2e);
	gw_buf_append(&b, " ", 1);
	gw_buf_append_ms(&b, 1234567890);	/* ns */
	gw_buf_append(&b, " ", 1);
	gw_buf_append_ms(&b, 999);
	cr_assert_str_eq(take_str(&b), "0 18446744073709551615 1f2e 1234.567 0.000");
	gw_buf_finish(&b);
}
