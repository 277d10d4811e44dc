/*
 * diff.c - what a reload would change; see diff.h.
 *
 * Both sides are dumps made by the same code (conf_dump()), one of them on
 * the other side of an HTTP request, so equal settings are equal JSON: a
 * real read from "0.5" prints and parses back to the same double.  The walk
 * goes through the running side's keys in its order (the dump's, which is
 * the file's section order), then the keys only the new side has.
 *
 * The changes a reload refuses are listed here by path.  They mirror
 * incompatible() in gateway/server.c, which refuses them at SIGHUP; the
 * integration test for --diff checks that the two agree.
 */
#include "conf/diff.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define PATH_MAX_LEN 512

/* Paths whose change a reload refuses, and the one whose entries may be
 * changed but not added or removed. */
static const char *const restart_paths[] = { "listen", "admin_listen", "metrics.tenant_histograms" };
static const char restart_members_of[] = "classes";

static bool plain_key(const char *k)
{
	return k[0] != '\0' && strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
					   strlen(k);
}

/* path + "." + k, or path + "[\"k\"]" for a key with dots or colons. */
static void path_join(char *out, size_t len, const char *path, const char *k)
{
	if (plain_key(k))
		snprintf(out, len, "%s%s%s", path, path[0] ? "." : "", k);
	else
		snprintf(out, len, "%s[\"%s\"]", path, k);
}

static void show(FILE *out, char sign, const char *path, const json_t *a, const json_t *b, bool restart)
{
	char *as = a ? json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
	char *bs = b ? json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;

	if (a != NULL && b != NULL)
		fprintf(out, "%c %s: %s -> %s", sign, path, as ? as : "?", bs ? bs : "?");
	else
		fprintf(out, "%c %s: %s", sign, path, as ? as : bs ? bs : "?");
	fprintf(out, "%s\n", restart ? "  (needs a restart)" : "");
	free(as);
	free(bs);
}

static bool restart_change(const char *path)
{
	for (size_t i = 0; i < sizeof restart_paths / sizeof restart_paths[0]; i++)
		if (strcmp(path, restart_paths[i]) == 0)
			return true;
	return false;
}

static void walk(FILE *out, const char *path, const json_t *a, const json_t *b, struct conf_diff *d)
{
	if (json_is_object(a) && json_is_object(b)) {
		bool members_restart = strcmp(path, restart_members_of) == 0;
		const char *k;
		json_t *av, *bv;
		char sub[PATH_MAX_LEN];

		json_object_foreach((json_t *)a, k, av) {
			path_join(sub, sizeof sub, path, k);
			if ((bv = json_object_get(b, k)) != NULL) {
				walk(out, sub, av, bv, d);
				continue;
			}
			show(out, '-', sub, av, NULL, members_restart);
			d->changes++;
			d->restart += members_restart;
		}
		json_object_foreach((json_t *)b, k, bv) {
			if (json_object_get(a, k) != NULL)
				continue;
			path_join(sub, sizeof sub, path, k);
			show(out, '+', sub, NULL, bv, members_restart);
			d->changes++;
			d->restart += members_restart;
		}
		return;
	}
	if (json_equal((json_t *)a, (json_t *)b))
		return;
	bool restart = restart_change(path);
	show(out, '~', path, a, b, restart);
	d->changes++;
	d->restart += restart;
}

void conf_diff_print(FILE *out, const json_t *running, const json_t *next, struct conf_diff *d)
{
	memset(d, 0, sizeof(*d));
	walk(out, "", running, next, d);
}
