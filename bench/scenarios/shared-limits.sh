#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# shared-limits: what do shared limits cost on the request path, and do
# three replicas hold one tenant to its limit?
#
#  1. wrk drives the same keyed POST /v1/completions at a zero-latency
#     gpusim through two sluices in one run, one with shared_limits on a
#     local redis-server and one without (the tenant is limited, far above
#     the load, so every request is admitted and leases renew all along),
#     alternating ROUNDS times; it prints p50/p99 of each round and the
#     median over the rounds (on a shared machine single rounds swing by
#     milliseconds at p99: the median of interleaved rounds compares).
#  2. three replicas sharing that Redis, each with its own gpusim, offered
#     3x a tenant's 100 requests/s split 70/20/10 for RATIO_SECONDS; it prints
#     what was admitted against the limit, per replica, and the Redis
#     commands per admitted request.
#
#   bench/scenarios/shared-limits.sh [SECONDS_PER_RUN=3] [CONNECTIONS=1] [ROUNDS=10] [RATIO_SECONDS=30]
#
# Exits non-zero only when it cannot run; targets are for people to judge
# (p99 added <= 50 us; admitted <= 1.05x the limit plus one burst).
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-3}
CONNS=${2:-1}
ROUNDS=${3:-10}
RATIO=${4:-30}
need wrk
need redis-server

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
PIDS="$PIDS $!"
sleep 0.3

start_gpusim sim --zero
bench_conf "$WORK/off.yaml" "$sim_port"
{ cat "$WORK/off.yaml"; echo "shared_limits: { redis: 127.0.0.1:$redis_port, key_prefix: \"bench:\", expected_replicas: 1 }"; } >"$WORK/on.yaml"
start_sluice off "$WORK/off.yaml"
start_sluice on "$WORK/on.yaml"
sleep 0.5
grep -q "shared limits: redis .* connected" "$WORK/on.log" || die "shared limits did not connect: $(cat "$WORK/on.log")"
bench_lua "$WORK/post.lua"

# p99 NAME PORT: "p50_us p99_us rps"
p99() {
	wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$WORK/post.lua" \
		"http://127.0.0.1:$2/v1/completions" >"$WORK/$1.wrk" 2>&1 || die "wrk failed against $1"
	grep -q "Non-2xx" "$WORK/$1.wrk" && die "$1 answered errors: $(cat "$WORK/$1.wrk")"
	awk '
	function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
	$1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) } $1 == "Requests/sec:" { rps = $2 }
	END { printf "%.0f %.0f %.0f\n", p50, p99, rps }' "$WORK/$1.wrk"
}

echo "== request path: shared limits off vs on ($CONNS connections, ${DUR}s per run, $ROUNDS rounds)"
printf "%-6s %-4s %10s %10s %10s\n" round mode p50_us p99_us req/s
: >"$WORK/rounds"
for r in $(seq 1 "$ROUNDS"); do
	read -r a50 a99 arps <<<"$(p99 off "$off_port")"
	read -r b50 b99 brps <<<"$(p99 on "$on_port")"
	printf "%-6s %-4s %10s %10s %10s\n" "$r" off "$a50" "$a99" "$arps" "$r" on "$b50" "$b99" "$brps"
	echo "off $a50 $a99" >>"$WORK/rounds"
	echo "on $b50 $b99" >>"$WORK/rounds"
done
# median MODE FIELD: the median of a column over the rounds
median() { awk -v m="$1" -v f="$2" '$1 == m { print $f }' "$WORK/rounds" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
off50=$(median off 2); on50=$(median on 2); off99=$(median off 3); on99=$(median on 3)
cmds=$(redis-cli -p "$redis_port" info commandstats | awk -F'[=,:]' '/cmdstat_(evalsha|script)/ { n += $3 } END { print n + 0 }')
echo "median over $ROUNDS rounds: p50 off $off50 us, on $on50 us; p99 off $off99 us, on $on99 us, added $((on99 - off99)) us (target <= 50 us); Redis commands over all 'on' runs: $cmds"
stop_pid "$on_pid"
stop_pid "$off_pid"

echo "== three replicas, one tenant at 100/s (burst 100), offered 300/s as 70/20/10 for ${RATIO}s"
ROOT="$ROOT" SLUICE_BIN="$BUILD/sluice" GPUSIM_BIN="$BUILD/bench/gpusim" RATIO="$RATIO" REDIS_PORT="$redis_port" \
python3 -W ignore - <<'PY'
import os, sys
sys.path.insert(0, os.path.join(os.environ["ROOT"], "tests", "integration"))
from harness import start_gpusim, start_sluice
from test_shared_limits import Load, RATE, BURST, redis_commands, CLASSES, tenant_block

port = int(os.environ["REDIS_PORT"])
dur = float(os.environ["RATIO"])
procs, reps = [], []
try:
    for _ in range(3):
        sim = start_gpusim("--zero")
        procs.append(sim)
        s = start_sluice(f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
{CLASSES}
pools:
  main:
    slice: reserved
    backends: [ {{ address: {sim.addr}, max_inflight: 64 }} ]
shared_limits: {{ redis: 127.0.0.1:{port}, key_prefix: "ratio:", expected_replicas: 3 }}
{tenant_block(RATE, BURST)}
""")
        procs.append(s)
        reps.append(s)
        s.wait_line(r"shared limits: redis .* connected")
    before = redis_commands(port)
    a, b, c = reps
    res = Load([(a.port, 70.0)] * 3 + [(b.port, 60.0), (c.port, 30.0)], dur).join()
    cmds = redis_commands(port) - before
    ok = sum(1 for _, _, w in res if w[0] == 200)
    bad = sum(1 for _, _, w in res if w[0] not in (200, 429))
    per = [sum(1 for _, p, w in res if p == s.port and w[0] == 200) for s in reps]
    limit = RATE * dur
    print(f"offered {len(res)} ({len(res) / dur:.0f}/s), admitted {ok} = {ok / limit:.3f}x the limit "
          f"({ok - limit:+.0f}; bound 1.05x + one burst = {1.05 * limit + BURST:.0f}); per replica (70/20/10) {per}; "
          f"errors {bad}; Redis commands {cmds} = {cmds / max(ok, 1):.4f} per admitted request")
finally:
    for p in reversed(procs):
        p.stop()
PY
