#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# tenant-fairness: two tenants in one class, one flooding.
#
# One reserved slice (gpusim, calibrated defaults, 4 slots: about 80 req/s
# of these requests).  Tenant A sends 20 req/s; tenant B sends 200 req/s,
# ten times A and more than twice the slice.  Both interactive (prompt 128,
# 16 tokens, SSE), open loop.  It measures A's latency alone and beside B,
# through sluice (weighted fair queueing between tenants inside the class)
# and sent straight to the slice (one FIFO), in one run.
#
#   bench/scenarios/tenant-fairness.sh [SECONDS_PER_PHASE]
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-15}
"$ROOT/scripts/setup.sh" >/dev/null

start_gpusim gold --slots 4
cat >"$WORK/sluice.yaml" <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  interactive: { max_queue: 256, max_wait_ms: 250, pools: [gold] }
pools:
  gold:
    slice: reserved
    backends: [ { address: 127.0.0.1:$gold_port, max_inflight: 4 } ]
tenants:
  a: { keys: [ { sha256: "$(hash_key sk-a)" } ], default_class: interactive, max_class: interactive }
  b: { keys: [ { sha256: "$(hash_key sk-b)" } ], default_class: interactive, max_class: interactive }
YAML
start_sluice sl "$WORK/sluice.yaml"

A="name=a,rate=20,prompt_tokens=128,max_tokens=16,stream=1,key=sk-a"
B="name=b,rate=200,prompt_tokens=128,max_tokens=16,stream=1,key=sk-b,max_conns=2000"

echo "tenant-fairness: ${DUR}s per phase, $(nproc) cores; one reserved slice (4 slots, ~80 req/s);"
echo "tenant A 20 req/s, tenant B 200 req/s (10x A), both interactive, prompt 128, 16 tokens, SSE"
echo
run_loadgen sl_alone "$sl_port" "$A"
run_loadgen sl_both "$sl_port" "$A" "$B"
run_loadgen direct_alone "$gold_port" "$A"
run_loadgen direct_both "$gold_port" "$A" "$B"

$REPORT header
$REPORT row "sluice: A alone" "$WORK/sl_alone.json" a
$REPORT row "sluice: A beside B" "$WORK/sl_both.json" a
$REPORT row "sluice: B" "$WORK/sl_both.json" b
$REPORT row "direct: A alone" "$WORK/direct_alone.json" a
$REPORT row "direct: A beside B" "$WORK/direct_both.json" a
$REPORT row "direct: B" "$WORK/direct_both.json" b
echo
p99() { $REPORT get "$WORK/$1.json" "$2" latency_ms.p99; }
python3 - "$(p99 sl_alone a)" "$(p99 sl_both a)" "$(p99 direct_alone a)" "$(p99 direct_both a)" <<'PY'
import sys
s0, s1, d0, d1 = (float(x) for x in sys.argv[1:])
print(f"A's p99 beside B: sluice {s1 / s0:.2f}x its p99 alone (target <= 1.2), direct {d1 / d0:.1f}x")
PY
