/*
 * conf.c - from a YAML file to an immutable struct conf: the public entry
 * points.
 *
 * Before anything, ${VAR} references in the text are replaced by the
 * environment's values (env.c), line for line.  Loading is then three
 * steps.  libyaml's document API first turns the whole file
 * into a node tree (here); every node remembers where it started, which is
 * how each later error can name FILE:LINE.  A syntax error stops there, with
 * the parser's own line, and so does a file with no document or with more
 * than one.
 *
 * Second, conf__dups_check() (node.c) looks for duplicate keys in every
 * mapping of the document.  Third, conf__schema_read() (schema.c) walks the
 * tree against the schema, reporting every problem it finds and carrying
 * on, so that one run shows up to CONF_DIAG_MAX problems, sorted by line
 * (diag.c).  Any error at all means the half-built snapshot is destroyed and
 * the caller gets -EINVAL (or -ENOMEM) and the messages; a snapshot that
 * reaches the caller is complete, valid, and never written again.
 *
 * Ownership: the loader and the libyaml document live only for one
 * conf_parse() call.  Every string in the snapshot is copied out of the
 * document, so the snapshot owns all it points to and conf_destroy() frees it.
 */
#include "conf/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <yaml.h>

#include "conf/diag.h"
#include "conf/env.h"
#include "conf/node.h"
#include "conf/schema.h"

/* A config is a few KiB; anything this large is a wrong path. */
#define FILE_MAX_BYTES (16u << 20)

static void syntax_error(struct conf__loader *l, const yaml_parser_t *p, const char *text,
			 size_t len)
{
	size_t line, i;

	if (p->error == YAML_MEMORY_ERROR) {
		conf__nomem(l);
		return;
	}
	if (p->error == YAML_READER_ERROR) {
		/* Reader errors (bad encoding) carry an offset, not a mark. */
		for (i = 0, line = 1; i < p->problem_offset && i < len; i++)
			line += text[i] == '\n';
	} else {
		line = p->problem_mark.line + 1;
	}
	if (p->context)
		conf__diags_add(&l->diags, line, "YAML syntax error: %s (%s at line %zu)",
				p->problem ? p->problem : "unknown problem", p->context,
				p->context_mark.line + 1);
	else
		conf__diags_add(&l->diags, line, "YAML syntax error: %s",
				p->problem ? p->problem : "unknown problem");
}

/*
 * Parse text into *doc.  Returns a negative errno, with nothing to free,
 * when no document could be built; otherwise 0 and a *doc the caller
 * deletes, with any problem (no document, a second one, a syntax error
 * after the first) already reported.
 */
static int doc_load(struct conf__loader *l, const char *text, size_t len, yaml_document_t *doc)
{
	yaml_parser_t parser;
	yaml_document_t extra;

	if (!yaml_parser_initialize(&parser)) {
		conf__nomem(l);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, doc)) {
		syntax_error(l, &parser, text, len);
		yaml_parser_delete(&parser);
		return l->diags.nomem ? -ENOMEM : -EINVAL;
	}
	if (!yaml_document_get_root_node(doc)) {
		conf__diags_add(&l->diags, 1, "the configuration is empty");
	} else if (!yaml_parser_load(&parser, &extra)) {
		syntax_error(l, &parser, text, len);
	} else {
		yaml_node_t *r2 = yaml_document_get_root_node(&extra);

		/* A second document would be silently ignored, which is never
		 * what the person who wrote it meant. */
		if (r2)
			conf__err(l, r2, "only one YAML document is allowed per file");
		yaml_document_delete(&extra);
	}
	yaml_parser_delete(&parser);
	return 0;
}

