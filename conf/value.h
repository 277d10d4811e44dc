/*
 * value.h - scalar values and their bounds (internal to conf/).
 *
 * Each conf__value_*() reads one field of a mapping (see conf__fields()):
 * an absent field leaves *out alone (its default) and succeeds; a present
 * one is parsed, checked against its bounds, and stored in *out only when
 * valid.  Any other outcome is reported at the value's line and returns
 * false with *out unchanged.
 *
 * Sections that are nothing but named scalars with defaults and bounds are
 * described by a table of struct conf__scalar instead of code: one table
 * gives each key's name, where it is stored, its kind, default and bounds,
 * and conf__scalars_init() / conf__scalars_read() walk it.
 */
#ifndef SLUICE_CONF_VALUE_H
#define SLUICE_CONF_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "conf/node.h"

/* Pool and tenant names end up in metric labels, JSON bodies and response
 * headers; keeping them to a safe alphabet means no layer has to escape. */
#define CONF__NAME_MAX 64

/* Longest duration accepted (a year).  It keeps `now + timeout` far from
 * overflow anywhere it is computed, and no real timeout comes close. */
#define CONF__MS_MAX (366ull * 24 * 3600 * 1000)

/* What an integer counts, and so which suffixes it accepts. */
enum conf__unit {
	CONF__UNIT_NONE,		/* a bare integer */
	CONF__UNIT_BYTES,		/* B, KB, MB, GB, TB, KiB, MiB, GiB, TiB (any case) */
	CONF__UNIT_MS,			/* ms, s, m, h; a bare integer is ms */
};

/*
 * Scan the decimal digits at s[*pos..len) into *out and advance *pos past
 * them.  False, with *pos and *out unchanged, when there is no digit there
 * or the number overflows 64 bits.
 */
bool conf__scan_u64(const char *s, size_t len, size_t *pos, uint64_t *out);

/*
 * An integer in `unit`, in [min, max] once the suffix is applied.  A space
 * may separate the number from its suffix ("64 MiB"); a sign may not.
 */
bool conf__value_uint(struct conf__loader *l, const struct conf__field *f, const char *ctx,
		      enum conf__unit unit, uint64_t min, uint64_t max, uint64_t *out);

/*
 * A real number in [lo, hi], or (lo, hi] when lo_open; hi may be INFINITY.
 * Only plain decimal notation: strtod would also take "nan", "inf" and hex
 * floats, none of which an operator means.
 */
bool conf__value_num(struct conf__loader *l, const struct conf__field *f, const char *ctx,
		     double lo, bool lo_open, double hi, double *out);

/* Exactly "true" or "false". */
bool conf__value_bool(struct conf__loader *l, const struct conf__field *f, const char *ctx,
		      bool *out);

/* Any string without a NUL byte.  On success *out, which must be NULL or
 * malloc'd, is freed and replaced by a malloc'd copy the caller owns. */
bool conf__value_str(struct conf__loader *l, const struct conf__field *f, const char *ctx,
		     char **out);

/* A class name, as conf_class_parse() reads it. */
bool conf__value_class(struct conf__loader *l, const struct conf__field *f, const char *ctx,
		       enum conf_class *out);

/*
 * Check that key k, the name of a `what` ("pool", "tenant"), is 1 to
 * CONF__NAME_MAX letters, digits, '_', '-' or '.'; report it otherwise.
 */
bool conf__value_name(struct conf__loader *l, const yaml_node_t *k, const char *what);

/* ---- tables of scalars -------------------------------------------------- */

enum conf__scalar_kind {
	CONF__SCALAR_UINT,		/* uint32_t or uint64_t, read by conf__value_uint() */
	CONF__SCALAR_NUM,		/* double, read by conf__value_num() */
	CONF__SCALAR_BOOL,		/* bool, read by conf__value_bool() */
	CONF__SCALAR_OTHER,		/* a key the caller reads itself */
};

/* One key of a section, stored at `offset` in the section's struct. */
struct conf__scalar {
	const char *name;
	enum conf__scalar_kind kind;
	size_t offset;
	size_t size;			/* of the member: 4 or 8 for UINT */
	union {
		struct {
			enum conf__unit unit;
			uint64_t def, min, max;
		} integer;		/* UINT */
		struct {
			double def, lo, hi;
			bool lo_open;
		} number;		/* NUM */
		bool boolean;		/* BOOL: the default */
	};
};

/*
 * Table entries for member `m` of struct type `T`, whose key has the
 * member's name.  Each refuses to compile (a negative array size) when the
 * member's type does not fit the kind, so a table cannot write a double
 * into an integer.
 */
#define CONF__CHECK_(cond) (0 * sizeof(char[(cond) ? 1 : -1]))
#define CONF__MEMBER_(T, m) (((T *)0)->m)
#define CONF__UINT(T, m, unit_, def_, min_, max_) { \
	.name = #m, .kind = CONF__SCALAR_UINT, \
	.offset = offsetof(T, m) + CONF__CHECK_(sizeof CONF__MEMBER_(T, m) == 4 || \
						sizeof CONF__MEMBER_(T, m) == 8), \
	.size = sizeof CONF__MEMBER_(T, m), \
	.integer = { (unit_), (def_), (min_), (max_) } }
#define CONF__NUM(T, m, def_, lo_, lo_open_, hi_) { \
	.name = #m, .kind = CONF__SCALAR_NUM, \
	.offset = offsetof(T, m) + CONF__CHECK_(_Generic(CONF__MEMBER_(T, m), double: 1, default: 0)), \
	.size = sizeof CONF__MEMBER_(T, m), \
	.number = { (def_), (lo_), (hi_), (lo_open_) } }
#define CONF__BOOL(T, m, def_) { \
	.name = #m, .kind = CONF__SCALAR_BOOL, \
	.offset = offsetof(T, m) + CONF__CHECK_(_Generic(CONF__MEMBER_(T, m), bool: 1, default: 0)), \
	.size = sizeof CONF__MEMBER_(T, m), \
	.boolean = (def_) }
#define CONF__OTHER(name_) { .name = (name_), .kind = CONF__SCALAR_OTHER }

/* Store every default of table t[0..n) into the struct at `base`. */
void conf__scalars_init(const struct conf__scalar *t, size_t n, void *base);

/*
 * Read mapping `map` against table t[0..n): match its keys (unknown keys are
 * reported with `ctx`), then read each scalar in table order into the struct
 * at `base`, leaving the default where a key is absent or invalid.  f must
 * have room for n fields; it returns what each key matched, for the caller
 * to read the OTHER entries.
 */
void conf__scalars_read(struct conf__loader *l, const yaml_node_t *map, const char *ctx,
			const struct conf__scalar *t, size_t n, void *base,
			struct conf__field *f);

/*
 * The other way round, for GET /config and `sluice -t --diff`: add each
 * UINT, NUM and BOOL scalar of table t[0..n) that the struct at `base`
 * holds to the JSON object `obj`, under its key, as a number of the
 * table's unit (ms, bytes) or a boolean.  OTHER entries are the caller's.
 * Returns 0, or -ENOMEM when jansson could not allocate.
 */
struct json_t;
int conf__scalars_dump(const struct conf__scalar *t, size_t n, const void *base, struct json_t *obj);

#endif
