/*
 * value.c - scalar values: sizes, durations, counts, real numbers, booleans,
 * strings, class names and entity names, each with its bounds.
 *
 * An operator's file is read by people first, so values may carry units:
 * sizes in decimal or binary multiples ("100KB", "64MiB"), durations in ms,
 * s, m or h ("250ms", "30s").  Every value is checked against bounds chosen
 * so that no setting can overflow arithmetic elsewhere or turn every request
 * away; those bounds live with the schema, in the tables and calls that read
 * each key.
 *
 * Invariant: a reader writes its output only when the value is present and
 * valid.  The schema stores defaults first, so an absent key keeps its
 * default, and a bad one keeps it too while the error is reported (the
 * snapshot is discarded anyway, but later checks see a sane value and add
 * no noise of their own).
 *
 * The table walker at the end reads sections that are only named scalars,
 * so that each such section is data (a key, a default, bounds) instead of a
 * chain of calls.
 */
#include "conf/value.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

bool conf__scan_u64(const char *s, size_t len, size_t *pos, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = *pos;

	if (i >= len || s[i] < '0' || s[i] > '9')
		return false;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*pos = i;
	*out = v;
	return true;
}

struct suffix {
	const char *name;
	uint64_t mult;
};

/* Both decimal and binary units are common in operators' files; each means
 * what it says, and case is not significant ("64mib" is not ambiguous). */
static const struct suffix size_units[] = {
	{ "", 1 }, { "B", 1 },
	{ "KB", 1000ull }, { "MB", 1000ull * 1000 },
	{ "GB", 1000ull * 1000 * 1000 }, { "TB", 1000ull * 1000 * 1000 * 1000 },
	{ "KiB", 1ull << 10 }, { "MiB", 1ull << 20 }, { "GiB", 1ull << 30 },
	{ "TiB", 1ull << 40 },
	{ NULL, 0 },
};

