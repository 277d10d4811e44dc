/*
 * account.c - recording what every request cost; see account.h.
 *
 * Everything here runs once per request, on the loop thread, and costs a
 * few histogram records (a clz, a shift and an add each) and, with an access
 * log, one formatted line appended to a buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/backend.h"
#include "gateway/account.h"
#include "gateway/conn.h"
#include "gateway/server.h"
#include "queue/tenant.h"

const char *const gw_qout_names[GW_QOUT_COUNT] = { "dispatched", "timeout", "cancelled", "rejected" };

#define NSTATUS 500	/* codes 100..599 */

static int tenant_acct_init(const struct gw_account *a, struct gw_tenant_acct *ta, bool histograms)
{
	ta->gpu_ns = calloc(a->npools ? a->npools : 1, sizeof(*ta->gpu_ns));
	if (ta->gpu_ns == NULL)
		return -ENOMEM;
	if (histograms) {
		ta->duration = calloc(CONF_CLASS_COUNT, sizeof(*ta->duration));
		if (ta->duration == NULL)
			return -ENOMEM;
		for (int k = 0; k < CONF_CLASS_COUNT; k++)
			gw_hist_init(&ta->duration[k]);
	}
	return 0;
}

static void tenant_acct_finish(struct gw_tenant_acct *ta)
{
	free(ta->gpu_ns);
	free(ta->duration);
	ta->gpu_ns = NULL;
	ta->duration = NULL;
}

/* The [class][pool + none] histograms for npools pools, initialised; NULL
 * when out of memory. */
static struct gw_cp_hists *cp_hists_create(size_t npools)
{
	size_t n = CONF_CLASS_COUNT * (npools + 1);
	struct gw_cp_hists *v = calloc(n, sizeof(*v));
	for (size_t i = 0; v != NULL && i < n; i++) {
		gw_hist_init(&v[i].ttfb);
		gw_hist_init(&v[i].upstream);
		gw_hist_init(&v[i].request);
		gw_hist_init(&v[i].ttft);
		gw_hist_init(&v[i].itl);
		gw_hist_init(&v[i].otokens);
	}
	return v;
}

int gw__account_init(struct gw_account *a, const struct conf *c, size_t ntenants, uv_loop_t *loop)
{
	memset(a, 0, sizeof(*a));
	a->conf = c;
	a->npools = c->npools;
	a->ntenants = ntenants;
	a->histograms = c->metrics.histograms;
	a->cp = cp_hists_create(a->npools);
	a->codes = calloc((CONF_CLASS_COUNT + 1) * (a->npools + 1) * NSTATUS, sizeof(*a->codes));
	a->tenants = calloc(ntenants ? ntenants : 1, sizeof(*a->tenants));
	if (!a->cp || !a->codes || !a->tenants) {
		gw__account_finish(a);
		return -ENOMEM;
	}
	for (int k = 0; k < CONF_CLASS_COUNT; k++) {
		for (int o = 0; o < GW_QOUT_COUNT; o++)
			gw_hist_init(&a->queue_wait[k][o]);
		gw_hist_init(&a->window[k][0]);
		gw_hist_init(&a->window[k][1]);
		gw_hist_init(&a->served[k][0]);
		gw_hist_init(&a->served[k][1]);
	}
	for (size_t t = 0; t < ntenants; t++) {
		if (tenant_acct_init(a, &a->tenants[t], c->metrics.tenant_histograms) < 0) {
			gw__account_finish(a);
			return -ENOMEM;
		}
	}
	a->window_start_ms = uv_now(loop);
	return gw__alog_open(&a->alog, loop, c->access_log);
}

