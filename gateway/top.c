/*
 * top.c - `sluice top`: what an SRE opens first during an incident.
 *
 * Polls GET /status on the admin listener every interval and draws one of
 * three panes.  Classes (the default, 80x24): per class the queue (depth,
 * bytes, oldest wait), last-minute p50/p99 of the requests a backend
 * served (sluice's own answers are fast and would hide a slow backend; they
 * show in the rejection rate), the request and rejection rates of the
 * interval, the latency histogram of the interval as bars (the difference
 * of two polls of the cumulative buckets, as varnishhist draws its
 * samples), pool occupancy and the backends that are out.  Tenants: rates
 * of requests, rejections and tokens, and bucket levels, sorted by one of
 * them.  Backends: up or down, inflight/slots, health and the last error.
 *
 * On a terminal, keys switch panes (c, t, b, Tab), cycle the sort (s) and
 * quit (q); stdin is put in non-canonical mode and restored on the way out
 * (q, SIGINT, SIGTERM).  A failed poll does not end it: the last data stay
 * on screen under a "disconnected for Ns" line, and the next poll resolves
 * the address again, so a restarted sluice is found as soon as it listens.
 *
 * It is a plain blocking client: one short connection per poll, nothing to
 * share with the event loop of the gateway.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "gateway/admin_client.h"
#include "gateway/top.h"

#define NCLASS 3
#define BAR 14

static const char *const class_names[NCLASS] = { "interactive", "standard", "opportunistic" };

/* Display bins (seconds) drawn from the cumulative buckets. */
static const double bins[] = { 0.01, 0.05, 0.1, 0.25, 1, 10 };
static const char *const bin_names[] = { "<10ms", "<50ms", "<100ms", "<250ms", "<1s", "<10s", ">=10s" };
#define NBINS (sizeof(bins) / sizeof(bins[0]) + 1)

/* Count in each display bin between two polls of a class's cumulative buckets. */
static void interval_bins(json_t *bounds, json_t *now, json_t *before, uint64_t out[NBINS])
{
	size_t nb = json_array_size(bounds);
	uint64_t prev_cum = 0;
	for (size_t b = 0; b < NBINS; b++) {
		/* cumulative count at the largest metric bound <= the bin's bound */
		uint64_t cum = 0;
		if (b + 1 < NBINS) {
			for (size_t i = 0; i < nb; i++) {
				if (json_real_value(json_array_get(bounds, i)) > bins[b] + 1e-12)
					break;
				cum = (uint64_t)(json_integer_value(json_array_get(now, i)) -
						 (before ? json_integer_value(json_array_get(before, i)) : 0));
			}
		} else {
			cum = (uint64_t)(json_integer_value(json_array_get(now, nb)) -
					 (before ? json_integer_value(json_array_get(before, nb)) : 0));
		}
		out[b] = cum >= prev_cum ? cum - prev_cum : 0;
		prev_cum = cum > prev_cum ? cum : prev_cum;
	}
}

static double delta(json_t *now, json_t *before, const char *key)
{
	double a = (double)json_integer_value(json_object_get(now, key));
	double b = before ? (double)json_integer_value(json_object_get(before, key)) : a;
	return a - b;
}

static void human_bytes(char *out, size_t len, double v)
{
	const char *u[] = { "B", "K", "M", "G" };
	int i = 0;
	while (v >= 1024 && i < 3) {
		v /= 1024;
		i++;
	}
	snprintf(out, len, i ? "%.1f%s" : "%.0f%s", v, u[i]);
}

static const char *str_or(json_t *v, const char *def)
{
	const char *s = json_string_value(v);
	return s != NULL ? s : def;
}

/* Why a backend is out, in a few words. */
static void down_reason(json_t *b, char *out, size_t len)
{
	json_t *last = json_object_get(b, "last_check");
	size_t n = 0;
	out[0] = '\0';
	if (json_is_true(json_object_get(b, "ejected")) && n < len)
		n += (size_t)snprintf(out + n, len - n, "ejected %.1fs ",
				      (double)json_integer_value(json_object_get(b, "ejected_for_ms")) / 1000);
	if (strcmp(str_or(json_object_get(b, "health"), ""), "down") == 0 && n < len) {
		json_t *st = json_object_get(last, "http_status");
		if (st != NULL)
			n += (size_t)snprintf(out + n, len - n, "health: HTTP %lld ", (long long)json_integer_value(st));
		else
			n += (size_t)snprintf(out + n, len - n, "health: %s ",
					      str_or(json_object_get(last, "result"), "failed"));
	}
	if (json_is_true(json_object_get(b, "connect_failing")) && n < len)
		snprintf(out + n, len - n, "connect failing");
}

