/*
 * ids.c - request ids and trace context; see ids.h.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "gateway/ids.h"

void gw_ids_init(struct gw_ids *g)
{
	*g = (struct gw_ids){ 0 };
	uv_random(NULL, NULL, &g->salt, sizeof(g->salt), 0, NULL);
}

void gw_ids_request_id(struct gw_ids *g, const struct gw_msg *m, char out[GW_REQUEST_ID_SIZE])
{
	const struct gw_field *f = gw_msg_field(m, "x-request-id");
	if (f != NULL && f->value_len > 0 && f->value_len < GW_REQUEST_ID_SIZE) {
		const char *v = gw_field_value(m, f);
		bool ok = true;
		for (uint32_t i = 0; i < f->value_len && ok; i++)
			ok = v[i] > 0x20 && v[i] < 0x7f;
		if (ok) {
			memcpy(out, v, f->value_len);
			out[f->value_len] = '\0';
			return;
		}
	}
	/* 16 hex digits of the salt, 8 of the sequence: formatted by hand, as
	 * it is made for every request. */
	static const char digits[] = "0123456789abcdef";
	uint64_t seq = ++g->request_seq & 0xffffffffu;
	for (int i = 0; i < 16; i++)
		out[i] = digits[(g->salt >> (60 - 4 * i)) & 15];
	for (int i = 0; i < 8; i++)
		out[16 + i] = digits[(seq >> (28 - 4 * i)) & 15];
	out[24] = '\0';
}

/* Lower-case hex of n random-looking bytes. */
static void hex_id(struct gw_ids *g, char *out, size_t nbytes)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < nbytes; i += 8) {
		/* splitmix64 over a counter seeded at start: unique, cheap, and
		 * not predictable from outside without the seed. */
		uint64_t z = (g->trace_seq += 0x9e3779b97f4a7c15ull) ^ g->salt;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		for (size_t j = 0; j < 8 && i + j < nbytes; j++, z >>= 8) {
			out[2 * (i + j)] = digits[(z >> 4) & 15];
			out[2 * (i + j) + 1] = digits[z & 15];
		}
	}
}

static bool all_hex(const char *s, size_t n, bool *zero)
{
	*zero = true;
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
		*zero &= s[i] == '0';
	}
	return true;
}

void gw_ids_traceparent(struct gw_ids *g, const struct gw_msg *m, char out[GW_TRACEPARENT_SIZE])
{
	const struct gw_field *f = gw_msg_field(m, "traceparent");
	bool z1 = true, z2 = true;
	if (f != NULL && f->value_len == GW_TRACEPARENT_SIZE - 1) {
		const char *v = gw_field_value(m, f);
		bool ok = memcmp(v, "00-", 3) == 0 && v[35] == '-' && v[52] == '-' &&
			  all_hex(v + 3, 32, &z1) && all_hex(v + 36, 16, &z2) && all_hex(v + 53, 2, &z2);
		if (ok && !z1) {
			memcpy(out, v, 55);
			hex_id(g, out + 36, 8);
			out[55] = '\0';
			return;
		}
	}
	memcpy(out, "00-", 3);
	hex_id(g, out + 3, 16);
	out[35] = '-';
	hex_id(g, out + 36, 8);
	memcpy(out + 52, "-01", 4);
}
