#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# churn: interactive latency while the elastic backends restart one by one.
#
# A reserved slice (gold, 8 slots) and an elastic pool of three gpusim
# "pods" on 127.0.0.2-4 found through DNS (dnsmasq on loopback, refreshed
# every 500 ms, slow start 2 s).  Interactive: open loop, 20 req/s, streamed,
# pools [spot, gold] (the pods first).  Standard: 24 closed-loop clients on spot.  Phase 1:
# steady state.  Phase 2: the same traffic during a rolling restart, as a
# Kubernetes rollout does it: every 5 s one pod leaves DNS (no new
# requests), is stopped 2 s later (its requests have finished), restarts and
# comes back in DNS.  Then the same with pods killed without leaving DNS
# first (a crash): requests that had not reached a dead pod move to another.
#
#   bench/scenarios/churn.sh [SECONDS_PER_PHASE]
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-30}
"$ROOT/scripts/setup.sh" --deps >/dev/null
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[ -x "$DNSMASQ" ] || die "dnsmasq is not installed (run scripts/setup.sh)"

start_gpusim gold --slots 8
PODS="127.0.0.2 127.0.0.3 127.0.0.4"
pod_port=$(free_port)
# start_pod IP: its pid in $WORK/pod-IP.pid (the rolling restarts run in a
# subshell, which cannot hand a variable back).
start_pod() {
	"$BUILD/bench/gpusim" --listen "$1:$pod_port" --slots 16 --name "pod-$1" >>"$WORK/pod-$1.log" 2>&1 &
	echo $! >"$WORK/pod-$1.pid"
	local n=0
	until (: >"/dev/tcp/$1/$pod_port") 2>/dev/null; do
		n=$((n + 1))
		[ $n -lt 100 ] || die "pod $1 did not start: $(tail -3 "$WORK/pod-$1.log")"
		sleep 0.05
	done
}
for ip in $PODS; do start_pod "$ip"; done

dns_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# hosts IP...: the pods DNS lists now.
hosts() { local a; : >"$WORK/hosts"; for a in "$@"; do echo "$a vllm.churn.test" >>"$WORK/hosts"; done; }
# shellcheck disable=SC2086
hosts $PODS
"$DNSMASQ" --keep-in-foreground --log-facility=- --port="$dns_port" --listen-address=127.0.0.1 \
	--bind-interfaces --no-resolv --no-hosts --addn-hosts="$WORK/hosts" --local-ttl=0 --pid-file= \
	--user=root >"$WORK/dnsmasq.log" 2>&1 &
dns_pid=$!
PIDS="$PIDS $dns_pid"
sleep 0.5

cat >"$WORK/sluice.yaml" <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
resolvers: [ 127.0.0.1:$dns_port ]
classes:
  interactive: { max_queue: 256,  max_wait_ms: 1000, pools: [spot, gold] }
  standard:    { max_queue: 2048, max_wait_ms: 30000, pools: [spot] }
pools:
  gold:
    slice: reserved
    backends: [ { address: 127.0.0.1:$gold_port, max_inflight: 8 } ]
  spot:
    slice: elastic
    discovery: { dns: "vllm.churn.test:$pod_port", refresh_ms: 500ms }
    backend_defaults: { max_inflight: 16, slow_start_ms: 2s }
tenants:
  chat:  { keys: [ { sha256: "$(hash_key sk-chat)" } ],  default_class: interactive, max_class: interactive }
  batch: { keys: [ { sha256: "$(hash_key sk-batch)" } ], default_class: standard,    max_class: standard }
YAML
start_sluice sl "$WORK/sluice.yaml"
sleep 1

INTER="name=inter,rate=20,prompt_tokens=128,max_tokens=16,stream=1,key=sk-chat"
BATCH="name=batch,concurrency=24,prompt_tokens=512,max_tokens=64,key=sk-batch"

# rolling: one pod every 5 s until the phase ends; $MODE graceful takes it
# out of DNS 2 s before stopping it, crash just kills it.
rolling() {
	local end=$((SECONDS + DUR + 2)) i=0 ip others pods
	read -r -a pods <<<"$PODS"
	sleep 3
	while [ $SECONDS -lt $((end - 5)) ]; do
		ip=${pods[$((i % 3))]}
		others=$(for p in $PODS; do [ "$p" = "$ip" ] || echo "$p"; done)
		if [ "$MODE" = graceful ]; then
			# shellcheck disable=SC2086 # a list of addresses
			hosts $others
			kill -HUP "$dns_pid"
			sleep 2
		fi
		kill -KILL "$(cat "$WORK/pod-$ip.pid")" 2>/dev/null || true
		sleep 0.5
		start_pod "$ip"
		# shellcheck disable=SC2086
		hosts $PODS
		kill -HUP "$dns_pid"
		i=$((i + 1))
		if [ "$MODE" = graceful ]; then sleep 2.5; else sleep 4.5; fi
	done
}

echo "churn: ${DUR}s per phase, $(nproc) cores; interactive 20 req/s (SSE) on [spot, gold];"
echo "24 standard clients on spot; spot = 3 pods found in DNS (refresh 500 ms, slow start 2 s)"
echo

run_loadgen steady "$sl_port" "$INTER" "$BATCH"
MODE=graceful
rolling &
roller=$!
run_loadgen rollout "$sl_port" "$INTER" "$BATCH"
wait $roller || true
MODE=crash
rolling &
roller=$!
run_loadgen crash "$sl_port" "$INTER" "$BATCH"
wait $roller || true

for ip in $PODS; do kill "$(cat "$WORK/pod-$ip.pid")" 2>/dev/null || true; done
$REPORT header
$REPORT row "steady: interactive" "$WORK/steady.json" inter
$REPORT row "steady: standard" "$WORK/steady.json" batch
$REPORT row "rollout: interactive" "$WORK/rollout.json" inter
$REPORT row "rollout: standard" "$WORK/rollout.json" batch
$REPORT row "crashes: interactive" "$WORK/crash.json" inter
$REPORT row "crashes: standard" "$WORK/crash.json" batch
echo
failovers=$(curl -s "http://127.0.0.1:$sl_admin/metrics" | awk '/^sluice_upstream_failovers_total/ { print $2 }')
changes=$(grep -c "pool 'spot': backend .* \(added\|removed\)" "$WORK/sl.log" || true)
python3 - "$WORK" "$failovers" "$changes" <<'PY'
import json, sys
work, failovers, changes = sys.argv[1], sys.argv[2], sys.argv[3]
def s(run, name):
    return next(x for x in json.load(open(f"{work}/{run}.json"))["streams"] if x["name"] == name)
def failed(x):
    return x["sent"] - x["ok"]
st, ro, cr = s("steady", "inter"), s("rollout", "inter"), s("crash", "inter")
print(f"interactive p99: steady {st['latency_ms']['p99']:.1f} ms, rollout {ro['latency_ms']['p99']:.1f} ms "
      f"({ro['latency_ms']['p99'] / st['latency_ms']['p99']:.2f}x, target <= 1.2x), "
      f"crashes {cr['latency_ms']['p99']:.1f} ms ({cr['latency_ms']['p99'] / st['latency_ms']['p99']:.2f}x)")
print(f"failed interactive requests: steady {failed(st)}, rollout {failed(ro)} (target 0), crashes {failed(cr)}")
print(f"failed standard requests: rollout {failed(s('rollout', 'batch'))}, crashes {failed(s('crash', 'batch'))} "
      f"(a crash fails the requests running on the pod)")
print(f"membership changes logged: {changes}; requests moved after a failed connect: {failovers}")
PY
