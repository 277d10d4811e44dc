/*
 * tenant.h - the tenants section and the anonymous tenant (internal to
 * conf/).
 */
#ifndef SLUICE_CONF_TENANT_H
#define SLUICE_CONF_TENANT_H

#include "conf/node.h"

/*
 * Read the optional `tenants` section (field sec of the top level) into
 * l->c->tenants, which it allocates and l->c owns.  Classes must have been
 * read already: a tenant's default class must be defined.  An API key listed
 * twice, in one tenant or across two, is reported here too.
 */
void conf__tenants_read(struct conf__loader *l, const struct conf__field *sec,
			const struct conf__field *anon);

/*
 * Read the optional top-level `anonymous_tenant` (field f): the name of a
 * tenant already read by conf__tenants_read().  Sets l->c->anonymous_tenant
 * to a malloc'd copy that l->c owns.
 */
void conf__anonymous_read(struct conf__loader *l, const struct conf__field *f);

/* How a key is named wherever it is shown (diagnostics, /config): the
 * first CONF__KEY_HEX hex digits of its sha256, never more. */
#define CONF__KEY_HEX 12
void conf__key_hex(const uint8_t *sha256, char out[CONF__KEY_HEX + 1]);

#endif
