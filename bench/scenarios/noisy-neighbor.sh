#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# noisy-neighbor: interactive traffic against an opportunistic flood.
#
# A reserved slice (gold, 4 slots) and an elastic slice (spot, 64 slots),
# both gpusim with the calibrated H100 defaults.  Interactive: open loop,
# 20 req/s, prompt 128 tokens, 16 output tokens, streamed.  Flood: 64
# closed-loop clients, prompt 1024, 256 output tokens (more than the elastic
# slots it may hold, so they stay busy).  In one run it measures:
#   1. interactive alone and under the flood, through sluice;
#   2. the same traffic sent straight to one shared slice, and through a plain
#      round-robin proxy (nginx) over both slices, for scale;
#   3. the flood's use of the elastic slots (busy slot-seconds over the slots
#      it may hold) and its token rate against the same flood alone on spot;
#   4. an interactive burst at 2x what the reserved slice serves, during the
#      flood, with spill-over to spot and with spill-over disabled.
#
#   bench/scenarios/noisy-neighbor.sh [SECONDS_PER_PHASE]
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-15}
"$ROOT/scripts/setup.sh" --bench >/dev/null
need nginx

start_gpusim gold --slots 4
start_gpusim spot --slots 64

# sluice_conf FILE INTERACTIVE_POOLS
sluice_conf() {
	chat_batch_conf "\
  interactive:   { max_queue: 256,  max_wait_ms: 250,    pools: [$2] }
  standard:      { max_queue: 2048, max_wait_ms: 5000,   pools: [spot] }
  opportunistic: { max_queue: 8192, max_wait_ms: 600000, pools: [spot], min_share: 0.05, max_slot_share: 0.75 }" \
		"$(slice_pool gold reserved "$gold_port" 4; slice_pool spot elastic "$spot_port" 64)" >"$1"
}
sluice_conf "$WORK/spill.yaml" "gold, spot"
sluice_conf "$WORK/nospill.yaml" "gold"
start_sluice sl "$WORK/spill.yaml"
start_nginx rr "127.0.0.1:$gold_port" "127.0.0.1:$spot_port"

INTER="name=inter,rate=20,prompt_tokens=128,max_tokens=16,stream=1,key=sk-chat"
FLOOD="name=flood,concurrency=64,prompt_tokens=1024,max_tokens=256,key=sk-batch"
busy() { curl -s "http://127.0.0.1:$1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["busy_slot_seconds"])'; }


echo "noisy-neighbor: ${DUR}s per phase, $(nproc) cores; interactive 20 req/s (prompt 128, 16 tokens, SSE);"
echo "flood 64 clients (prompt 1024, 256 tokens); gold 4 slots reserved, spot 64 slots elastic,"
echo "opportunistic max_slot_share 0.75 (48 slots), interactive max_wait_ms 250"
echo

run_loadgen sl_alone "$sl_port" "$INTER"
# Occupancy is sampled inside the measured window only: the warmup ramp and
# the drain after the last request are not the steady state.
run_loadgen sl_flood "$sl_port" "$INTER" "$FLOOD" &
lg=$!
sleep 3
b0=$(busy "$spot_port")
t0=$(date +%s.%N)
sleep $((DUR - 2))
b1=$(busy "$spot_port")
t1=$(date +%s.%N)
wait $lg || die "flood phase failed"
run_loadgen spot_flood_alone "$spot_port" "${FLOOD/key=sk-batch,/}"
run_loadgen direct_alone "$spot_port" "$INTER"
run_loadgen direct_flood "$spot_port" "$INTER" "${FLOOD/key=sk-batch,/}"
run_loadgen rr_alone "$rr_port" "$INTER"
run_loadgen rr_flood "$rr_port" "$INTER" "${FLOOD/key=sk-batch,/}"
# Burst: 2x what gold serves.  Gold's 4 slots at ~50 ms per request serve
# ~80 req/s; the burst sends 160 req/s for the phase, during the flood.
BURST="name=burst,rate=160,prompt_tokens=128,max_tokens=16,stream=1,key=sk-chat,max_conns=400"
run_loadgen burst_spill "$sl_port" "$BURST" "$FLOOD"
stop_pid "$sl_pid"
start_sluice sl2 "$WORK/nospill.yaml"
run_loadgen burst_nospill "$sl2_port" "$BURST" "$FLOOD"

$REPORT header
$REPORT row "sluice: interactive alone" "$WORK/sl_alone.json" inter
$REPORT row "sluice: interactive + flood" "$WORK/sl_flood.json" inter
$REPORT row "sluice: flood" "$WORK/sl_flood.json" flood
$REPORT row "direct one slice: alone" "$WORK/direct_alone.json" inter
$REPORT row "direct one slice: + flood" "$WORK/direct_flood.json" inter
$REPORT row "round-robin nginx: alone" "$WORK/rr_alone.json" inter
$REPORT row "round-robin nginx: + flood" "$WORK/rr_flood.json" inter
$REPORT row "flood alone on spot (64 slots)" "$WORK/spot_flood_alone.json" flood
$REPORT row "burst 160/s, spill-over" "$WORK/burst_spill.json" burst
$REPORT row "burst 160/s, no spill-over" "$WORK/burst_nospill.json" burst
echo

p99() { $REPORT get "$WORK/$1.json" "$2" latency_ms.p99; }
python3 - "$(p99 sl_alone inter)" "$(p99 sl_flood inter)" "$(p99 direct_alone inter)" \
	"$(p99 direct_flood inter)" "$(p99 rr_alone inter)" "$(p99 rr_flood inter)" \
	"$b0" "$b1" "$t0" "$t1" \
	"$($REPORT get "$WORK/sl_flood.json" flood output_tokens_per_s)" \
	"$($REPORT get "$WORK/spot_flood_alone.json" flood output_tokens_per_s)" \
	"$(p99 burst_spill burst)" "$(p99 burst_nospill burst)" <<'PY'
import sys
a = [float(x) for x in sys.argv[1:]]
sl0, sl1, d0, d1, r0, r1, b0, b1, t0, t1, ftok, ftok_alone, bs, bn = a
print(f"interactive p99 growth under the flood: sluice {sl1 / sl0:.2f}x (target <= 1.10), "
      f"direct one slice {d1 / d0:.1f}x, round-robin {r1 / r0:.1f}x")
occ = (b1 - b0) / (48 * (t1 - t0))
print(f"elastic slots the flood may hold (48): {occ * 100:.1f}% busy during the flood phase (target >= 95%)")
print(f"flood tokens/s through sluice vs alone on all 64 spot slots: {ftok / ftok_alone:.2f} "
      f"({ftok:.0f} vs {ftok_alone:.0f}; max_slot_share 0.75 keeps 16 slots as headroom)")
print(f"interactive burst at 2x reserved capacity during the flood: p99 {bs:.1f} ms with spill-over, "
      f"{bn:.1f} ms without ({bn / bs:.1f}x)")
PY