static bool same_path(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int gw__account_prepare(struct gw_account *a, const struct conf *c, uv_loop_t *loop,
		       struct gw_alog *fresh, bool *reopen)
{
	*reopen = !a->alog.writing;
	if (!*reopen)
		return same_path(a->conf->access_log, c->access_log) ? 0 : -EBUSY;
	return gw__alog_open(fresh, loop, c->access_log);
}

void gw__account_commit(struct gw_account *a, const struct conf *c, struct gw_alog *fresh, bool reopen)
{
	if (reopen) {
		gw__alog_close(&a->alog);	/* what is buffered goes to the old file */
		a->alog = *fresh;
	}
	a->conf = c;
	a->histograms = c->metrics.histograms;
}

int gw__account_tenants_prepare(const struct gw_account *a, const size_t *from, size_t n,
				struct gw_account_tenants *fresh)
{
	fresh->n = n;
	fresh->v = calloc(n ? n : 1, sizeof(*fresh->v));
	if (fresh->v == NULL)
		return -ENOMEM;
	/* metrics.tenant_histograms cannot change in a reload (server.c) */
	bool histograms = a->conf->metrics.tenant_histograms;
	for (size_t i = 0; i < n; i++) {
		if (from[i] == QUEUE_TENANT_NEW && tenant_acct_init(a, &fresh->v[i], histograms) < 0) {
			gw__account_tenants_discard(fresh);
			return -ENOMEM;
		}
	}
	return 0;
}

void gw__account_tenants_discard(struct gw_account_tenants *fresh)
{
	for (size_t i = 0; fresh->v != NULL && i < fresh->n; i++)
		tenant_acct_finish(&fresh->v[i]);
	free(fresh->v);
	fresh->v = NULL;
	fresh->n = 0;
}

void gw__account_tenants_commit(struct gw_account *a, const size_t *from, struct gw_account_tenants *fresh)
{
	for (size_t i = 0; i < fresh->n; i++) {
		if (from[i] == QUEUE_TENANT_NEW)
			continue;
		fresh->v[i] = a->tenants[from[i]];
		a->tenants[from[i]] = (struct gw_tenant_acct){ 0 };
	}
	for (size_t t = 0; t < a->ntenants; t++)
		tenant_acct_finish(&a->tenants[t]);	/* what is left: the removed tenants' */
	free(a->tenants);
	a->tenants = fresh->v;
	a->ntenants = fresh->n;
	fresh->v = NULL;
	fresh->n = 0;
}

void gw__account_pools_discard(struct gw_account_pools *fresh)
{
	free(fresh->cp);
	free(fresh->codes);
	for (size_t t = 0; fresh->gpu_ns != NULL && t < fresh->ntenants; t++)
		free(fresh->gpu_ns[t]);
	free(fresh->gpu_ns);
	memset(fresh, 0, sizeof(*fresh));
}

int gw__account_pools_prepare(const struct gw_account *a, size_t npools, size_t ntenants,
			      struct gw_account_pools *fresh)
{
	(void)a;
	memset(fresh, 0, sizeof(*fresh));
	fresh->npools = npools;
	fresh->ntenants = ntenants;
	fresh->cp = cp_hists_create(npools);
	fresh->codes = calloc((CONF_CLASS_COUNT + 1) * (npools + 1) * NSTATUS, sizeof(*fresh->codes));
	fresh->gpu_ns = calloc(ntenants ? ntenants : 1, sizeof(*fresh->gpu_ns));
	bool ok = fresh->cp && fresh->codes && fresh->gpu_ns;
	for (size_t t = 0; ok && t < ntenants; t++)
		ok = (fresh->gpu_ns[t] = calloc(npools ? npools : 1, sizeof(**fresh->gpu_ns))) != NULL;
	if (!ok) {
		gw__account_pools_discard(fresh);
		return -ENOMEM;
	}
	return 0;
}

void gw__account_pools_commit(struct gw_account *a, const size_t *from, struct gw_account_pools *fresh)
{
	size_t n = fresh->npools, was = a->npools;
	/* Column i of the new arrays is column from[i] of the old ones; the
	 * last column, pool "none", stays the last. */
	for (int k = 0; k <= CONF_CLASS_COUNT; k++) {
		for (size_t i = 0; i <= n; i++) {
			size_t o = i == n ? was : from[i];
			if (o == CONF_POOL_NEW)
				continue;
			memcpy(&fresh->codes[((size_t)k * (n + 1) + i) * NSTATUS],
			       &a->codes[((size_t)k * (was + 1) + o) * NSTATUS], NSTATUS * sizeof(*a->codes));
			if (k == CONF_CLASS_COUNT)
				continue;
			fresh->cp[(size_t)k * (n + 1) + i] = a->cp[(size_t)k * (was + 1) + o];
		}
	}
	for (size_t t = 0; t < a->ntenants && t < fresh->ntenants; t++) {
		for (size_t i = 0; i < n; i++)
			if (from[i] != CONF_POOL_NEW)
				fresh->gpu_ns[t][i] = a->tenants[t].gpu_ns[from[i]];
		free(a->tenants[t].gpu_ns);
		a->tenants[t].gpu_ns = fresh->gpu_ns[t];
		fresh->gpu_ns[t] = NULL;
	}
	free(a->cp);
	free(a->codes);
	a->cp = fresh->cp;
	a->codes = fresh->codes;
	a->npools = n;
	fresh->cp = NULL;
	fresh->codes = NULL;
	gw__account_pools_discard(fresh);
}

void gw__account_finish(struct gw_account *a)
{
	gw__alog_close(&a->alog);
	gw_buf_finish(&a->line);
	for (size_t t = 0; a->tenants != NULL && t < a->ntenants; t++)
		tenant_acct_finish(&a->tenants[t]);
	free(a->tenants);
	free(a->cp);
	free(a->codes);
	memset(a, 0, sizeof(*a));
	a->alog.fd = -1;
}

void gw__account_tick(struct gw_account *a, uint64_t now_ms)
{
	if (now_ms - a->window_start_ms >= GW_ACCOUNT_WINDOW_MS) {
		a->window_cur ^= 1;
		for (int k = 0; k < CONF_CLASS_COUNT; k++) {
			gw_hist_reset(&a->window[k][a->window_cur]);
			gw_hist_reset(&a->served[k][a->window_cur]);
		}
		a->window_start_ms = now_ms;
	}
	gw__alog_flush(&a->alog);
}

void gw__account_queue(struct gw_account *a, enum conf_class k, enum gw_qout out, uint64_t wait_ns)
{
	if (a->histograms)
		gw_hist_record(&a->queue_wait[k][out], wait_ns);
}

static uint64_t span(uint64_t from, uint64_t to)
{
	return to > from && from != 0 ? to - from : 0;
}

#define APPEND_LIT(b, lit) gw_buf_append((b), (lit), sizeof(lit) - 1)

static int append_str_or_null(struct gw_buf *b, const char *s)
{
	return s ? gw_buf_append_json(b, s, strlen(s)) : APPEND_LIT(b, "null");
}

/* "2026-11-23T11:30:45.123Z": the part up to the second is formatted once a
 * second, not once a line. */
static int append_time(struct gw_account *a, struct gw_buf *b)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != a->stamp_sec) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		strftime(a->stamp, sizeof(a->stamp), "%Y-%m-%dT%H:%M:%S.", &tm);
		a->stamp_sec = ts.tv_sec;
	}
	long msec = ts.tv_nsec / 1000000;
	char tail[5] = { (char)('0' + msec / 100), (char)('0' + msec / 10 % 10), (char)('0' + msec % 10), 'Z', '"' };
	int rc = gw_buf_append(b, a->stamp, strlen(a->stamp));
	return rc | gw_buf_append(b, tail, sizeof(tail));
}

