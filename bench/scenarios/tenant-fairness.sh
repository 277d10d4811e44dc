#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# tenant-fairness: two tenants in one class, one flooding; tenant slot
# shares (tenant_slot_share) fair against off, in one run.
#
# A reserved slice (gpusim, calibrated defaults) of 4 slots (about 80 req/s
# of these requests), then one of 16.  Tenant A sends 20 req/s; tenant B
# sends 200 req/s, ten times A and more than twice the 4-slot slice.  Both
# interactive (prompt 128, 16 tokens, SSE), open loop.  In front of each
# slice, sluices with `tenant_slot_share: fair` and `off` (the default), and
# on the 4-slot slice also `fair` with A at weight 3, are measured one after
# the other: A alone, then A beside B.  For each it prints A's p99 beside B
# over A's p99 alone (target <= 1.2) and the slice's throughput beside B
# (requests served per second, A and B together) over off's (target >= 0.95).
#
# GPUSIM_ARGS: more gpusim options for both slices, e.g. "--prefill-min-ms
# 0.2 --prefill-per-ktok-ms 0.2" for slices whose prefills do not stall
# their batch (as with chunked prefill).
#
#   bench/scenarios/tenant-fairness.sh [SECONDS_PER_PHASE]
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-15}
"$ROOT/scripts/setup.sh" >/dev/null

# shellcheck disable=SC2086 # GPUSIM_ARGS: extra gpusim options, split on spaces
start_gpusim g4 --slots 4 ${GPUSIM_ARGS:-}
# shellcheck disable=SC2086
start_gpusim g16 --slots 16 ${GPUSIM_ARGS:-}
# conf SHARE PORT SLOTS A_WEIGHT
conf() {
	cat <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  interactive: { max_queue: 256, max_wait_ms: 250, pools: [gold], tenant_slot_share: $1 }
pools:
  gold:
    slice: reserved
    backends: [ { address: 127.0.0.1:$2, max_inflight: $3 } ]
tenants:
  a: { keys: [ { sha256: "$(hash_key sk-a)" } ], default_class: interactive, max_class: interactive, weight: $4 }
  b: { keys: [ { sha256: "$(hash_key sk-b)" } ], default_class: interactive, max_class: interactive }
YAML
}
conf fair "$g4_port" 4 1 >"$WORK/fair4.yaml"
conf fair "$g4_port" 4 3 >"$WORK/fairw4.yaml"
conf off "$g4_port" 4 1 >"$WORK/off4.yaml"
conf fair "$g16_port" 16 1 >"$WORK/fair16.yaml"
conf off "$g16_port" 16 1 >"$WORK/off16.yaml"
for s in fair4 fairw4 off4 fair16 off16; do start_sluice "$s" "$WORK/$s.yaml"; done

A="name=a,rate=20,prompt_tokens=128,max_tokens=16,stream=1,key=sk-a"
B="name=b,rate=200,prompt_tokens=128,max_tokens=16,stream=1,key=sk-b,max_conns=2000"

echo "tenant-fairness: ${DUR}s per phase, $(nproc) cores; reserved slices of 4 slots (~80 req/s) and 16;"
echo "tenant A 20 req/s, tenant B 200 req/s (10x A), both interactive, prompt 128, 16 tokens, SSE"
[ -z "${GPUSIM_ARGS:-}" ] || echo "gpusim: $GPUSIM_ARGS"
echo
run_loadgen fair4_alone "$fair4_port" "$A"
run_loadgen fair4_both "$fair4_port" "$A" "$B"
run_loadgen fairw4_both "$fairw4_port" "$A" "$B"
run_loadgen off4_alone "$off4_port" "$A"
run_loadgen off4_both "$off4_port" "$A" "$B"
run_loadgen fair16_alone "$fair16_port" "$A"
run_loadgen fair16_both "$fair16_port" "$A" "$B"
run_loadgen off16_alone "$off16_port" "$A"
run_loadgen off16_both "$off16_port" "$A" "$B"

$REPORT header
for c in "fair4:4 slots, fair" "fairw4:4 slots, fair, A weight 3" "off4:4 slots, off" \
	 "fair16:16 slots, fair" "off16:16 slots, off"; do
	n=${c%%:*} label=${c#*:}
	[ -f "$WORK/${n}_alone.json" ] && $REPORT row "$label: A alone" "$WORK/${n}_alone.json" a
	$REPORT row "$label: A beside B" "$WORK/${n}_both.json" a
	$REPORT row "$label: B" "$WORK/${n}_both.json" b
done
echo
get() { $REPORT get "$WORK/$1.json" "$2" "$3"; }
# ratio LABEL ALONE BOTH OFF_BOTH
ratio() {
	python3 - "$1" "$DUR" "$(get "$2" a latency_ms.p99)" "$(get "$3" a latency_ms.p99)" \
		"$(get "$3" a ok)" "$(get "$3" b ok)" "$(get "$4" a ok)" "$(get "$4" b ok)" <<'PY'
import sys
label, dur = sys.argv[1], float(sys.argv[2])
alone, both, oka, okb, offa, offb = (float(x) for x in sys.argv[3:])
tput, off = (oka + okb) / dur, (offa + offb) / dur
print(f"{label:<34} A p99 beside B / alone {both / alone:.2f}x (<= 1.2); "
      f"throughput {tput:.1f} req/s, {tput / off:.2f}x off (>= 0.95)")
PY
}
ratio "4 slots, fair" fair4_alone fair4_both off4_both
ratio "4 slots, fair, A weight 3" fair4_alone fairw4_both off4_both
ratio "4 slots, off" off4_alone off4_both off4_both
ratio "16 slots, fair" fair16_alone fair16_both off16_both
ratio "16 slots, off" off16_alone off16_both off16_both
