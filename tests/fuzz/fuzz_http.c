/*
 * fuzz_http.c - libFuzzer target for the request/response parsing layer.
 *
 * Feeds the input as a request stream and as a response stream, in pieces
 * whose sizes come from the input itself, exactly as conn.c and exchange.c
 * drive the parser (HEAD, DONE and next message; stop at an error).  Under
 * ASan/UBSan any out-of-bounds access, leak or undefined behaviour aborts.
 * Also checks the invariant that the parser never reports consuming more
 * than it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http.h"

static const struct gw_http_limits limits = {
	.max_body_bytes = 4096,
	.max_header_bytes = 2048,
	.max_headers = 32,
};

static int sink(void *ctx, const char *at, size_t len)
{
	(void)at;
	*(size_t *)ctx += len;
	return 0;
}

static void drive(llhttp_type_t type, const uint8_t *data, size_t size, size_t step)
{
	struct gw_http h;
	size_t streamed = 0;
	gw_http_init(&h, type, &limits, type == HTTP_RESPONSE ? sink : NULL, &streamed);
	size_t pos = 0;
	while (pos < size) {
		size_t n = size - pos < step ? size - pos : step;
		size_t off = 0;
		for (;;) {
			size_t used;
			enum gw_http_event ev = gw_http_parse(&h, (const char *)data + pos + off, n - off, &used);
			if (used > n - off)
				abort();
			off += used;
			if (ev == GW_HTTP_MORE)
				break;
			if (ev == GW_HTTP_ERROR)
				goto out;
			if (ev == GW_HTTP_DONE) {
				/* touch what a caller reads */
				for (uint32_t i = 0; i < h.msg.nfields; i++)
					(void)gw_msg_field_is_hop(&h.msg, &h.msg.fields[i]);
				gw_http_next(&h, (pos & 1) != 0);
			}
		}
		pos += n;
	}
	(void)gw_http_eof(&h);
out:
	gw_http_finish(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)data[0] % 17 + 1;
	drive(HTTP_REQUEST, data + 1, size - 1, step);
	drive(HTTP_RESPONSE, data + 1, size - 1, step);
	drive(HTTP_REQUEST, data + 1, size - 1, size);
	return 0;
}
