/*
 * preempt.c - the `preemption` key of a class; see preempt.h.
 *
 * A mapping of two scalars read through a table like every other such
 * section.  The one rule beyond the table is which class may carry it.
 */
#include <jansson.h>
#include <stdio.h>

#include "conf/preempt.h"
#include "conf/value.h"

static const struct conf__scalar preemption_keys[] = {
	CONF__BOOL(struct conf_preemption, enabled, false),
	CONF__NUM(struct conf_preemption, max_per_s, CONF_PREEMPT_RATE_DEFAULT, 0, true, CONF_PREEMPT_RATE_MAX),
};

#define NKEYS (sizeof(preemption_keys) / sizeof(preemption_keys[0]))

void conf__preemption_read(struct conf__loader *l, struct conf_class_cfg *cc, enum conf_class cls,
			   const struct conf__field *f, const char *pctx)
{
	struct conf__field fields[NKEYS];
	char ctx[64];
	const yaml_node_t *m;

	conf__scalars_init(preemption_keys, NKEYS, &cc->preemption);
	if (!(m = conf__section(l, f, pctx, YAML_MAPPING_NODE)))
		return;
	/* Interactive work must never be preempted, and standard work is
	 * promised the same: only batch can be ended early. */
	if (cls != CONF_CLASS_OPPORTUNISTIC) {
		conf__err(l, f->key, "%s may not set preemption: only opportunistic work can be preempted", pctx);
		return;
	}
	snprintf(ctx, sizeof ctx, "preemption of %s", pctx);
	cc->preemption.line = (int)conf__node_line(f->key);
	conf__scalars_read(l, m, ctx, preemption_keys, NKEYS, &cc->preemption, fields);
}

int conf__preemption_dump(const struct conf_class_cfg *cc, enum conf_class cls, json_t *obj)
{
	if (cls != CONF_CLASS_OPPORTUNISTIC)
		return 0;
	json_t *o = json_object();
	if (o == NULL || json_object_set_new(obj, "preemption", o) < 0)
		return -1;
	return conf__scalars_dump(preemption_keys, NKEYS, &cc->preemption, o);
}