/* The backends that are out, with their pool and address: the first thing
 * to look at when a pool loses capacity.  At most DOWN_LINES lines. */
#define DOWN_LINES 4
static void draw_down(FILE *f, json_t *pools)
{
	const char *name;
	json_t *p;
	int shown = 0, more = 0;
	json_object_foreach(pools, name, p) {
		size_t i;
		json_t *b;
		json_array_foreach(json_object_get(p, "backends"), i, b) {
			if (json_is_true(json_object_get(b, "up")))
				continue;
			if (shown == DOWN_LINES) {
				more++;
				continue;
			}
			char why[64];
			down_reason(b, why, sizeof(why));
			fprintf(f, "%s%-12s %-22s %s\n", shown ? "     " : "down ", name,
				str_or(json_object_get(b, "address"), "?"), why);
			shown++;
		}
	}
	if (more > 0)
		fprintf(f, "     ... and %d more backends down\n", more);
}

enum pane { PANE_CLASSES = 0, PANE_TENANTS, PANE_BACKENDS, PANE_COUNT };
static const char *const pane_names[PANE_COUNT] = { "classes", "tenants", "backends" };
/* What `s` cycles through, per pane (the classes pane has a fixed order). */
static const char *const tenant_sorts[] = { "req/s", "rej/s", "tok/s", "bucket" };
static const char *const backend_sorts[] = { "down first", "inflight", "address" };
#define NTSORT (sizeof(tenant_sorts) / sizeof(tenant_sorts[0]))
#define NBSORT (sizeof(backend_sorts) / sizeof(backend_sorts[0]))
#define ROWS 30