/* One JSON line; strings that come from the client are escaped. */
static void log_line(struct gw_account *a, struct gw_conn *c, uint64_t t_end)
{
	const struct gw_reqrec *r = &c->rec;
	const struct gw_msg *m = &c->http.msg;
	struct gw_buf *b = &a->line;
	b->len = 0;
	const char *path = m->head.data ? gw_msg_start(m) : "";
	size_t plen = m->head.data ? m->start_len : 0;
	const char *q = memchr(path, '?', plen);	/* query strings may hold secrets */
	if (q != NULL)
		plen = (size_t)(q - path);
	int rc = APPEND_LIT(b, "{\"time\":\"");
	rc |= append_time(a, b);
	rc |= APPEND_LIT(b, ",\"request_id\":");
	rc |= gw_buf_append_json(b, c->request_id, strlen(c->request_id));
	rc |= APPEND_LIT(b, ",\"tenant\":");
	rc |= append_str_or_null(b, c->classified ? c->qi.tenant->cfg->name : NULL);
	rc |= APPEND_LIT(b, ",\"class\":");
	rc |= append_str_or_null(b, c->classified ? conf_class_name((enum conf_class)c->qi.klass) : NULL);
	rc |= APPEND_LIT(b, ",\"pool\":");
	rc |= append_str_or_null(b, r->pool ? r->pool->cfg->name : NULL);
	rc |= APPEND_LIT(b, ",\"backend\":");
	rc |= append_str_or_null(b, r->pool ? r->backend : NULL);
	rc |= APPEND_LIT(b, ",\"retries\":");
	rc |= gw_buf_append_u64(b, r->retries);
	rc |= APPEND_LIT(b, ",\"method\":");
	rc |= append_str_or_null(b, m->head.data ? llhttp_method_name(m->method) : NULL);
	rc |= APPEND_LIT(b, ",\"path\":");
	rc |= gw_buf_append_json(b, path, plen);
	rc |= APPEND_LIT(b, ",\"status\":");
	rc |= gw_buf_append_u64(b, r->status);
	rc |= APPEND_LIT(b, ",\"reject_reason\":");
	rc |= append_str_or_null(b, r->reason < GW_R_COUNT ? gw_reason_info(r->reason)->code : NULL);
	rc |= APPEND_LIT(b, ",\"queue_ms\":");
	rc |= gw_buf_append_ms(b, r->t_dispatch ? span(r->t_ready, r->t_dispatch) : span(r->t_ready, t_end));
	rc |= APPEND_LIT(b, ",\"ttfb_ms\":");
	rc |= gw_buf_append_ms(b, span(r->t_start, r->t_first_byte));
	rc |= APPEND_LIT(b, ",\"upstream_ms\":");
	rc |= gw_buf_append_ms(b, span(r->t_dispatch, r->t_upstream_end));
	rc |= APPEND_LIT(b, ",\"total_ms\":");
	rc |= gw_buf_append_ms(b, span(r->t_start, t_end));
	rc |= APPEND_LIT(b, ",\"bytes_in\":");
	rc |= gw_buf_append_u64(b, r->bytes_in);
	rc |= APPEND_LIT(b, ",\"bytes_out\":");
	rc |= gw_buf_append_u64(b, r->bytes_out);
	rc |= APPEND_LIT(b, ",\"tokens_estimated\":");
	rc |= gw_buf_append_u64(b, (uint64_t)(r->tokens_estimated + 0.5));
	rc |= APPEND_LIT(b, ",\"tokens_reported\":");
	rc |= r->tokens_reported >= 0 ? gw_buf_append_u64(b, (uint64_t)r->tokens_reported) : APPEND_LIT(b, "null");
	rc |= APPEND_LIT(b, ",\"traceparent\":\"");
	rc |= gw_buf_append(b, r->traceparent, strlen(r->traceparent));
	rc |= APPEND_LIT(b, "\",\"peer\":\"");
	rc |= gw_buf_appends(b, gw__conn_peer(c));
	rc |= APPEND_LIT(b, "\"}\n");
	if (rc != 0) {
		a->alog.dropped++;
		return;
	}
	gw__alog_append(&a->alog, b->data, b->len);
}