static int parse_text(struct conf__loader *l, const char *text, size_t len, struct conf **out)
{
	yaml_document_t doc;
	yaml_node_t *root;
	struct conf *c;
	int rc;

	if ((rc = doc_load(l, text, len, &doc)) < 0)
		return rc;
	l->doc = &doc;
	root = yaml_document_get_root_node(&doc);
	c = calloc(1, sizeof *c);
	if (!c || !(c->path = strdup(l->diags.name))) {
		free(c);
		yaml_document_delete(&doc);
		conf__nomem(l);
		return -ENOMEM;
	}
	l->c = c;
	if (root && l->diags.nerr == 0) {
		conf__dups_check(l);
		conf__schema_read(l, root);
	}
	yaml_document_delete(&doc);
	l->doc = NULL;
	free(l->dups);
	l->dups = NULL;
	if (l->diags.nerr) {
		conf_destroy(c);
		return l->diags.nomem ? -ENOMEM : -EINVAL;
	}
	*out = c;
	return 0;
}

int conf_parse(const char *name, const char *text, size_t len,
	       struct conf **out, struct conf_diag *diag)
{
	struct conf__loader l = { .doc = NULL };
	int rc;

	conf__diags_init(&l.diags, name ? name : "<config>", diag);
	*out = NULL;
	if (!text && len) {
		conf__diags_add(&l.diags, 0, "no text to parse");
		rc = -EINVAL;
	} else {
		char *expanded = NULL;
		size_t elen = 0;

		rc = conf__env_expand(&l.diags, text ? text : "", len, &expanded, &elen);
		if (rc == 0 && expanded)
			rc = parse_text(&l, expanded, elen, out);
		else if (rc == 0)
			rc = parse_text(&l, text ? text : "", len, out);
		free(expanded);
	}
	conf__diags_finish(&l.diags);
	return rc;
}

/* The whole file in one malloc'd buffer; 0 or a negative errno. */
static int read_file(const char *path, char **buf, size_t *len)
{
	size_t cap = 0, n = 0;
	char *b = NULL;
	struct stat st;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -errno;
		goto out;
	}
	/* Read until EOF rather than trusting st_size, so a pipe or
	 * /dev/stdin works too. */
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *nb;

			if (cap >= FILE_MAX_BYTES) {
				rc = -EFBIG;
				goto out;
			}
			cap = cap ? cap * 2 : 8192;
			if (!(nb = realloc(b, cap))) {
				rc = -ENOMEM;
				goto out;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
out:
	close(fd);
	if (rc) {
		free(b);
		return rc;
	}
	*buf = b;
	*len = n;
	return 0;
}

int conf_load(const char *path, struct conf **out, struct conf_diag *diag)
{
	struct conf__diags d;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	conf__diags_init(&d, path, diag);
	*out = NULL;
	rc = read_file(path, &buf, &len);
	if (rc) {
		conf__diags_add(&d, 0, "cannot read: %s", strerror(-rc));
		conf__diags_finish(&d);
		return rc;
	}
	rc = conf_parse(path, buf, len, out, diag);
	free(buf);
	return rc;
}

void conf_destroy(struct conf *c)
{
	size_t i, j;

	if (!c)
		return;
	for (i = 0; i < c->npools; i++) {
		struct conf_pool *p = &c->pools[i];

		for (j = 0; j < p->nbackends; j++)
			free(p->backends[j].addr.text);
		free(p->backends);
		free(p->name);
		free(p->gpu_model);
		free(p->mig_profile);
		free(p->discovery.dns_host);
		free(p->health.path);
		for (j = 0; j < p->nmodels; j++)
			free(p->models[j]);
		free(p->models);
		if (p->upstream_bearer != NULL) {
			explicit_bzero(p->upstream_bearer, strlen(p->upstream_bearer));
			free(p->upstream_bearer);
		}
	}
	free(c->pools);
	free(c->models);	/* the names belong to the pools */
	for (i = 0; i < CONF_CLASS_COUNT; i++)
		free(c->classes[i].pools);
	for (i = 0; i < c->ntenants; i++) {
		free(c->tenants[i].name);
		free(c->tenants[i].keys);
	}
	free(c->tenants);
	free(c->anonymous_tenant);
	free(c->access_log);
	free(c->resolvers);
	free(c->replicas.dns_host);
	free(c->shared_limits.redis_host);
	free(c->shared_limits.key_prefix);
	free(c->listen.text);
	free(c->admin_listen.text);
	free(c->path);
	free(c);
}

