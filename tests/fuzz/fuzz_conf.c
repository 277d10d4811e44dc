/*
 * fuzz_conf.c - libFuzzer target for the YAML config loader: any file an
 * operator could write must load or be refused with FILE:LINE messages,
 * never crash, hang or leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf *c = NULL;
	struct conf_diag diag = { 0 };
	int rc = conf_parse("fuzz.yaml", (const char *)data, size, &c, &diag);
	if (rc == 0 && c == NULL)
		abort();
	if (rc < 0 && (c != NULL || diag.count == 0))
		abort();	/* a refusal always says why */
	conf_destroy(c);
	return 0;
}
