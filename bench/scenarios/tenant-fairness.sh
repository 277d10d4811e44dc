#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# tenant-fairness: two tenants in one class, one flooding; tenant slot
# shares (tenant_slot_share) fair against off, in one run.
#
# One reserved slice (gpusim, calibrated defaults, 4 slots: about 80 req/s
# of these requests).  Tenant A sends 20 req/s; tenant B sends 200 req/s,
# ten times A and more than twice the slice.  Both interactive (prompt 128,
# 16 tokens, SSE), open loop.  Two sluices in front of the same slice, one
# with `tenant_slot_share: fair` (the default), one with `off`, are measured
# one after the other: A alone, then A beside B.  It prints A's p99 beside B
# over A's p99 alone (target <= 1.2) and the slice's throughput (requests
# served per second, A and B together) with fair over off (target >= 0.95).
#
#   bench/scenarios/tenant-fairness.sh [SECONDS_PER_PHASE]
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-15}
"$ROOT/scripts/setup.sh" >/dev/null

start_gpusim gold --slots 4
conf() {
	cat <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  interactive: { max_queue: 256, max_wait_ms: 250, pools: [gold], tenant_slot_share: $1 }
pools:
  gold:
    slice: reserved
    backends: [ { address: 127.0.0.1:$gold_port, max_inflight: 4 } ]
tenants:
  a: { keys: [ { sha256: "$(hash_key sk-a)" } ], default_class: interactive, max_class: interactive }
  b: { keys: [ { sha256: "$(hash_key sk-b)" } ], default_class: interactive, max_class: interactive }
YAML
}
conf fair >"$WORK/fair.yaml"
conf off >"$WORK/off.yaml"
start_sluice fair "$WORK/fair.yaml"
start_sluice off "$WORK/off.yaml"

A="name=a,rate=20,prompt_tokens=128,max_tokens=16,stream=1,key=sk-a"
B="name=b,rate=200,prompt_tokens=128,max_tokens=16,stream=1,key=sk-b,max_conns=2000"

echo "tenant-fairness: ${DUR}s per phase, $(nproc) cores; one reserved slice (4 slots, ~80 req/s);"
echo "tenant A 20 req/s, tenant B 200 req/s (10x A), both interactive, prompt 128, 16 tokens, SSE"
echo
run_loadgen fair_alone "$fair_port" "$A"
run_loadgen fair_both "$fair_port" "$A" "$B"
run_loadgen off_alone "$off_port" "$A"
run_loadgen off_both "$off_port" "$A" "$B"

$REPORT header
$REPORT row "fair: A alone" "$WORK/fair_alone.json" a
$REPORT row "fair: A beside B" "$WORK/fair_both.json" a
$REPORT row "fair: B" "$WORK/fair_both.json" b
$REPORT row "off: A alone" "$WORK/off_alone.json" a
$REPORT row "off: A beside B" "$WORK/off_both.json" a
$REPORT row "off: B" "$WORK/off_both.json" b
echo
get() { $REPORT get "$WORK/$1.json" "$2" "$3"; }
python3 - "$DUR" \
	"$(get fair_alone a latency_ms.p99)" "$(get fair_both a latency_ms.p99)" \
	"$(get off_alone a latency_ms.p99)" "$(get off_both a latency_ms.p99)" \
	"$(get fair_both a ok)" "$(get fair_both b ok)" "$(get off_both a ok)" "$(get off_both b ok)" \
	"$(get fair_both a ttfb_ms.p99)" "$(get off_both a ttfb_ms.p99)" <<'PY'
import sys
dur = float(sys.argv[1])
fa, fb, oa, ob, fok_a, fok_b, ook_a, ook_b, fttfb, ottfb = (float(x) for x in sys.argv[2:])
print(f"A's p99 beside B over A's p99 alone: fair {fb / fa:.2f}x, off {ob / oa:.2f}x (target <= 1.2)")
print(f"A's TTFB p99 beside B: fair {fttfb:.1f} ms, off {ottfb:.1f} ms")
tf, to = (fok_a + fok_b) / dur, (ook_a + ook_b) / dur
print(f"slice throughput beside B: fair {tf:.1f} req/s, off {to:.1f} req/s: {tf / to:.2f}x (target >= 0.95)")
PY
