#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# adaptive-slots: max_inflight set wrong, with slots.adapt on, against the
# value tuned by hand.
#
# One elastic slice: gpusim with a 64-sequence batch (calibrated H100
# defaults).  Interactive: open loop, 10 req/s, prompt 128, 16 output
# tokens, streamed (loadgen's ttfb of a stream is its time to first token).
# Flood: 256 closed-loop opportunistic clients, prompt 512, 64 to 192
# output tokens (drawn per request): four times the batch, so that whoever
# holds the queue decides who runs next.  Opportunistic may hold at most 3/4 of the pool's slots
# (max_slot_share 0.75), the rest is the interactive class's headroom; that
# share is of the slots sluice believes the backend has, which is the point.
# Five cases, each a fresh sluice and the same load; the measured window
# begins after WARM seconds of it (8), in which the adaptation settles (its
# slots are sampled every 0.5 s meanwhile, and the settling time printed):
#   hand-tuned   max_inflight 64, slots.adapt off
#   8x high      max_inflight 512, off           (the queue moves into gpusim)
#   4x low       max_inflight 16, off            (the batch starves)
#   8x high+vllm max_inflight 512, adapt: vllm_metrics
#   4x low+vllm  max_inflight 16, adapt: vllm_metrics
# Targets (issue 14): with adapt on, interactive TTFT p99 within 1.2x of
# hand-tuned and flood throughput >= 0.95x of it, in both cases.
#
# FLOOD_TOKENS: the flood's max_tokens, a range drawn per request (64-192)
# or one number.  With one number every flood request is the same: those
# started together end together, so a slice whose slots were right from the
# start keeps admitting them in waves of few, large prefills, which a batch
# job's mixed lengths do not (bench/RESULTS.md has both).
#
#   bench/scenarios/adaptive-slots.sh [SECONDS_PER_CASE]
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-20}
WARM=${WARM:-8}
start_gpusim spot --slots 64

# sluice_conf FILE MAX_INFLIGHT ADAPT
sluice_conf() {
	chat_batch_conf "\
  interactive:   { max_queue: 256,  max_wait_ms: 5000,   pools: [spot] }
  opportunistic: { max_queue: 8192, max_wait_ms: 600000, pools: [spot], max_slot_share: 0.75 }" \
		"$(slice_pool spot elastic "$spot_port" "$2" "slots: { adapt: $3, min: 2, max: 1024, interval_ms: 250ms }")" >"$1"
}

INTER="name=inter,rate=10,prompt_tokens=128,max_tokens=16,stream=1,key=sk-chat"
FLOOD_TOKENS=${FLOOD_TOKENS:-64-192}
FLOOD="name=flood,concurrency=256,prompt_tokens=512,max_tokens=$FLOOD_TOKENS,key=sk-batch"
waiting() { curl -s "http://127.0.0.1:$spot_port/metrics" | sed -n 's/^vllm:num_requests_waiting{.*} //p'; }
prefills() { curl -s "http://127.0.0.1:$spot_port/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["prefills"])'; }
running() { curl -s "http://127.0.0.1:$spot_port/metrics" | sed -n 's/^vllm:num_requests_running{.*} //p'; }
slots() { curl -s "http://127.0.0.1:$1/metrics" | sed -n 's/^sluice_backend_slots{.*} //p'; }

echo "adaptive-slots: ${DUR}s per case, $(nproc) cores; gpusim batch 64; interactive 10 req/s"
echo "(prompt 128, 16 tokens, SSE); flood 256 clients (prompt 512, $FLOOD_TOKENS tokens), opportunistic"
echo "max_slot_share 0.75; slots.adapt interval_ms 250"
echo

# case NAME MAX_INFLIGHT ADAPT: one run; gpusim's queue and sluice's slots
# sampled once a second in the measured window.
case_run() {
	sluice_conf "$WORK/$1.yaml" "$2" "$3"
	start_sluice "$1" "$WORK/$1.yaml"
	"$LOADGEN" -t "127.0.0.1:$(eval echo "\$${1}_port")" -d "$DUR" -w "$WARM" -g 10 -j "$WORK/$1.json" \
		-S "$INTER" -S "$FLOOD" >"$WORK/$1.txt" 2>&1 &
	lg=$!
	# The warmup: sluice's slots every half second, to time the settling.
	ramp=""
	for _ in $(seq 1 $((2 * WARM))); do
		ramp="$ramp $(slots "$(eval echo "\$${1}_admin")")"
		sleep 0.5
	done
	echo "$ramp" >"$WORK/$1.ramp"
	sleep 1
	w="" s="" r=""
	p0=$(prefills) t0=$(date +%s.%N)
	for _ in $(seq 1 $((DUR - 2))); do
		w="$w $(waiting)"
		r="$r $(running)"
		s="$s $(slots "$(eval echo "\$${1}_admin")")"
		sleep 1
	done
	echo "$p0 $(prefills) $(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$t0" "$(date +%s.%N)")" \
		>"$WORK/$1.prefills"
	wait $lg || die "case $1 failed: $(cat "$WORK/$1.txt")"
	echo "$w" >"$WORK/$1.waiting"
	echo "$r" >"$WORK/$1.running"
	echo "$s" >"$WORK/$1.slots"
	stop_pid "$(eval echo "\$${1}_pid")"
}

