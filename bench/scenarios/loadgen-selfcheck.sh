#!/bin/bash
# shellcheck disable=SC2154 # *_port are set by start_gpusim through eval
# loadgen-selfcheck: does loadgen measure what it claims, and is it fast
# enough not to be the bottleneck?
#
#  1. gpusim with an exact service time (no prefill, every decode step a flat
#     2.5 ms, so max_tokens=20 takes 50 ms), driven open loop at a modest
#     Poisson rate, plain JSON and SSE: loadgen's p50 against the configured
#     service time (issue target: within 5%), and against one request timed
#     by curl.  gpusim only starts a sequence on a step boundary, so a
#     request that arrives while steps are running waits up to one step
#     (2.5 ms, 1.25 ms on average) on top of the 50 ms.
#  2. gpusim --zero (answers at once) at a high fixed rate: what is left is
#     loadgen's own latency plus the loopback round trip, and the schedule
#     lag shows how late loadgen sent.  The timer wake-up latency of the
#     machine itself is the floor under both.
#
#   bench/scenarios/loadgen-selfcheck.sh [SECONDS] [RATE] [ZERO_RATE]
#
# Exits non-zero only when it cannot run; targets are for people to judge.
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-10}
RATE=${2:-50}
ZRATE=${3:-2000}
LOADGEN=$BUILD/bench/loadgen
[ -x "$LOADGEN" ] || die "no $LOADGEN: build first (meson setup build && ninja -C build)"
[ -x "$BUILD/bench/gpusim" ] || die "no $BUILD/bench/gpusim: build first"
need python3

STEP_MS=2.5
TOKENS=20
start_gpusim exact --prefill-min-ms 0 --prefill-per-ktok-ms 0 --step-base-ms "$STEP_MS" \
	--step-per-seq-ms 0 --step-per-kctx-ms 0 --step-per-seq-kctx-ms 0 --stream-overhead-ms 0
start_gpusim zero --zero
SERVICE_MS=$(awk -v s="$STEP_MS" -v n="$TOKENS" 'BEGIN { printf "%.3f", s * n }')

# One request on an idle gpusim, timed by curl, as a second opinion.
CURL_MS=-
if command -v curl >/dev/null 2>&1; then
	CURL_MS=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$exact_port/v1/completions" \
		-H 'content-type: application/json' \
		-d "{\"prompt\":\"tok \",\"prompt_tokens\":1,\"max_tokens\":$TOKENS}" |
		awk '{ printf "%.3f", $1 * 1000 }')
fi

# run NAME ARGS...: loadgen with its JSON in $WORK/NAME.json and its CPU
# seconds (user + system) in $WORK/NAME.cpu
run() {
	name=$1
	shift
	TIMEFORMAT='%U %S'
	{ time "$LOADGEN" --json "$WORK/$name.json" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"; } \
		2>"$WORK/$name.cpu" || die "loadgen failed: $(cat "$WORK/$name.err")"
}

run exact --target "127.0.0.1:$exact_port" --duration "$DUR" --warmup 1 --seed 7 \
	--stream "name=json,rate=$RATE,prompt_tokens=1,max_tokens=$TOKENS" \
	--stream "name=sse,rate=$RATE,prompt_tokens=1,max_tokens=$TOKENS,stream=1"
run zero --target "127.0.0.1:$zero_port" --duration "$DUR" --warmup 1 \
	--stream "name=zero,rate=$ZRATE,arrival=fixed,prompt_tokens=1,max_tokens=$TOKENS"

echo "loadgen-selfcheck: ${DUR} s per run after 1 s warmup, $(nproc) cores, loadgen and gpusim on loopback"
echo
cat "$WORK/exact.out"
echo
cat "$WORK/zero.out"
echo
python3 - "$WORK" "$SERVICE_MS" "$CURL_MS" "$DUR" "$TOKENS" <<'PY'
import json, sys
work, service, curl, dur, tokens = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])

def load(name):
    with open(f"{work}/{name}.json") as f:
        d = json.load(f)
    with open(f"{work}/{name}.cpu") as f:
        u, s = (float(x) for x in f.read().split())
    return d, (u + s) / d["run"]["elapsed_s"] * 100

def counts(s):
    return (f"sent {s['sent']} ok {s['ok']} 429 {s['rejected_429']} other {s['other_status']} "
            f"err {s['errors']} dropped {s['dropped']} unfinished {s['unfinished']}")

exact, cpu = load("exact")
print(f"1. exact service time: {service:.3f} ms configured (max_tokens={tokens} x 2.5 ms steps, no prefill)"
      + (f"; one idle request timed by curl: {curl} ms" if curl != "-" else ""))
for s in exact["streams"]:
    lat, ttfb = s["latency_ms"], s["ttfb_ms"]
    if lat["count"] == 0:
        print(f"   {s['name']}: no successful responses ({counts(s)})")
        continue
    ratio = lat["p50"] / service
    verdict = "within 5%" if abs(ratio - 1) <= 0.05 else "OUTSIDE 5%"
    per = s["output_tokens"] / s["ok"] if s["ok"] else 0
    print(f"   {s['name']:4} {s['config']['rate']:g} req/s poisson: p50 {lat['p50']:.3f} ms = {ratio:.4f} x service "
          f"({verdict}); mean {lat['mean']:.3f} ms = {lat['mean'] / service:.4f} x; p99 {lat['p99']:.3f} ms; "
          f"TTFB p50 {ttfb['p50']:.3f} ms; {per:.1f} tokens/response")
    print(f"        {counts(s)}; {s['ok_rps']:.2f} ok/s")
print(f"   loadgen CPU: {cpu:.1f}% of one core")

zero, cpu = load("zero")
s = zero["streams"][0]
lat, lag = s["latency_ms"], zero["run"]["schedule_lag_ms"]
print(f"2. gpusim --zero at {s['config']['rate']:g} req/s fixed: latency p50 {lat['p50']:.3f} ms, "
      f"p99 {lat['p99']:.3f} ms, max {lat['max']:.3f} ms")
print(f"   schedule lag p50 {lag['p50']:.3f} ms, p99 {lag['p99']:.3f} ms, max {lag['max']:.3f} ms; "
      f"{s['ok_rps']:.1f} ok/s; loadgen CPU {cpu:.1f}% of one core")
print(f"   {counts(s)}")
PY