void gw__account_token(struct gw_account *a, struct gw_conn *c, uint64_t now)
{
	struct gw_reqrec *r = &c->rec;
	uint64_t last = r->t_last_token;
	r->t_last_token = now;
	if (r->t_first_token == 0)
		r->t_first_token = now;
	if (last == 0 || !a->histograms || !c->classified || r->pool == NULL ||
	    r->pool->index == BACKEND_POOL_RETIRED || r->pool->index >= a->npools)
		return;
	gw_hist_record(&a->cp[gw__account_cp(a, c->qi.klass, r->pool->index)].itl, now - last);
}

void gw__account_end(struct gw_account *a, struct gw_conn *c)
{
	struct gw_reqrec *r = &c->rec;
	if (!r->active)
		return;
	r->active = false;
	uint64_t t_end = uv_hrtime();
	int k = c->classified ? c->qi.klass : CONF_CLASS_COUNT;
	size_t pool = r->pool ? r->pool->index : a->npools;
	/* A pool a reload removed left /metrics with its series: its last
	 * requests count everywhere else (rejections, the access log). */
	bool pool_gone = pool == BACKEND_POOL_RETIRED;
	if (r->status >= 100 && r->status < 600 && !pool_gone)
		a->codes[((size_t)k * (a->npools + 1) + pool) * NSTATUS + (r->status - 100)]++;
	if (r->reason < GW_R_COUNT)
		a->rejections[k][r->reason]++;
	if (c->classified) {
		/* A tenant a reload removed has no counters any more (index
		 * QUEUE_TENANT_RETIRED): its last requests count everywhere else. */
		size_t ti = c->qi.tenant->index;
		struct gw_tenant_acct *ta = ti < a->ntenants ? &a->tenants[ti] : NULL;
		if (ta != NULL) {
			ta->requests[k]++;
			if (r->reason < GW_R_COUNT)
				ta->rejections[r->reason]++;
			ta->tokens_estimated += r->tokens_estimated;
			if (r->tokens_reported >= 0)
				ta->tokens_reported += r->tokens_reported;
			if (r->pool && !pool_gone && r->t_upstream_end > r->t_dispatch)
				ta->gpu_ns[pool] += r->t_upstream_end - r->t_dispatch;
		}
		if (a->histograms && !pool_gone) {
			struct gw_cp_hists *h = &a->cp[gw__account_cp(a, k, pool)];
			uint64_t total = t_end - r->t_start;
			if (r->t_first_byte)
				gw_hist_record(&h->ttfb, r->t_first_byte - r->t_start);
			if (r->pool && r->t_upstream_end > r->t_dispatch)
				gw_hist_record(&h->upstream, r->t_upstream_end - r->t_dispatch);
			gw_hist_record(&h->request, total);
			if (r->t_first_token)
				gw_hist_record(&h->ttft, r->t_first_token - r->t_start);
			if (r->tokens_output >= 0)
				gw_hist_record(&h->otokens, (uint64_t)r->tokens_output);
			gw_hist_record(&a->window[k][a->window_cur], total);
			if (r->pool && r->reason >= GW_R_COUNT)
				gw_hist_record(&a->served[k][a->window_cur], total);
			if (ta != NULL && ta->duration != NULL)
				gw_hist_record(&ta->duration[k], total);
		}
	}
	if (a->alog.fd >= 0)
		log_line(a, c, t_end);
}
