/*
 * body_bench.c - how fast a request body is inspected for admission.
 *
 * Builds request bodies the way long-context clients send them and times
 * the scan the gateway runs (gateway/openai.c over gateway/jscan.c), fed in
 * 64 KiB reads as a socket delivers them, against jansson building the
 * whole document (what the gateway did before).  Prints MB/s for each and
 * the ratio.
 *
 *   body_bench [SIZE_KIB=1024] [ROUNDS=200] [KIND]
 *
 * Bodies: `chat` (English-like prose in one user message), `escaped` (code
 * and JSON pasted into a message: a backslash escape every few bytes, with
 * \u escapes), `cjk` (three-byte UTF-8 characters), `token-ids` (a prompt
 * given as token ids: numbers, not strings).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/openai.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t put(char *p, const char *s)
{
	size_t n = strlen(s);
	memcpy(p, s, n);
	return n;
}

/* A body of about `size` bytes of the given kind; *len is its length. */
static char *make(const char *kind, size_t size, size_t *len)
{
	static const char *const words[] = { "the ", "model ", "reads ", "every ", "token ", "of ", "a ",
					     "long ", "context ", "window, ", "and ", "answers. " };
	char *b = malloc(size + 4096);
	size_t n = put(b, "{\"model\":\"llama-3.1-8b-instruct\",\"messages\":[{\"role\":\"system\",\"content\":"
			  "\"You are helpful.\"},{\"role\":\"user\",\"content\":");
	if (strcmp(kind, "token-ids") == 0) {
		n = put(b, "{\"model\":\"m\",\"prompt\":[");
		for (unsigned i = 0; n < size; i++)
			n += (size_t)sprintf(b + n, "%u,", (i * 7919u) % 128000u);
		b[n - 1] = ']';
	} else {
		b[n++] = '"';
		for (unsigned i = 0; n < size; i++) {
			if (strcmp(kind, "chat") == 0)
				n += put(b + n, words[(i * 7) % 12]);
			else if (strcmp(kind, "escaped") == 0)
				n += put(b + n, i % 4 == 0 ? "if (x) {\\n\\t\\\"k\\\": \\\"v\\\\n\\\"}\\u00e9 "
							   : "return f(a, b);\\n");
			else
				n += put(b + n, "\xe6\x96\x87\xe8\x84\x88\xe3\x81\xae\xe9\x95\xb7\xe3\x81\x95 ");
		}
		b[n++] = '"';
		n += put(b + n, "}]");
	}
	n += put(b + n, ",\"max_tokens\":256,\"stream\":true}");
	*len = n;
	return b;
}

static void run(const char *kind, size_t size, int rounds)
{
	size_t len;
	char *body = make(kind, size, &len);
	static struct gw_openai_scan sc;
	struct gw_openai_body out = { 0 };
	double t0 = now_s();
	for (int r = 0; r < rounds; r++) {
		gw_openai_scan_init(&sc);
		for (size_t off = 0; off < len; off += 65536)
			gw_openai_scan_feed(&sc, body + off, len - off < 65536 ? len - off : 65536);
		gw_openai_scan_finish(&sc, &out);
	}
	double scan_s = (now_s() - t0) / rounds;
	if (!out.valid || out.max_tokens != 256) {
		fprintf(stderr, "body_bench: %s body scanned wrong\n", kind);
		exit(1);
	}
	int jrounds = rounds / 10 > 0 ? rounds / 10 : 1;
	t0 = now_s();
	for (int r = 0; r < jrounds; r++) {
		json_t *root = json_loadb(body, len, 0, NULL);
		if (root == NULL) {
			fprintf(stderr, "body_bench: jansson refused the %s body\n", kind);
			exit(1);
		}
		json_decref(root);
	}
	double jansson_s = (now_s() - t0) / jrounds;
	printf("%-10s %8zu B   scan %7.0f MB/s (%6.1f us)   jansson %5.0f MB/s (%7.1f us)   %5.1fx   est. %.0f prompt tokens\n",
	       kind, len, len / scan_s / 1e6, scan_s * 1e6, len / jansson_s / 1e6, jansson_s * 1e6,
	       jansson_s / scan_s, gw_openai_prompt_tokens(&out, len));
	free(body);
}

int main(int argc, char **argv)
{
	size_t kib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
	int rounds = argc > 2 ? atoi(argv[2]) : 200;
	if (kib < 1 || rounds < 1) {
		fprintf(stderr, "usage: body_bench [SIZE_KIB] [ROUNDS]\n");
		return 2;
	}
	printf("body_bench: %zu KiB bodies, fed in 64 KiB reads, %d rounds (jansson: %d)\n", kib, rounds,
	       rounds / 10 > 0 ? rounds / 10 : 1);
	static const char *const kinds[] = { "chat", "escaped", "cjk", "token-ids" };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (argc <= 3 || strcmp(argv[3], kinds[i]) == 0)
			run(kinds[i], kib * 1024, rounds);
	return 0;
}