struct view {
	const char *admin;
	enum pane pane;
	unsigned sort[PANE_COUNT];
	double interval;
	bool keys;			/* reading keys from a terminal */
	double down_since;		/* monotonic seconds of the first failed poll; 0: connected */
	char err[128];
};

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void draw_classes(FILE *f, json_t *st, json_t *prev, double interval)
{
	json_t *classes = json_object_get(st, "classes");
	json_t *pclasses = prev ? json_object_get(prev, "classes") : NULL;
	json_t *bounds = json_object_get(st, "bucket_bounds_seconds");

	/* p50/p99 are of the requests a backend answered: sluice's own quick
	 * answers are counted in rej/s, not averaged into the latency. */
	fprintf(f, "%-13s %6s %7s %8s %9s %9s %8s %8s\n", "class", "queue", "bytes", "oldest",
		"p50(1m)", "p99(1m)", "req/s", "rej/s");
	for (int k = 0; k < NCLASS; k++) {
		json_t *c = json_object_get(classes, class_names[k]);
		if (c == NULL)
			continue;
		json_t *pc = pclasses ? json_object_get(pclasses, class_names[k]) : NULL;
		char bytes[16];
		human_bytes(bytes, sizeof(bytes), (double)json_integer_value(json_object_get(c, "queue_bytes")));
		fprintf(f, "%-13s %6lld %7s %6lldms %7.1fms %7.1fms %8.1f %8.1f\n", class_names[k],
			(long long)json_integer_value(json_object_get(c, "queue_depth")), bytes,
			(long long)json_integer_value(json_object_get(c, "oldest_wait_ms")),
			json_real_value(json_object_get(c, "served_p50_ms_last_minute")),
			json_real_value(json_object_get(c, "served_p99_ms_last_minute")),
			pc ? delta(c, pc, "requests_total") / interval : 0.0,
			pc ? delta(c, pc, "rejected_total") / interval : 0.0);
	}
	fprintf(f, "(p50/p99: served by a backend; sluice's own answers count in rej/s)\n");
	fprintf(f, "\nlatency of the requests that ended in the last interval\n");
	uint64_t counts[NCLASS][NBINS] = { { 0 } }, peak[NCLASS] = { 0 };
	fprintf(f, "%-7s", "");
	for (int k = 0; k < NCLASS; k++) {
		json_t *c = json_object_get(classes, class_names[k]);
		if (c == NULL)
			continue;
		json_t *pc = pclasses ? json_object_get(pclasses, class_names[k]) : NULL;
		interval_bins(bounds, json_object_get(c, "latency_buckets"),
			      pc ? json_object_get(pc, "latency_buckets") : NULL, counts[k]);
		for (size_t b = 0; b < NBINS; b++)
			peak[k] = counts[k][b] > peak[k] ? counts[k][b] : peak[k];
		fprintf(f, " %-23s", class_names[k]);
	}
	fprintf(f, "\n");
	for (size_t b = 0; b < NBINS; b++) {
		fprintf(f, "%-7s", bin_names[b]);
		for (int k = 0; k < NCLASS; k++) {
			if (json_object_get(classes, class_names[k]) == NULL)
				continue;
			int w = peak[k] ? (int)((counts[k][b] * BAR + peak[k] - 1) / peak[k]) : 0;
			char bar[BAR + 1];
			memset(bar, '#', (size_t)w);
			bar[w] = '\0';
			fprintf(f, " |%-*s %6llu", BAR, bar, (unsigned long long)counts[k][b]);
		}
		fprintf(f, "\n");
	}
	fprintf(f, "\npools\n");
	const char *name;
	json_t *p;
	json_object_foreach(json_object_get(st, "pools"), name, p) {
		long long slots = json_integer_value(json_object_get(p, "slots"));
		long long used = json_integer_value(json_object_get(p, "inflight"));
		int down = 0;
		size_t i;
		json_t *b;
		json_array_foreach(json_object_get(p, "backends"), i, b)
			down += !json_is_true(json_object_get(b, "up"));
		int w = slots ? (int)(used * 30 / slots) : 0;
		char bar[31];
		memset(bar, '#', (size_t)w);
		memset(bar + w, '.', (size_t)(30 - w));
		bar[30] = '\0';
		fprintf(f, "%-12s %-8s %5lld/%-5lld [%s]%s\n", name, json_string_value(json_object_get(p, "slice")),
			used, slots, bar, down ? "  BACKEND DOWN" : "");
	}
	draw_down(f, json_object_get(st, "pools"));
}

struct row {
	double key;
	char text[224];
};

static int row_cmp(const void *a, const void *b)
{
	double x = ((const struct row *)a)->key, y = ((const struct row *)b)->key;
	return x < y ? 1 : x > y ? -1 : 0;	/* largest first */
}

