/*
 * fuzz_conf.c - libFuzzer target for the YAML config loader: any file an
 * operator could write must load or be refused with FILE:LINE messages,
 * never crash, hang or leak.  A file that loads is also dumped as GET /config
 * shows it (conf_dump()) and compared with itself, which must find nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "conf/conf.h"
#include "conf/diff.h"

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
	if (c != NULL) {
		json_t *j = conf_dump(c);
		FILE *devnull = fopen("/dev/null", "w");
		if (j != NULL && devnull != NULL) {
			struct conf_diff d;
			conf_diff_print(devnull, j, j, &d);
			if (d.changes != 0)
				abort();
		}
		if (devnull != NULL)
			fclose(devnull);
		json_decref(j);
	}
	conf_destroy(c);
	return 0;
}
