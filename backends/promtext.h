/*
 * promtext.h - the few gauges sluice reads from a vLLM server's /metrics.
 *
 * vLLM exposes Prometheus' text format (version 0.0.4).  sluice needs three
 * gauges of it, summed over their label sets (one per model_name, and per
 * engine when a server runs several):
 *
 *   vllm:num_requests_running    requests in the running batch
 *   vllm:num_requests_waiting    requests queued inside the server
 *   vllm:kv_cache_usage_perc     KV cache usage, 0..1 (averaged, not summed,
 *                                over label sets; older servers call it
 *                                vllm:gpu_cache_usage_perc)
 *
 * The parser is hand-written: Debian packages no C library that parses the
 * exposition format (the C Prometheus clients only write it), and three
 * gauges do not justify one.  It is bounded (it reads at most
 * BACKEND_PROMTEXT_MAX bytes, each line at most once, no allocation, no
 * recursion), never trusts the input to be NUL-terminated, and is fuzzed
 * (tests/fuzz/fuzz_promtext.c).
 */
#ifndef SLUICE_BACKENDS_PROMTEXT_H
#define SLUICE_BACKENDS_PROMTEXT_H

#include <stddef.h>

#include "backends/adapt.h"

/* The largest /metrics body sluice reads: a vLLM server with a few models
 * writes well under 100 KiB (most of it histogram buckets). */
#define BACKEND_PROMTEXT_MAX (1u << 20)

/*
 * Read the gauges from text[0..len) (bytes past BACKEND_PROMTEXT_MAX are
 * ignored).  Samples whose value is not a finite number >= 0 are skipped,
 * as are lines that do not parse.  Returns 0 when both request gauges were
 * found (out->kv_usage is -1 when the KV gauge was not), -ENOENT when one of
 * them was not (*out is then unspecified).
 */
int backend_promtext_vllm(const char *text, size_t len, struct backend_vllm_load *out);

#endif
