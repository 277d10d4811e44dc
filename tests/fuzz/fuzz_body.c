/*
 * fuzz_body.c - libFuzzer target for the request body scan (openai.c over
 * jscan.c), checked against jansson, the parser it replaced.
 *
 * For every input: the scan fed whole and fed in pieces (sizes drawn from
 * the input's first byte, one byte at a time included) must agree exactly;
 * the body is valid for the scan exactly when jansson loads it as an
 * object; and then every field admission reads (model, service_tier,
 * max_tokens, n, stream, the prompt's text bytes, token ids and messages)
 * must be what the jansson document says.  Any difference aborts.
 *
 * One known difference is left out of the comparison: jansson's reader
 * skips raw NUL bytes (outside and inside strings), so it loads "1\0}" as
 * "1}"; JSON does not allow them and the scan calls such a body invalid.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/openai.h"

static void scan(const uint8_t *data, size_t len, size_t piece, struct gw_openai_body *out)
{
	static struct gw_openai_scan sc;
	gw_openai_scan_init(&sc);
	for (size_t off = 0; off < len; off += piece)
		gw_openai_scan_feed(&sc, (const char *)data + off, len - off < piece ? len - off : piece);
	gw_openai_scan_finish(&sc, out);
}

static int64_t whole(json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
}

/* Text bytes and token ids of a prompt or input value. */
static void prompt_of(json_t *p, uint64_t *bytes, uint64_t *ids)
{
	if (json_is_string(p)) {
		*bytes += json_string_length(p);
		return;
	}
	size_t i, j;
	json_t *item, *id;
	json_array_foreach(p, i, item) {
		if (json_is_string(item))
			*bytes += json_string_length(item);
		else if (json_is_integer(item))
			(*ids)++;
		json_array_foreach(item, j, id)
			*ids += json_is_integer(id);
	}
}

static void messages_of(json_t *msgs, uint64_t *bytes, uint32_t *count)
{
	size_t i, j;
	json_t *m, *part;
	json_array_foreach(msgs, i, m) {
		if (!json_is_object(m))
			continue;
		(*count)++;
		json_t *content = json_object_get(m, "content");
		if (json_is_string(content))
			*bytes += json_string_length(content);
		json_array_foreach(content, j, part) {
			json_t *text = json_is_object(part) ? json_object_get(part, "text") : NULL;
			if (json_is_string(text))
				*bytes += json_string_length(text);
		}
	}
}

static void expect(json_t *root, struct gw_openai_body *want)
{
	memset(want, 0, sizeof(*want));
	want->valid = true;
	const char *model = json_string_value(json_object_get(root, "model"));
	if (model != NULL && json_string_length(json_object_get(root, "model")) < GW_OPENAI_MODEL_MAX)
		want->model_len = json_string_length(json_object_get(root, "model"));
	else if (model != NULL)
		want->model_long = true;
	const char *tier = json_string_value(json_object_get(root, "service_tier"));
	if (tier != NULL && json_string_length(json_object_get(root, "service_tier")) < GW_OPENAI_TIER_MAX)
		want->tier_len = json_string_length(json_object_get(root, "service_tier"));
	int64_t mct = whole(json_object_get(root, "max_completion_tokens"));
	want->max_tokens = mct >= 0 ? mct : whole(json_object_get(root, "max_tokens"));
	want->n = whole(json_object_get(root, "n"));
	json_t *stream = json_object_get(root, "stream");
	want->stream = json_is_true(stream) ? 1 : json_is_false(stream) ? 0 : -1;
	prompt_of(json_object_get(root, "prompt"), &want->text_bytes, &want->token_ids);
	prompt_of(json_object_get(root, "input"), &want->text_bytes, &want->token_ids);
	messages_of(json_object_get(root, "messages"), &want->text_bytes, &want->messages);
	(void)model;
	(void)tier;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct gw_openai_body whole_body, pieces;
	size_t piece = len > 0 ? (size_t)data[0] % 17 + 1 : 1;
	scan(data, len, len > 0 ? len : 1, &whole_body);
	scan(data, len, piece, &pieces);
	if (memcmp(&whole_body, &pieces, sizeof(pieces)) != 0)
		abort();	/* the split changed the answer */

	if (memchr(data, 0, len) != NULL)
		return 0;
	json_t *root = json_loadb((const char *)data, len, JSON_DECODE_ANY, NULL);
	bool object = json_is_object(root);
	if (whole_body.valid != object)
		abort();	/* validity differs from jansson's */
	if (object) {
		struct gw_openai_body want;
		expect(root, &want);
		json_t *m = json_object_get(root, "model"), *t = json_object_get(root, "service_tier");
		if (whole_body.model_len != want.model_len || whole_body.model_long != want.model_long ||
		    (want.model_len && memcmp(whole_body.model, json_string_value(m), want.model_len) != 0) ||
		    whole_body.tier_len != want.tier_len ||
		    (want.tier_len && memcmp(whole_body.tier, json_string_value(t), want.tier_len) != 0) ||
		    whole_body.max_tokens != want.max_tokens || whole_body.n != want.n ||
		    whole_body.stream != want.stream || whole_body.text_bytes != want.text_bytes ||
		    whole_body.token_ids != want.token_ids || whole_body.messages != want.messages)
			abort();
	}
	json_decref(root);
	return 0;
}
