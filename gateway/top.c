/*
 * top.c - `sluice top`: what an SRE opens first during an incident.
 *
 * Polls GET /status on the admin listener every interval and draws, in 80x24:
 * per class the queue (depth, bytes, oldest wait), last-minute p50/p99 and
 * the request and rejection rates of the interval; per class the latency
 * histogram of the interval as bars (the difference of two polls of the
 * cumulative buckets, as varnishhist draws its samples); and pool occupancy.
 *
 * It is a plain blocking client: one short connection per poll, nothing to
 * share with the event loop of the gateway.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gateway/buf.h"
#include "gateway/top.h"

#define NCLASS 3
#define BAR 14

static const char *const class_names[NCLASS] = { "interactive", "standard", "opportunistic" };

/* Display bins (seconds) drawn from the cumulative buckets. */
static const double bins[] = { 0.01, 0.05, 0.1, 0.25, 1, 10 };
static const char *const bin_names[] = { "<10ms", "<50ms", "<100ms", "<250ms", "<1s", "<10s", ">=10s" };
#define NBINS (sizeof(bins) / sizeof(bins[0]) + 1)

/* GET /status; returns the parsed body or NULL (message in err). */
static json_t *fetch(const struct sockaddr_in *sa, char *err, size_t errlen)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		snprintf(err, errlen, "cannot connect: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	static const char req[] = "GET /status HTTP/1.1\r\nhost: sluice\r\nconnection: close\r\n\r\n";
	struct gw_buf in = GW_BUF_INIT;
	char chunk[16384];
	ssize_t n = write(fd, req, sizeof(req) - 1);
	while (n >= 0 && (n = read(fd, chunk, sizeof(chunk))) > 0)
		if (gw_buf_append(&in, chunk, (size_t)n) < 0 || in.len > (64u << 20))
			break;
	close(fd);
	json_t *root = NULL;
	const char *body = in.len ? memmem(in.data, in.len, "\r\n\r\n", 4) : NULL;
	if (body == NULL || in.len < 12 || memcmp(in.data + 9, "200", 3) != 0)
		snprintf(err, errlen, "unexpected answer from /status");
	else if ((root = json_loadb(body + 4, in.len - (size_t)(body + 4 - in.data), 0, NULL)) == NULL)
		snprintf(err, errlen, "/status is not JSON");
	gw_buf_finish(&in);
	return root;
}

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

static void draw(FILE *f, const char *admin, json_t *st, json_t *prev, double interval)
{
	time_t t = time(NULL);
	struct tm tm;
	char clock[16];
	localtime_r(&t, &tm);
	strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	json_t *classes = json_object_get(st, "classes");
	json_t *pclasses = prev ? json_object_get(prev, "classes") : NULL;
	json_t *bounds = json_object_get(st, "bucket_bounds_seconds");

	fprintf(f, "sluice top  %-21s conns %-6lld interval %.1fs%s  %s\n", admin,
		(long long)json_integer_value(json_object_get(st, "connections")), interval,
		json_is_true(json_object_get(st, "draining")) ? "  DRAINING" : "", clock);
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
			json_real_value(json_object_get(c, "p50_ms_last_minute")),
			json_real_value(json_object_get(c, "p99_ms_last_minute")),
			pc ? delta(c, pc, "requests_total") / interval : 0.0,
			pc ? delta(c, pc, "rejected_total") / interval : 0.0);
	}
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
	fflush(f);
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
	const char *admin = "127.0.0.1:9090";
	double interval = 1.0;
	long count = 0;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "a:i:n:h", opts, NULL)) != -1) {
		switch (o) {
		case 'a': admin = optarg; break;
		case 'i': interval = atof(optarg); break;
		case 'n': count = atol(optarg); break;
		case 'h':
			printf("usage: sluice top [--admin HOST:PORT] [--interval SECONDS] [--count N]\n");
			return 0;
		default:
			return 2;
		}
	}
	char host[64];
	const char *colon = strrchr(admin, ':');
	struct sockaddr_in sa = { .sin_family = AF_INET };
	if (colon == NULL || (size_t)(colon - admin) >= sizeof(host) || interval < 0.1) {
		fprintf(stderr, "sluice top: --admin takes IPv4:PORT, --interval at least 0.1\n");
		return 2;
	}
	memcpy(host, admin, (size_t)(colon - admin));
	host[colon - admin] = '\0';
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "sluice top: %s is not an IPv4 address\n", host);
		return 2;
	}
	bool tty = isatty(STDOUT_FILENO);
	json_t *prev = NULL;
	char err[128];
	for (long i = 0; count == 0 || i < count; i++) {
		json_t *st = fetch(&sa, err, sizeof(err));
		if (st == NULL) {
			fprintf(stderr, "sluice top: %s: %s\n", admin, err);
			json_decref(prev);
			return 1;
		}
		if (tty)
			fputs("\033[H\033[2J", stdout);
		else if (i > 0)
			fputs("\n", stdout);
		draw(stdout, admin, st, prev, interval);
		json_decref(prev);
		prev = st;
		if (count == 0 || i + 1 < count) {
			struct timespec ts = { (time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9) };
			nanosleep(&ts, NULL);
		}
	}
	json_decref(prev);
	return 0;
}
