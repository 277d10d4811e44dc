/*
 * fuzz_promtext.c - libFuzzer target for the reader of vLLM's /metrics
 * (backends/promtext.c): any bytes, read from an exact-size heap copy so
 * that ASan sees a read past the end; a result must be finite and within
 * the gauges' domains.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/promtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *p = malloc(size ? size : 1);
	if (p == NULL)
		return 0;
	memcpy(p, data, size);
	struct backend_vllm_load l;
	if (backend_promtext_vllm(p, size, &l) == 0) {
		if (!isfinite(l.running) || !isfinite(l.waiting) || l.running < 0 || l.waiting < 0 ||
		    !(l.kv_usage == -1 || (l.kv_usage >= 0 && l.kv_usage <= 1)))
			abort();
	}
	free(p);
	return 0;
}
