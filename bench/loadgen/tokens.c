/*
 * tokens.c - streaming scan of a completion body; see tokens.h.
 *
 * Three small matchers run over every byte, each a position in a fixed
 * pattern; none of the patterns can overlap itself except at its first byte,
 * so on a mismatch it is enough to check the byte against the first one.
 */
#include <string.h>

#include "bench/loadgen/tokens.h"

static const char usage_key[] = "\"completion_tokens\":";
static const char data_key[] = "data:";
static const char done_key[] = "[DONE]";

void lg_tokscan_init(struct lg_tokscan *t)
{
	memset(t, 0, sizeof(*t));
	t->at_line_start = true;
}

static void end_number(struct lg_tokscan *t)
{
	if (!t->has_usage || t->number > t->usage)
		t->usage = t->number;
	t->has_usage = true;
}

static void scan_usage(struct lg_tokscan *t, char ch)
{
	if (t->in_number) {
		if (ch >= '0' && ch <= '9') {
			if (t->number < UINT64_MAX / 10)
				t->number = t->number * 10 + (uint64_t)(ch - '0');
			t->digits = true;
			return;
		}
		if (ch == ' ' && !t->digits)
			return;	/* between the colon and the value */
		if (t->digits)
			end_number(t);
		t->in_number = false;
	}
	if (ch == usage_key[t->key_pos]) {
		if (++t->key_pos == sizeof(usage_key) - 1) {
			t->in_number = true;
			t->digits = false;
			t->number = 0;
			t->key_pos = 0;
		}
	} else {
		t->key_pos = ch == usage_key[0];
	}
}

static void scan_lines(struct lg_tokscan *t, char ch)
{
	if (ch == '\n') {
		t->at_line_start = true;
		t->line_pos = 0;
		t->after_data = false;
		return;
	}
	if (t->after_data) {
		if (ch == ' ' && t->done_pos == 0)
			return;
		if (ch == done_key[t->done_pos]) {
			if (++t->done_pos == sizeof(done_key) - 1) {
				t->events--; /* [DONE] is no token */
				t->after_data = false;
			}
			return;
		}
		t->after_data = false;
		return;
	}
	if (!t->at_line_start)
		return;
	if (ch == data_key[t->line_pos]) {
		if (++t->line_pos == sizeof(data_key) - 1) {
			t->events++;
			t->after_data = true;
			t->done_pos = 0;
			t->at_line_start = false;
		}
		return;
	}
	if (ch != '\r')
		t->at_line_start = false;
}

void lg_tokscan_feed(struct lg_tokscan *t, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		scan_usage(t, p[i]);
		scan_lines(t, p[i]);
	}
}

uint64_t lg_tokscan_tokens(const struct lg_tokscan *t, bool sse)
{
	uint64_t u = t->usage;
	bool has = t->has_usage;
	if (t->in_number && t->digits && (!has || t->number > u)) {
		u = t->number; /* the body ended right after the digits */
		has = true;
	}
	if (has)
		return u;
	return sse ? t->events : 0;
}
