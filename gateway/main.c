/*
 * main.c - command line of the sluice gateway.
 *
 *   sluice -c FILE        run with the config in FILE
 *   sluice -c FILE --watch  also reload FILE when it changes (watch.h)
 *   sluice -t -c FILE     check FILE and exit: 0 when valid, 1 with
 *                         "FILE:LINE: message" lines on stderr otherwise
 *   sluice -t -c FILE --diff ADMIN_ADDR
 *                         also print what a reload of FILE would change in
 *                         the sluice whose admin listener is ADMIN_ADDR
 *   sluice --version
 *   sluice hash-key [KEY] print the SHA-256 of an API key (read from stdin
 *                         when not given, which keeps it out of shell history)
 *   sluice top [--admin HOST:PORT] [--interval S] [--count N]
 *                         live terminal view of a running gateway
 */
#include <ares.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf/conf.h"
#include "conf/diff.h"
#include "gateway/admin_client.h"
#include "gateway/log.h"
#include "gateway/server.h"
#include "gateway/top.h"
#include "queue/tenant.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sluice -c FILE      run with the config in FILE\n"
		   "       sluice -t -c FILE   check the config and exit\n"
		   "       sluice -t -c FILE --diff ADMIN_HOST:PORT  and show what a reload would change\n"
		   "       sluice --version\n"
		   "       sluice hash-key [KEY]  SHA-256 of an API key for tenants.*.keys (stdin without KEY)\n"
		   "       sluice top [--admin HOST:PORT] [--interval S] [--count N]  live view\n"
		   "options:\n"
		   "  -c, --config FILE   YAML config (see conf/examples/)\n"
		   "  -t, --test          validate the config, print errors as FILE:LINE: message\n"
		   "      --diff ADDR     with -t: compare with the running config at ADDR (GET /config)\n"
		   "  -v, --verbose       log debug lines\n"
		   "  -w, --watch         reload the config when its file changes, as SIGHUP does\n"
		   "  -V, --version       print the version\n");
}

/*
 * `sluice -t -c FILE --diff ADMIN`: what SIGHUP would change in the running
 * process, from its GET /config and FILE's dump, without secrets.  Exit
 * status: 0 when a reload would apply (with or without changes), 1 when
 * it would be refused (a change needs a restart), 2 when the running
 * process cannot be asked.
 */
static int diff_running(const char *path, const struct conf *next, const char *admin)
{
	char host[256], port[8], err[256];
	if (gw_admin_client_split(admin, host, sizeof(host), port, sizeof(port)) < 0) {
		fprintf(stderr, "sluice: --diff takes the admin listener's HOST:PORT or [IPV6]:PORT\n");
		return 2;
	}
	json_t *running = gw_admin_client_get(host, port, "/config", err, sizeof(err));
	json_t *cfg = running != NULL ? json_object_get(running, "config") : NULL;
	if (cfg == NULL) {
		fprintf(stderr, "sluice: cannot read the running config from %s: %s\n", admin,
			running != NULL ? "no config in the answer" : err);
		json_decref(running);
		return 2;
	}
	json_t *mine = conf_dump(next);
	if (mine == NULL) {
		fprintf(stderr, "sluice: out of memory\n");
		json_decref(running);
		return 2;
	}
	const char *rpath = json_string_value(json_object_get(running, "path"));
	printf("%s against the running config at %s (%s, generation %lld):\n", path, admin, rpath ? rpath : "?",
	       (long long)json_integer_value(json_object_get(running, "generation")));
	struct conf_diff d;
	conf_diff_print(stdout, cfg, mine, &d);
	if (d.changes == 0)
		printf("no changes: a reload would change nothing\n");
	else if (d.restart > 0)
		printf("%zu change%s, %zu needing a restart: a reload would be refused\n", d.changes,
		       d.changes == 1 ? "" : "s", d.restart);
	else
		printf("%zu change%s; a reload would apply %s\n", d.changes, d.changes == 1 ? "" : "s",
		       d.changes == 1 ? "it" : "them");
	json_decref(mine);
	json_decref(running);
	return d.restart > 0 ? 1 : 0;
}

