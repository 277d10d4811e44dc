/*
 * schema.h - what a sluice config file means (internal to conf/).
 */
#ifndef SLUICE_CONF_SCHEMA_H
#define SLUICE_CONF_SCHEMA_H

#include "conf/node.h"

/*
 * Fill l->c, a zeroed snapshot, from the document whose root node is `root`:
 * every default first, then each section of the file.  Problems are reported
 * through l->diags; whatever was filled in is owned by l->c either way, and
 * l->c is complete and valid only when nothing was reported.  Call after
 * conf__dups_check().
 */
void conf__schema_read(struct conf__loader *l, const yaml_node_t *root);

/* The snapshot as JSON laid out like the file (conf_dump()); NULL when
 * out of memory. */
struct json_t;
struct json_t *conf__schema_dump(const struct conf *c);

/* The order of conf.models: bytes, then length (conf.c). */
int conf__model_cmp(const char *a, size_t alen, const char *b, size_t blen);

#endif
