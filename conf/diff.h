/*
 * diff.h - what a reload would change: two config dumps compared.
 */
#ifndef SLUICE_CONF_DIFF_H
#define SLUICE_CONF_DIFF_H

#include <stddef.h>
#include <stdio.h>

struct json_t;

struct conf_diff {
	size_t changes;			/* lines printed */
	size_t restart;			/* of which a reload refuses (gateway/server.c) */
};

/*
 * Print to `out` one line per difference between `running` and `next`, two
 * objects from conf_dump() (the first usually fetched from GET /config):
 *
 *   + tenants.newco: {"burst":10.0,...}         only in next
 *   - pools.elastic.backends["127.0.0.1:9002"]: {"max_inflight":8}
 *   ~ classes.interactive.max_wait_ms: 2000 -> 5000
 *
 * Objects are compared key by key (named things are keyed by name, so a
 * new tenant is one line); any other value as a whole.  A change a reload
 * cannot apply (listen, admin_listen, a class added or removed,
 * metrics.tenant_histograms) ends with "(needs a restart)" and is counted
 * in d->restart.  Fills *d; prints nothing when the two are equal.
 */
void conf_diff_print(FILE *out, const struct json_t *running, const struct json_t *next, struct conf_diff *d);

#endif