static int hash_key(int argc, char **argv)
{
	char line[4096];
	const char *key;
	size_t len;
	if (argc > 3) {
		fprintf(stderr, "usage: sluice hash-key [KEY]\n");
		return 2;
	}
	if (argc == 3) {
		key = argv[2];
		len = strlen(key);
	} else {
		len = fread(line, 1, sizeof(line), stdin);
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		key = line;
	}
	if (len == 0) {
		fprintf(stderr, "sluice hash-key: empty key\n");
		return 1;
	}
	uint8_t h[32];
	queue_key_hash(key, len, h);
	printf("sha256: \"");
	for (size_t i = 0; i < sizeof(h); i++)
		printf("%02x", h[i]);
	printf("\"\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "hash-key") == 0)
		return hash_key(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "top") == 0)
		return gw_top_main(argc - 1, argv + 1);
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "watch", no_argument, NULL, 'w' },
		{ "diff", required_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	bool test = false;
	bool watch = false;
	const char *diff = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "c:tvwVh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 't': test = true; break;
		case 'v': gw_log_force_debug(); break;
		case 'w': watch = true; break;
		case 'd': diff = optarg; break;
		case 'V': printf("sluice %s\n", SLUICE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL || optind != argc || (diff != NULL && !test)) {
		usage(stderr);
		return 2;
	}

	struct conf *conf = NULL;
	struct conf_diag diag = { 0 };
	int rc = conf_load(path, &conf, &diag);
	/* Warnings go to stderr before anything else is said: with -t, at
	 * start and (in server.c) at each reload. */
	for (size_t i = 0; i < diag.nwarn && i < CONF_DIAG_MAX; i++)
		fprintf(stderr, "warning: %s\n", diag.warn[i]);
	if (rc < 0) {
		size_t shown = diag.count < CONF_DIAG_MAX ? diag.count : CONF_DIAG_MAX;
		for (size_t i = 0; i < shown; i++)
			fprintf(stderr, "%s\n", diag.msg[i]);
		if (diag.count > shown)
			fprintf(stderr, "%s: %zu more errors\n", path, diag.count - shown);
		return 1;
	}
	if (test && diff != NULL) {
		rc = diff_running(path, conf, diff);
		conf_destroy(conf);
		return rc;
	}
	if (test) {
		printf("%s: ok\n", path);
		conf_destroy(conf);
		return 0;
	}

	gw_log_configure((enum gw_log_level)conf->log_level, conf->log_json ? GW_LOG_JSON : GW_LOG_TEXT);
	/* A client that goes away mid-write must cost an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	uv_loop_t *loop = uv_default_loop();
	struct gw_server *srv = malloc(sizeof(*srv));
	if (srv == NULL)
		return 1;
	gw_info("sluice %s starting with %s", SLUICE_VERSION, path);
	/* c-ares, for DNS discovery (gateway/fleet.c). */
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		gw_error("c-ares: %s", ares_strerror(rc));
		conf_destroy(conf);
		free(srv);
		return 1;
	}
	rc = gw_server_init(srv, loop, conf);
	if (rc < 0) {
		conf_destroy(conf);
		free(srv);
		uv_loop_close(loop);
		return 1;
	}
	/* A watch asked for and not running would be a silent surprise at the
	 * next ConfigMap update: stop (the drain of nothing is immediate). */
	int status = 0;
	if (watch && gw_watch_start(&srv->watch, srv) < 0) {
		gw_server_drain(srv);
		status = 1;
	}
	uv_run(loop, UV_RUN_DEFAULT);
	gw_server_finish(srv);
	free(srv);
	ares_library_cleanup();
	/* Every handle must be closed by now: one left open is a leak the
	 * drain did not account for, and the exit status says so. */
	int closed = uv_loop_close(loop);
	if (closed != 0) {
		gw_error("event loop closed with handles still open: %s", uv_strerror(closed));
		return 1;
	}
	return status;
}
