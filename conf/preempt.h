/*
 * preempt.h - the `preemption` key of a class (internal to conf/).
 *
 *   classes:
 *     opportunistic: { ..., preemption: { enabled: true, max_per_s: 10 } }
 *
 * It says that the class's work may be ended early so that an interactive
 * request meets its deadline (gateway/preempt.h carries it out).  Only the
 * opportunistic class may set it: interactive and standard work is never
 * preempted, and a key that promised otherwise would be a lie.
 */
#ifndef SLUICE_CONF_PREEMPT_H
#define SLUICE_CONF_PREEMPT_H

#include "conf/conf.h"
#include "conf/node.h"

/* Default and bounds of max_per_s: more than a thousand preemptions a
 * second would be a config error, not a policy. */
#define CONF_PREEMPT_RATE_DEFAULT 10.0
#define CONF_PREEMPT_RATE_MAX 1000.0

/*
 * Read field f (the class's `preemption`, possibly absent) of class cls
 * into cc->preemption, reporting problems against ctx ("class 'x'").
 * Absent: disabled.  Set on a class other than opportunistic: reported.
 */
void conf__preemption_read(struct conf__loader *l, struct conf_class_cfg *cc, enum conf_class cls,
			   const struct conf__field *f, const char *ctx);

/* Set obj["preemption"] to cc's keys, every default filled in, when class
 * cls is one that may set it (/config).  0, or -1 when out of memory. */
int conf__preemption_dump(const struct conf_class_cfg *cc, enum conf_class cls, struct json_t *obj);

#endif