static const struct suffix time_units[] = {
	{ "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 },
	{ "h", 3600 * 1000 },
	{ NULL, 0 },
};

static const struct suffix plain_units[] = {
	{ "", 1 },
	{ NULL, 0 },
};

/* The multiplier of the suffix s[0..len) (after any spaces) in `unit`, or 0
 * when the unit has no such suffix. */
static uint64_t suffix_mult(enum conf__unit unit, const char *s, size_t len)
{
	static const struct suffix *const units[] = {
		[CONF__UNIT_NONE] = plain_units,
		[CONF__UNIT_BYTES] = size_units,
		[CONF__UNIT_MS] = time_units,
	};
	const struct suffix *u;

	while (len && *s == ' ') {
		s++;
		len--;
	}
	for (u = units[unit]; u->name; u++)
		if (strlen(u->name) == len && strncasecmp(u->name, s, len) == 0)
			return u->mult;
	return 0;
}

/* A duration under this, written without a unit, gets a warning. */
#define SHORT_MS_WARN 50

/* A bound as the operator would write it: in the unit of the value they
 * wrote (`1000000h` is answered "at most 8784h", `50ms` "at least 100ms"),
 * when the bound is a whole number of that unit; else in the base unit. */
static const char *bound_text(struct conf__loader *l, uint64_t bound, const char *sfx, size_t sfxlen,
			      uint64_t mult, enum conf__unit unit)
{
	char *b = conf__diags_scratch(&l->diags);

	if (sfxlen == 0)
		snprintf(b, CONF__SHOW_LEN, "%" PRIu64, bound);
	else if (bound % mult == 0)
		snprintf(b, CONF__SHOW_LEN, "%" PRIu64 "%.*s", bound / mult, (int)sfxlen, sfx);
	else
		snprintf(b, CONF__SHOW_LEN, "%" PRIu64 "%s", bound, unit == CONF__UNIT_MS ? "ms" : "B");
	return b;
}

/* Check v against [min, max]; report and fail when it is outside.  sfx is
 * the unit the value was written with (may be empty), mult its size. */
static bool uint_bounds(struct conf__loader *l, const struct conf__field *f, const char *ctx,
			const yaml_node_t *n, uint64_t v, uint64_t min, uint64_t max, const char *sfx,
			size_t sfxlen, uint64_t mult, enum conf__unit unit)
{
	if (v < min) {
		conf__err(l, n, "%s must be at least %s, got '%s'", conf__label(l, f, ctx),
			  bound_text(l, min, sfx, sfxlen, mult, unit), conf__show(l, n));
		return false;
	}
	if (v > max) {
		conf__err(l, n, "%s must be at most %s, got '%s'", conf__label(l, f, ctx),
			  bound_text(l, max, sfx, sfxlen, mult, unit), conf__show(l, n));
		return false;
	}
	return true;
}

bool conf__value_uint(struct conf__loader *l, const struct conf__field *f, const char *ctx,
		      enum conf__unit unit, uint64_t min, uint64_t max, uint64_t *out)
{
	static const char *const what[] = {
		[CONF__UNIT_NONE] = "an integer",
		[CONF__UNIT_BYTES] = "a size in bytes (or e.g. 64MiB, 100KB)",
		[CONF__UNIT_MS] = "a duration in ms (or e.g. 250ms, 30s, 10m)",
	};
	const yaml_node_t *n;
	const char *s;
	size_t len, pos = 0;
	uint64_t v, mult;

	if (!f->key)
		return true;
	if (!(n = conf__want(l, f, ctx, YAML_SCALAR_NODE)))
		return false;
	s = conf__node_text(n);
	len = n->data.scalar.length;
	if (len && s[0] == '-') {
		conf__err(l, n, "%s must not be negative, got '%s'", conf__label(l, f, ctx),
			  conf__show(l, n));
		return false;
	}
	if (!conf__scan_u64(s, len, &pos, &v) || !(mult = suffix_mult(unit, s + pos, len - pos))) {
		conf__err(l, n, "%s: expected %s, got '%s'", conf__label(l, f, ctx), what[unit],
			  conf__show(l, n));
		return false;
	}
	if (v > UINT64_MAX / mult) {
		conf__err(l, n, "%s is too large: '%s'", conf__label(l, f, ctx), conf__show(l, n));
		return false;
	}
	const char *sfx = s + pos;
	size_t sfxlen = len - pos;
	while (sfxlen && *sfx == ' ') {
		sfx++;
		sfxlen--;
	}
	if (!uint_bounds(l, f, ctx, n, v * mult, min, max, sfx, sfxlen, mult, unit))
		return false;
	/* `max_wait_ms: 5` is valid, but 5 ms is rarely meant: most likely
	 * seconds.  Said, not refused; a unit written says it was meant. */
	if (unit == CONF__UNIT_MS && sfxlen == 0 && v > 0 && v < SHORT_MS_WARN) {
		conf__diags_warn(&l->diags, conf__node_line(n),
				 "%s %" PRIu64 " has no unit: %" PRIu64 " ms (write %" PRIu64
				 "ms to silence this, or %" PRIu64 "s)",
				 f->name, v, v, v, v);
	}
	*out = v * mult;
	return true;
}

/* Read s[0..len), a finite number in plain decimal notation, into *out:
 * 0, -EINVAL when it is anything else, or -ENOMEM. */
static int scan_decimal(const char *s, size_t len, double *out)
{
	char *buf, *end;
	bool ok;

	if (len == 0 || strspn(s, "0123456789.eE+-") != len)
		return -EINVAL;
	if (!(buf = strndup(s, len)))
		return -ENOMEM;
	errno = 0;
	*out = strtod(buf, &end);
	ok = end == buf + len && !errno && isfinite(*out);
	free(buf);
	return ok ? 0 : -EINVAL;
}

/* Report v outside [lo, hi] (or (lo, hi]) in the words that fit the bounds. */
static void num_bounds_err(struct conf__loader *l, const struct conf__field *f, const char *ctx,
			   const yaml_node_t *n, double lo, bool lo_open, double hi)
{
	const char *lab = conf__label(l, f, ctx);

	if (isfinite(hi))
		conf__err(l, n, "%s must be %s %g and at most %g, got '%s'", lab,
			  lo_open ? "greater than" : "at least", lo, hi, conf__show(l, n));
	else if (lo_open)
		conf__err(l, n, "%s must be greater than %g, got '%s'", lab, lo, conf__show(l, n));
	else if (lo == 0)
		conf__err(l, n, "%s must not be negative, got '%s'", lab, conf__show(l, n));
	else
		conf__err(l, n, "%s must be at least %g, got '%s'", lab, lo, conf__show(l, n));
}

bool conf__value_num(struct conf__loader *l, const struct conf__field *f, const char *ctx,
		     double lo, bool lo_open, double hi, double *out)
{
	const yaml_node_t *n;
	double v;
	int rc;

	if (!f->key)
		return true;
	if (!(n = conf__want(l, f, ctx, YAML_SCALAR_NODE)))
		return false;
	rc = scan_decimal(conf__node_text(n), n->data.scalar.length, &v);
	if (rc == -ENOMEM) {
		conf__nomem(l);
		return false;
	}
	if (rc) {
		conf__err(l, n, "%s: expected a number, got '%s'", conf__label(l, f, ctx),
			  conf__show(l, n));
		return false;
	}
	if (v < lo || (lo_open && v == lo) || v > hi) {
		num_bounds_err(l, f, ctx, n, lo, lo_open, hi);
		return false;
	}
	*out = v;
	return true;
}

bool conf__value_bool(struct conf__loader *l, const struct conf__field *f, const char *ctx,
		      bool *out)
{
	const yaml_node_t *n;

	if (!f->key)
		return true;
	if (!(n = conf__want(l, f, ctx, YAML_SCALAR_NODE)))
		return false;
	if (conf__node_equals(n, "true"))
		*out = true;
	else if (conf__node_equals(n, "false"))
		*out = false;
	else {
		conf__err(l, n, "%s: expected true or false, got '%s'", conf__label(l, f, ctx),
			  conf__show(l, n));
		return false;
	}
	return true;
}

bool conf__value_str(struct conf__loader *l, const struct conf__field *f, const char *ctx,
		     char **out)
{
	const yaml_node_t *n;

	if (!f->key)
		return true;
	if (!(n = conf__want(l, f, ctx, YAML_SCALAR_NODE)))
		return false;
	if (memchr(conf__node_text(n), '\0', n->data.scalar.length)) {
		conf__err(l, n, "%s contains a NUL character", conf__label(l, f, ctx));
		return false;
	}
	free(*out);
	*out = conf__node_dup(l, n);
	return *out != NULL;
}

bool conf__value_class(struct conf__loader *l, const struct conf__field *f, const char *ctx,
		       enum conf_class *out)
{
	const yaml_node_t *n;

	if (!f->key)
		return true;
	if (!(n = conf__want(l, f, ctx, YAML_SCALAR_NODE)))
		return false;
	if (conf_class_parse(conf__node_text(n), n->data.scalar.length, out) < 0) {
		conf__err(l, n, "%s: unknown class '%s' (expected interactive, standard or opportunistic)",
			  conf__label(l, f, ctx), conf__show(l, n));
		return false;
	}
	return true;
}

bool conf__value_name(struct conf__loader *l, const yaml_node_t *k, const char *what)
{
	size_t len = k->data.scalar.length;

	if (len >= 1 && len <= CONF__NAME_MAX &&
	    strspn(conf__node_text(k),
		   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == len)
		return true;
	conf__err(l, k, "%s name '%s' may use only letters, digits, '_', '-' and '.' (1 to %d of them)",
		  what, conf__show(l, k), CONF__NAME_MAX);
	return false;
}

/* ---- tables of scalars -------------------------------------------------- */

/* Store v in a member of `size` bytes: 4 or 8, as CONF__UINT() checked when
 * the table was compiled.  v is a default or passed the bounds, so it fits. */
static void store_uint(void *p, size_t size, uint64_t v)
{
	if (size == sizeof(uint32_t)) {
		uint32_t v32 = (uint32_t)v;

		memcpy(p, &v32, sizeof v32);
	} else {
		memcpy(p, &v, sizeof v);
	}
}

static uint64_t load_uint(const void *p, size_t size)
{
	if (size == sizeof(uint32_t)) {
		uint32_t v32;

		memcpy(&v32, p, sizeof v32);
		return v32;
	}
	uint64_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

void conf__scalars_init(const struct conf__scalar *t, size_t n, void *base)
{
	size_t i;

	for (i = 0; i < n; i++) {
		void *p = (char *)base + t[i].offset;

		if (t[i].kind == CONF__SCALAR_UINT)
			store_uint(p, t[i].size, t[i].integer.def);
		else if (t[i].kind == CONF__SCALAR_NUM)
			memcpy(p, &t[i].number.def, sizeof(double));
		else if (t[i].kind == CONF__SCALAR_BOOL)
			memcpy(p, &t[i].boolean, sizeof(bool));
	}
}

static void scalar_read(struct conf__loader *l, const struct conf__scalar *s,
			const struct conf__field *f, const char *ctx, void *base)
{
	void *p = (char *)base + s->offset;
	uint64_t v;

	switch (s->kind) {
	case CONF__SCALAR_UINT:
		if (f->key && conf__value_uint(l, f, ctx, s->integer.unit, s->integer.min,
					       s->integer.max, &v))
			store_uint(p, s->size, v);
		break;
	case CONF__SCALAR_NUM:
		conf__value_num(l, f, ctx, s->number.lo, s->number.lo_open, s->number.hi, p);
		break;
	case CONF__SCALAR_BOOL:
		conf__value_bool(l, f, ctx, p);
		break;
	case CONF__SCALAR_OTHER:
		break;
	}
}

void conf__scalars_read(struct conf__loader *l, const yaml_node_t *map, const char *ctx,
			const struct conf__scalar *t, size_t n, void *base,
			struct conf__field *f)
{
	size_t i;

	for (i = 0; i < n; i++)
		f[i] = (struct conf__field){ .name = t[i].name };
	conf__fields(l, map, ctx, f, n);
	for (i = 0; i < n; i++)
		scalar_read(l, &t[i], &f[i], ctx, base);
}

int conf__scalars_dump(const struct conf__scalar *t, size_t n, const void *base, json_t *obj)
{
	for (size_t i = 0; i < n; i++) {
		const void *p = (const char *)base + t[i].offset;
		json_t *v = NULL;

		if (t[i].kind == CONF__SCALAR_UINT) {
			uint64_t u = load_uint(p, t[i].size);

			/* Bounds above INT64_MAX exist (max_queued_bytes); such a
			 * value is shown as a real rather than wrapped. */
			v = u <= INT64_MAX ? json_integer((json_int_t)u) : json_real((double)u);
		} else if (t[i].kind == CONF__SCALAR_NUM) {
			double d;

			memcpy(&d, p, sizeof d);
			v = json_real(d);
		} else if (t[i].kind == CONF__SCALAR_BOOL) {
			bool b;

			memcpy(&b, p, sizeof b);
			v = json_boolean(b);
		} else {
			continue;
		}
		if (json_object_set_new(obj, t[i].name, v) < 0)
			return -ENOMEM;
	}
	return 0;
}
