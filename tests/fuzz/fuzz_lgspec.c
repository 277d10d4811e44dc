/*
 * fuzz_lgspec.c - libFuzzer target for loadgen's stream spec
 * (bench/loadgen/spec.c: "name=chat,rate=20,max_tokens=64-192,..."): any
 * bytes up to the first NUL.  A spec that parses must be within the
 * fields' domains; one that does not must say why and own nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench/loadgen/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *spec = malloc(size + 1);
	if (spec == NULL)
		return 0;
	memcpy(spec, data, size);
	spec[size] = '\0';
	struct lg_stream_conf c;
	char err[200] = "";
	if (lg_stream_conf_parse(&c, spec, err, sizeof(err)) == 0) {
		if ((c.rate > 0) == (c.concurrency > 0) || c.max_tokens < 1 || c.max_tokens > LG_TOKENS_MAX ||
		    c.prompt_tokens < 1 || c.prompt_tokens > LG_TOKENS_MAX ||
		    (c.max_tokens_hi != 0 && (c.max_tokens_hi < c.max_tokens || c.max_tokens_hi > LG_TOKENS_MAX)))
			abort();
		lg_stream_conf_finish(&c);
	} else if (err[0] == '\0' || c.spec != NULL) {
		abort();
	}
	free(spec);
	return 0;
}
