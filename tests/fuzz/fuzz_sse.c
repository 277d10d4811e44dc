/*
 * fuzz_sse.c - the stream scan that counts content events (gateway/sse.c).
 *
 * The scan sees a response in whatever pieces the upstream reads deliver,
 * so the oracle is the scan itself: the same bytes fed whole, one byte at a
 * time, and split where the input's first byte says must count the same
 * events, and the counts returned per piece must add up to the total.
 */
#include <stdint.h>
#include <stdlib.h>

#include "gateway/sse.h"

static uint64_t feed(const uint8_t *data, size_t len, size_t step)
{
	struct gw_sse s;
	uint64_t sum = 0;
	gw_sse_init(&s);
	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;
		sum += gw_sse_feed(&s, (const char *)data + off, n);
	}
	if (sum != s.events)
		abort();	/* the per-piece counts disagree with the total */
	return s.events;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (len == 0)
		return 0;
	size_t split = (size_t)data[0] % 17 + 1;
	uint64_t whole = feed(data + 1, len - 1, len);
	if (feed(data + 1, len - 1, 1) != whole || feed(data + 1, len - 1, split) != whole)
		abort();	/* the count depends on where the reads cut the stream */
	return 0;
}
