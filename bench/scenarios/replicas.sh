#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# replicas: interactive p99 under an opportunistic flood with 1, 2 and 3
# sluice replicas in front of the same backend, with the slots split over
# the replicas (replicas: { count: N }) and without (each replica with the
# backend's whole max_inflight).
#
# One elastic slice: gpusim with 16 slots (calibrated H100 defaults); every
# replica lists it with max_inflight 16.  The clients are spread round-robin
# over the replicas, one loadgen stream per replica (target=):
#   interactive  20 req/s in all, prompt 128, 16 output tokens, streamed;
#   flood        48 closed-loop clients in all, prompt 1024, 256 tokens,
#                opportunistic (max_slot_share 0.75).
# Without the split, N replicas send the backend up to 16 x N requests; the
# excess waits in gpusim's own FIFO queue (as in vLLM), where an interactive
# request waits behind the flood.  With it, the replicas together send at
# most 16 and the queue stays in sluice, where priority applies.  Besides the
# latencies it samples gpusim's /stats "waiting" (requests queued inside the
# backend) during each phase.
#
#   bench/scenarios/replicas.sh [SECONDS_PER_PHASE]
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-15}
SLOTS=16
start_gpusim spot --slots "$SLOTS"

# sluice_conf FILE REPLICAS
sluice_conf() {
	cat >"$1" <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  interactive:   { max_queue: 256,  max_wait_ms: 2000,   pools: [spot] }
  opportunistic: { max_queue: 8192, max_wait_ms: 600000, pools: [spot], min_share: 0.05, max_slot_share: 0.75 }
pools:
  spot:
    slice: elastic
    backends: [ { address: 127.0.0.1:$spot_port, max_inflight: $SLOTS } ]
replicas: { count: $2 }
tenants:
  chat:  { keys: [ { sha256: "$(hash_key sk-chat)" } ],  default_class: interactive,   max_class: interactive }
  batch: { keys: [ { sha256: "$(hash_key sk-batch)" } ], default_class: opportunistic, max_class: opportunistic }
YAML
}

waiting() { curl -s "http://127.0.0.1:$spot_port/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["waiting"])'; }

echo "replicas: ${DUR}s per phase, $(nproc) cores; one gpusim slice of $SLOTS slots, max_inflight $SLOTS;"
echo "interactive 20 req/s in all (prompt 128, 16 tokens, SSE), flood 48 clients in all (prompt 1024,"
echo "256 tokens, opportunistic, max_slot_share 0.75), spread round-robin over the replicas"
echo

# phase NAME N SPLIT(1|0): N replicas, the slots split or not.
phase() {
	name=$1 n=$2 split=$3
	sluice_conf "$WORK/$name.yaml" "$([ "$split" = 1 ] && echo "$n" || echo 1)"
	streams=()
	pids=""
	# Names unique to the phase: a log of an earlier phase must not be
	# read for this one's port.
	for i in $(seq 1 "$n"); do
		start_sluice "${name}_r$i" "$WORK/$name.yaml"
		eval "port=\$${name}_r${i}_port"
		eval "pids=\"\$pids \$${name}_r${i}_pid\""
		[ "$i" = 1 ] && first=$port
		rate=$(python3 -c "print(20 / $n)")
		streams+=("name=inter$i,target=127.0.0.1:$port,rate=$rate,prompt_tokens=128,max_tokens=16,stream=1,key=sk-chat")
		streams+=("name=flood$i,target=127.0.0.1:$port,concurrency=$((48 / n)),prompt_tokens=1024,max_tokens=256,key=sk-batch")
	done
	run_loadgen "$name" "$first" "${streams[@]}" &
	lg=$!
	sleep 3
	samples=""
	for _ in $(seq 1 $((DUR - 2))); do
		samples="$samples $(waiting)"
		sleep 1
	done
	wait $lg || die "phase $name failed"
	for p in $pids; do stop_pid "$p"; done
	echo "$samples" >"$WORK/$name.waiting"
}

phase n1 1 1
phase n2_split 2 1
phase n2_full 2 0
phase n3_split 3 1
phase n3_full 3 0

$REPORT header
for name in n1 n2_split n2_full n3_split n3_full; do
	n=${name:1:1}
	for i in $(seq 1 "$n"); do
		$REPORT row "$name: interactive via r$i" "$WORK/$name.json" "inter$i"
	done
	for i in $(seq 1 "$n"); do
		$REPORT row "$name: flood via r$i" "$WORK/$name.json" "flood$i"
	done
done
echo

summary() {
	name=$1
	n=${name:1:1}
	p99s=""
	for i in $(seq 1 "$n"); do p99s="$p99s $($REPORT get "$WORK/$name.json" "inter$i" latency_ms.p99)"; done
	python3 - "$name" "$(cat "$WORK/$name.waiting")" "$p99s" <<'PY'
import sys
name, waiting, p99s = sys.argv[1], [int(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
print(f"{name:<9} interactive p99 (worst replica) {max(p99s):8.1f} ms; "
      f"queued inside gpusim: mean {sum(waiting) / len(waiting):5.1f}, max {max(waiting):3d}")
PY
}
for name in n1 n2_split n2_full n3_split n3_full; do summary "$name"; done
