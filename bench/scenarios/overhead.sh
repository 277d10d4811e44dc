#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# overhead: what does the proxy cost?  wrk drives the same POST
# /v1/completions (51-byte JSON, a tenant key, x-sluice-class) at a
# zero-latency gpusim directly, through sluice, through nginx (1 worker,
# upstream keepalive) and through HAProxy (nbthread 1, http-reuse always),
# in one run.  Every proxy runs alone on CPU 1 while wrk and gpusim share
# CPU 0, so that requests/s compares the proxies, and each proxy's CPU time
# over the run gives its CPU per request.  sluice runs as configured for
# production (tenant, classification, latency histograms), once without and
# once with a JSON access log to a file.
#
#   bench/scenarios/overhead.sh [SECONDS_PER_TARGET=10] [CONNECTIONS=64] [ROUNDS=2]
#
# Exits non-zero only when it cannot run; targets are for people to judge.
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-2}
"$ROOT/scripts/setup.sh" --bench >/dev/null
need wrk
need nginx
need haproxy
need taskset

PROXY_CPU=1
LOAD_CPU=0
[ "$(nproc)" -ge 2 ] || { PROXY_CPU=0; echo "overhead: one CPU only: proxies share it with the load" >&2; }

start_gpusim sim --zero
taskset -p -c "$LOAD_CPU" "$(pgrep -f "gpusim --listen 127.0.0.1:0 --name sim")" >/dev/null

bench_conf "$WORK/sluice.yaml" "$sim_port"
{ cat "$WORK/sluice.yaml"; echo "access_log: $WORK/access.log"; } >"$WORK/sluice-log.yaml"
start_sluice sluice "$WORK/sluice.yaml"
start_sluice logged "$WORK/sluice-log.yaml"
start_nginx nginx "127.0.0.1:$sim_port"
sleep 0.3
nginx_pid=$(pgrep -P "$(cat "$WORK/nginx/nginx.pid")" | head -n 1)
[ -n "$nginx_pid" ] || die "no nginx worker"
[ -n "${haproxy_pid:-x}" ]

haproxy_port=$(free_port)
cat >"$WORK/haproxy.cfg" <<HAP
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend f
    bind 127.0.0.1:$haproxy_port
    default_backend b
backend b
    server s1 127.0.0.1:$sim_port maxconn 1024
HAP
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
haproxy_pid=$!
PIDS="$PIDS $haproxy_pid"
sleep 0.3
for p in "$sluice_pid" "$logged_pid" "$nginx_pid" "$haproxy_pid"; do
	for t in /proc/"$p"/task/*; do taskset -p -c "$PROXY_CPU" "${t##*/}" >/dev/null; done
done

bench_lua "$WORK/post.lua"

cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }

# run NAME PORT [PID]: "rps p50 p99 cpu_us_per_request" (latencies in ms)
run() {
	c0=0
	[ -n "${3:-}" ] && c0=$(cpu "$3")
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$WORK/post.lua" \
		"http://127.0.0.1:$2/v1/completions" >"$WORK/$1.wrk" 2>&1 || die "wrk failed against $1: $(cat "$WORK/$1.wrk")"
	grep -q "Non-2xx" "$WORK/$1.wrk" && die "$1 answered errors: $(cat "$WORK/$1.wrk")"
	c1=0
	[ -n "${3:-}" ] && c1=$(cpu "$3")
	awk -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" '
	function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
	/requests in/ { n = $1 }
	/Requests\/sec/ { rps = $2 }
	$1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
	END { printf "%.0f %.3f %.3f %.1f\n", rps, p50, p99, (n > 0 ? c * 1e6 / n : 0) }' "$WORK/$1.wrk"
}

# warm up each path, then measure in alternating rounds
for p in "$sim_port" "$sluice_port" "$logged_port" "$nginx_port" "$haproxy_port"; do
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s -s "$WORK/post.lua" "http://127.0.0.1:$p/v1/completions" >/dev/null 2>&1
done
echo "overhead: wrk -t1 -c$CONNS -d${DUR}s x $ROUNDS rounds, POST /v1/completions with a tenant key and x-sluice-class,"
echo "gpusim --zero; proxies alone on CPU $PROXY_CPU, wrk and gpusim on CPU $LOAD_CPU"
printf '%-8s %6s %10s %9s %9s %12s\n' target round req/s p50_ms p99_ms cpu_us/req
: >"$WORK/all"
for r in $(seq "$ROUNDS"); do
	for t in direct sluice logged nginx haproxy; do
		case $t in
		direct) line=$(run direct "$sim_port") ;;
		*) port_var="${t}_port" pid_var="${t}_pid"; line=$(run "$t" "${!port_var}" "${!pid_var}") ;;
		esac
		echo "$t $line" >>"$WORK/all"
		# shellcheck disable=SC2086
		printf '%-8s %6s %10s %9s %9s %12s\n' "$t" "$r" $line
	done
done
awk '{ rps[$1] += $2; cpu[$1] += $5; n[$1]++ }
END {
	for (t in rps) { rps[t] /= n[t]; cpu[t] /= n[t] }
	printf "means: sluice %.0f req/s %.1f us/req; nginx %.0f, %.1f; haproxy %.0f, %.1f\n",
		rps["sluice"], cpu["sluice"], rps["nginx"], cpu["nginx"], rps["haproxy"], cpu["haproxy"]
	printf "sluice/nginx: req/s %.2f (target >= 1.10), CPU per request %.2f (target <= 1.00)\n",
		rps["sluice"] / rps["nginx"], cpu["sluice"] / cpu["nginx"]
	printf "sluice/haproxy: req/s %.2f, CPU per request %.2f\n", rps["sluice"] / rps["haproxy"], cpu["sluice"] / cpu["haproxy"]
	printf "access log on vs off: req/s %.3f (target >= 0.97), CPU per request %.2f\n",
		rps["logged"] / rps["sluice"], cpu["logged"] / cpu["sluice"]
}' "$WORK/all"
echo "access log lines written: $(wc -l <"$WORK/access.log")"
echo "sluice RSS after the run: $(rss_kib "$sluice_pid") KiB"