static double real_or_int(json_t *v)
{
	return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

static double rate(json_t *now, json_t *before, const char *key, double interval)
{
	if (before == NULL)
		return 0;
	return (real_or_int(json_object_get(now, key)) - real_or_int(json_object_get(before, key))) / interval;
}

static void draw_rows(FILE *f, struct row *rows, size_t n)
{
	qsort(rows, n, sizeof(*rows), row_cmp);
	for (size_t i = 0; i < n && i < ROWS; i++)
		fprintf(f, "%s\n", rows[i].text);
	if (n > ROWS)
		fprintf(f, "... and %zu more\n", n - ROWS);
}

static void draw_tenants(FILE *f, json_t *st, json_t *prev, double interval, unsigned sort)
{
	json_t *tenants = json_object_get(st, "tenants");
	json_t *ptenants = prev ? json_object_get(prev, "tenants") : NULL;
	size_t n = json_object_size(tenants), i = 0;
	struct row *rows = calloc(n ? n : 1, sizeof(*rows));
	if (rows == NULL)
		return;
	fprintf(f, "%-24s %9s %9s %10s %12s %12s\n", "tenant", "req/s", "rej/s", "tok/s", "req bucket", "tok bucket");
	const char *name;
	json_t *t;
	json_object_foreach(tenants, name, t) {
		json_t *pt = ptenants ? json_object_get(ptenants, name) : NULL;
		double req = rate(t, pt, "requests_total", interval), rej = rate(t, pt, "rejected_total", interval);
		double tok = rate(t, pt, "tokens_estimated", interval);
		json_t *rb = json_object_get(t, "requests_bucket"), *tb = json_object_get(t, "tokens_bucket");
		char rbs[16] = "-", tbs[16] = "-";
		if (rb != NULL)
			snprintf(rbs, sizeof(rbs), "%.1f", real_or_int(rb));
		if (tb != NULL)
			snprintf(tbs, sizeof(tbs), "%.0f", real_or_int(tb));
		/* bucket: the emptiest first */
		double keys[] = { req, rej, tok, rb != NULL ? -real_or_int(rb) : -1e300 };
		rows[i].key = keys[sort % NTSORT];
		snprintf(rows[i].text, sizeof(rows[i].text), "%-24.24s %9.1f %9.1f %10.1f %12s %12s", name, req, rej,
			 tok, rbs, tbs);
		i++;
	}
	draw_rows(f, rows, i);
	free(rows);
}

static void draw_backends(FILE *f, json_t *st, unsigned sort)
{
	const char *name;
	json_t *p, *b;
	size_t n = 0, i;
	json_object_foreach(json_object_get(st, "pools"), name, p)
		n += json_array_size(json_object_get(p, "backends"));
	struct row *rows = calloc(n ? n : 1, sizeof(*rows));
	if (rows == NULL)
		return;
	fprintf(f, "%-12s %-26s %-5s %11s  %s\n", "pool", "backend", "state", "inflight", "health / last error");
	n = 0;
	json_object_foreach(json_object_get(st, "pools"), name, p) {
		json_array_foreach(json_object_get(p, "backends"), i, b) {
			bool up = json_is_true(json_object_get(b, "up"));
			long long inflight = json_integer_value(json_object_get(b, "inflight"));
			char why[64], last[80] = "";
			down_reason(b, why, sizeof(why));
			json_t *le = json_object_get(b, "last_error");
			if (le != NULL)
				snprintf(last, sizeof(last), "%slast error %.0fs ago: %s", why[0] ? "; " : "",
					 (double)json_integer_value(json_object_get(le, "age_ms")) / 1000,
					 str_or(json_object_get(le, "error"), "?"));
			if (why[0] == '\0' && last[0] == '\0')
				snprintf(why, sizeof(why), "health %s", str_or(json_object_get(b, "health"), "?"));
			char occ[24];
			snprintf(occ, sizeof(occ), "%lld/%lld", inflight,
				 (long long)json_integer_value(json_object_get(b, "slots")));
			/* address: the order of the config, which the index keeps */
			double keys[] = { up ? 0 : 1, (double)inflight, -(double)n };
			rows[n].key = keys[sort % NBSORT];
			snprintf(rows[n].text, sizeof(rows[n].text), "%-12.12s %-26.26s %-5s %11s  %s%s", name,
				 str_or(json_object_get(b, "address"), "?"), up ? "up" : "DOWN", occ, why, last);
			n++;
		}
	}
	/* qsort is not stable: break ties by config order */
	for (i = 0; i < n; i++)
		rows[i].key = rows[i].key * 1e6 - (double)i * 1e-3;
	draw_rows(f, rows, n);
	free(rows);
}

static void draw(FILE *f, const struct view *v, json_t *st, json_t *prev, double interval)
{
	time_t t = time(NULL);
	struct tm tm;
	char clock[16];
	localtime_r(&t, &tm);
	strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	fprintf(f, "sluice top  %-21s conns %-6lld interval %.1fs%s  %s\n", v->admin,
		(long long)json_integer_value(json_object_get(st, "connections")), v->interval,
		json_is_true(json_object_get(st, "draining")) ? "  DRAINING" : "", clock);
	if (v->down_since > 0)
		fprintf(f, "disconnected for %.0fs (%s); showing the last data\n", mono() - v->down_since, v->err);
	switch (v->pane) {
	case PANE_CLASSES:
		draw_classes(f, st, prev, interval);
		break;
	case PANE_TENANTS:
		fprintf(f, "tenants, by %s\n", tenant_sorts[v->sort[PANE_TENANTS] % NTSORT]);
		draw_tenants(f, st, prev, interval, v->sort[PANE_TENANTS]);
		break;
	default:
		fprintf(f, "backends, %s\n", backend_sorts[v->sort[PANE_BACKENDS] % NBSORT]);
		draw_backends(f, st, v->sort[PANE_BACKENDS]);
		break;
	}
	if (v->keys)
		fprintf(f, "[%s]  c classes  t tenants  b backends  Tab next  s sort  q quit\n", pane_names[v->pane]);
	fflush(f);
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Wait up to `secs` for keys; returns false when `q` was pressed. */
static bool wait_keys(struct view *v, double secs, bool *redraw)
{
	double until = mono() + secs;
	*redraw = false;
	while (!stop) {
		double left = until - mono();
		if (left <= 0)
			return true;
		if (!v->keys) {
			struct timespec ts = { (time_t)left, (long)((left - (double)(time_t)left) * 1e9) };
			nanosleep(&ts, NULL);
			continue;
		}
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
		int rc = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (rc <= 0)
			continue;
		char ch;
		if (read(STDIN_FILENO, &ch, 1) != 1) {
			v->keys = false;	/* the terminal went away: keep polling */
			continue;
		}
		switch (ch) {
		case 'q': case 'Q': return false;
		case 'c': v->pane = PANE_CLASSES; break;
		case 't': v->pane = PANE_TENANTS; break;
		case 'b': v->pane = PANE_BACKENDS; break;
		case '\t': v->pane = (enum pane)((v->pane + 1) % PANE_COUNT); break;
		case 's': v->sort[v->pane]++; break;
		default: continue;
		}
		*redraw = true;
		return true;
	}
	return true;
}

int gw_top_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "admin", required_argument, NULL, 'a' },
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct view v = { .admin = "127.0.0.1:9090", .interval = 1.0 };
	long count = 0;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "a:i:n:h", opts, NULL)) != -1) {
		switch (o) {
		case 'a': v.admin = optarg; break;
		case 'i': v.interval = atof(optarg); break;
		case 'n': count = atol(optarg); break;
		case 'h':
			printf("usage: sluice top [--admin HOST:PORT] [--interval SECONDS] [--count N]\n"
			       "keys: c classes, t tenants, b backends, Tab next pane, s sort, q quit\n");
			return 0;
		default:
			return 2;
		}
	}
	char host[256], port[8];
	if (gw_admin_client_split(v.admin, host, sizeof(host), port, sizeof(port)) < 0 || v.interval < 0.1) {
		fprintf(stderr, "sluice top: --admin takes HOST:PORT or [IPV6]:PORT, --interval at least 0.1\n");
		return 2;
	}
	bool tty = isatty(STDOUT_FILENO);
	struct termios saved;
	v.keys = tty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (v.keys) {
		struct termios raw = saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	/* Without SA_RESTART, so that a wait in poll() ends and the terminal
	 * is restored before exiting. */
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	json_t *prev = NULL, *cur = NULL;
	double prev_at = 0, cur_at = 0;
	int status = 0;
	for (long i = 0; !stop && (count == 0 || i < count); i++) {
		json_t *st = gw_admin_client_get(host, port, "/status", v.err, sizeof(v.err));
		double now = mono();
		if (st != NULL) {
			v.down_since = 0;
			json_decref(prev);
			prev = cur;
			prev_at = cur_at;
			cur = st;
			cur_at = now;
			status = 0;
		} else {
			if (v.down_since == 0)
				v.down_since = now;
			status = 1;
		}
		bool more = count == 0 || i + 1 < count;
		for (bool redraw = true; redraw && !stop;) {
			if (tty)
				fputs("\033[H\033[2J", stdout);
			else if (i > 0)
				fputs("\n", stdout);
			if (cur != NULL) {
				draw(stdout, &v, cur, prev, prev ? cur_at - prev_at : v.interval);
			} else {
				printf("sluice top  %s\ndisconnected for %.0fs (%s)\n", v.admin, now - v.down_since, v.err);
				if (!tty)
					fprintf(stderr, "sluice top: %s: %s\n", v.admin, v.err);
				fflush(stdout);
			}
			if (!more)
				break;
			if (!wait_keys(&v, v.interval - (mono() - now), &redraw)) {
				stop = 1;
				break;
			}
		}
	}
	if (v.keys)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	json_decref(prev);
	json_decref(cur);
	return status;
}