static const char *const class_names[CONF_CLASS_COUNT] = {
	[CONF_CLASS_INTERACTIVE] = "interactive",
	[CONF_CLASS_STANDARD] = "standard",
	[CONF_CLASS_OPPORTUNISTIC] = "opportunistic",
};

const char *const conf_slice_words[2] = {
	[CONF_SLICE_RESERVED] = "reserved",
	[CONF_SLICE_ELASTIC] = "elastic",
};
const char *const conf_slots_adapt_words[3] = {
	[CONF_SLOTS_OFF] = "off",
	[CONF_SLOTS_VLLM_METRICS] = "vllm_metrics",
	[CONF_SLOTS_LATENCY] = "latency",
};
const char *const conf_tenant_slot_share_words[2] = {
	[CONF_TENANT_SLOT_SHARE_OFF] = "off",
	[CONF_TENANT_SLOT_SHARE_FAIR] = "fair",
};
const char *const conf_log_level_words[4] = {
	[CONF_LOG_DEBUG] = "debug",
	[CONF_LOG_INFO] = "info",
	[CONF_LOG_WARN] = "warn",
	[CONF_LOG_ERROR] = "error",
};

const char *conf_class_name(enum conf_class c)
{
	if ((unsigned)c >= CONF_CLASS_COUNT)
		return "invalid";
	return class_names[c];
}

int conf_class_parse(const char *s, size_t len, enum conf_class *out)
{
	unsigned i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < CONF_CLASS_COUNT; i++)
		if (strlen(class_names[i]) == len && memcmp(class_names[i], s, len) == 0) {
			*out = (enum conf_class)i;
			return 0;
		}
	return -EINVAL;
}

int conf_pool_find(const struct conf *c, const char *name)
{
	size_t i;

	if (!c || !name)
		return -1;
	for (i = 0; i < c->npools; i++)
		if (strcmp(c->pools[i].name, name) == 0)
			return (int)i;
	return -1;
}

void conf_pool_map(const struct conf *old, const struct conf *next, size_t *from)
{
	size_t i;

	for (i = 0; i < next->npools; i++) {
		int j = conf_pool_find(old, next->pools[i].name);
		from[i] = j < 0 ? CONF_POOL_NEW : (size_t)j;
	}
}

static char *dup_or_null(const char *s, bool *failed)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*failed = true;
	return d;
}

struct conf_pool *conf_pool_copy(const struct conf_pool *p)
{
	struct conf_pool *c = malloc(sizeof(*c));
	bool failed = false;

	if (c == NULL)
		return NULL;
	*c = *p;
	c->backends = NULL;
	c->nbackends = 0;
	c->models = NULL;
	c->nmodels = 0;
	c->discovery.dns_host = NULL;
	c->gpu_model = c->mig_profile = NULL;
	c->name = dup_or_null(p->name, &failed);
	c->health.path = dup_or_null(p->health.path, &failed);
	c->upstream_bearer = dup_or_null(p->upstream_bearer, &failed);
	if (failed) {
		conf_pool_free_copy(c);
		return NULL;
	}
	return c;
}

void conf_pool_free_copy(struct conf_pool *p)
{
	if (p == NULL)
		return;
	free(p->name);
	free(p->health.path);
	if (p->upstream_bearer != NULL) {
		explicit_bzero(p->upstream_bearer, strlen(p->upstream_bearer));
		free(p->upstream_bearer);
	}
	free(p);
}

int conf__model_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int d = memcmp(a, b, alen < blen ? alen : blen);

	if (d != 0)
		return d;
	return alen < blen ? -1 : alen > blen;
}

uint64_t conf_model_pools(const struct conf *c, const char *name, size_t len)
{
	size_t lo = 0, hi = c->nmodels;

	if (c->nmodels == 0)
		return UINT64_MAX;
	if (len > CONF_MODEL_MAX)
		return c->pools_any;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = conf__model_cmp(name, len, c->models[mid].name, c->models[mid].len);

		if (d == 0)
			return c->models[mid].pools | c->pools_any;
		if (d < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return c->pools_any;
}

json_t *conf_dump(const struct conf *c)
{
	return conf__schema_dump(c);
}