case_run tuned 64 off
case_run high 512 off
case_run low 16 off
case_run high_vllm 512 vllm_metrics
case_run low_vllm 16 vllm_metrics

$REPORT header
for c in tuned high low high_vllm low_vllm; do
	$REPORT row "$c: interactive" "$WORK/$c.json" inter
	$REPORT row "$c: flood" "$WORK/$c.json" flood
done
echo

python3 - "$WORK" <<'PY'
import json, statistics, sys
work = sys.argv[1]
def get(case, stream, path):
    with open(f"{work}/{case}.json") as f:
        s = next(x for x in json.load(f)["streams"] if x["name"] == stream)
    for p in path.split("."):
        s = s[p]
    return s
def nums(case, what):
    return [float(x) for x in open(f"{work}/{case}.{what}").read().split()]
t0 = get("tuned", "inter", "ttfb_ms.p99")
f0 = get("tuned", "flood", "output_tokens_per_s")
print(f"{'case':<12} {'TTFT p99 ms':>11} {'vs tuned':>8} {'flood tok/s':>11} {'vs tuned':>8} "
      f"{'gpusim running':>14} {'waiting (mean)':>14} {'prefills/s':>10} {'slots (min..max, last)':>22}")
for c in ["tuned", "high", "low", "high_vllm", "low_vllm"]:
    t = get(c, "inter", "ttfb_ms.p99")
    f = get(c, "flood", "output_tokens_per_s")
    w = nums(c, "waiting")
    s = nums(c, "slots")
    print(f"{c:<12} {t:>11.1f} {t / t0:>7.2f}x {f:>11.0f} {f / f0:>7.2f}x "
          f"{statistics.mean(nums(c, 'running')):>14.1f} {statistics.mean(w):>14.1f} "
          f"{(nums(c, 'prefills')[1] - nums(c, 'prefills')[0]) / nums(c, 'prefills')[2]:>10.1f} "
          f"{f'{min(s):.0f}..{max(s):.0f}, {s[-1]:.0f}':>22}")
for c in ["high_vllm", "low_vllm"]:
    r = nums(c, "ramp")
    late = [i for i, v in enumerate(r) if not 56 <= v <= 72]
    when = "never" if late and late[-1] == len(r) - 1 else f"{(late[-1] + 1 if late else 0) * 0.5:.1f} s"
    print(f"{c}: slots during the warmup, every 0.5 s: {' '.join(f'{v:.0f}' for v in r)}; "
          f"within 64 +- 8 from {when}")
for c, label in (("high_vllm", "8x too high"), ("low_vllm", "4x too low")):
    t = get(c, "inter", "ttfb_ms.p99") / t0
    f = get(c, "flood", "output_tokens_per_s") / f0
    print(f"{label}, adapt vllm_metrics: TTFT p99 {t:.2f}x (target <= 1.2) "
          f"{'met' if t <= 1.2 else 'MISSED'}, flood throughput {f:.2f}x (target >= 0.95) "
          f"{'met' if f >= 0.95 else 'MISSED'}")
PY
