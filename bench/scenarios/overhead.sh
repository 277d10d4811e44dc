#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# overhead: what does the proxy cost?  wrk drives the same POST
# /v1/completions at a zero-latency gpusim directly, through sluice, and
# through nginx (1 worker, upstream keepalive), in one run, and prints
# requests/s and latency percentiles with the ratios that matter.  sluice
# runs three ways: `sluice` as configured for production (latency
# histograms and a JSON access log to a file), `hist` (histograms, no access
# log) and `bare` (histograms off, no access log), for the cost of each.
#
#   bench/scenarios/overhead.sh [SECONDS_PER_TARGET] [CONNECTIONS]
#
# Exits non-zero only when it cannot run; targets are for people to judge.
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-10}
CONNS=${2:-64}
"$ROOT/scripts/setup.sh" --bench >/dev/null
need wrk
need nginx

start_gpusim sim --zero

cat >"$WORK/sluice.yaml" <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  standard: { max_queue: 4096, max_wait_ms: 5000, pools: [sim] }
pools:
  sim:
    slice: elastic
    backends: [ { address: 127.0.0.1:$sim_port, max_inflight: 1024 } ]
YAML
{ cat "$WORK/sluice.yaml"; echo "access_log: $WORK/access.log"; } >"$WORK/sluice-obs.yaml"
cp "$WORK/sluice.yaml" "$WORK/sluice-hist.yaml"
echo "metrics: { histograms: false }" >>"$WORK/sluice.yaml"
start_sluice sluice "$WORK/sluice-obs.yaml"
start_sluice hist "$WORK/sluice-hist.yaml"
start_sluice bare "$WORK/sluice.yaml"

start_nginx nginx "127.0.0.1:$sim_port"

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"m","prompt":"hello world","max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
LUA

# run NAME PORT: wrk's figures as "rps p50 p90 p99" (latencies in ms)
run() {
	wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$2/v1/completions" \
		>"$WORK/$1.wrk" 2>&1 || die "wrk failed against $1: $(cat "$WORK/$1.wrk")"
	grep -q "Non-2xx" "$WORK/$1.wrk" && die "$1 answered errors: $(cat "$WORK/$1.wrk")"
	awk '
	function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
	/Requests\/sec/ { rps = $2 }
	$1 == "50%" { p50 = ms($2) } $1 == "90%" { p90 = ms($2) } $1 == "99%" { p99 = ms($2) }
	END { printf "%.0f %.3f %.3f %.3f\n", rps, p50, p90, p99 }' "$WORK/$1.wrk"
}

# warm up each path, then measure
for p in "$sim_port" "$sluice_port" "$hist_port" "$bare_port" "$nginx_port"; do
	wrk -t1 -c"$CONNS" -d1s -s "$WORK/post.lua" "http://127.0.0.1:$p/v1/completions" >/dev/null 2>&1
done
direct=$(run direct "$sim_port")
sluice=$(run sluice "$sluice_port")
hist=$(run hist "$hist_port")
bare=$(run bare "$bare_port")
nginx=$(run nginx "$nginx_port")

echo "overhead: wrk -t1 -c$CONNS -d${DUR}s, POST /v1/completions, gpusim --zero, $(nproc) cores"
printf '%-8s %10s %9s %9s %9s\n' target req/s p50_ms p90_ms p99_ms
for t in direct sluice hist bare nginx; do
	eval "set -- \$$t"
	printf '%-8s %10s %9s %9s %9s\n' "$t" "$1" "$2" "$3" "$4"
done
# shellcheck disable=SC2086
set -- $direct $sluice $nginx
awk -v d_rps="$1" -v d99="$4" -v s_rps="$5" -v s99="$8" -v n_rps="$9" -v n99="${12}" 'BEGIN {
	printf "sluice/nginx req/s: %.2f   sluice/direct req/s: %.2f   nginx/direct req/s: %.2f\n",
		s_rps / n_rps, s_rps / d_rps, n_rps / d_rps
	printf "p99 added over direct: sluice %+.3f ms, nginx %+.3f ms\n", s99 - d99, n99 - d99
}'
# shellcheck disable=SC2086
set -- $sluice $hist $bare
awk -v o="$1" -v h="$5" -v b="$9" 'BEGIN {
	printf "observability cost vs bare (histograms off, no access log): histograms %.1f%%, histograms + access log %.1f%% of requests/s\n", (1 - h / b) * 100, (1 - o / b) * 100 }'
echo "access log lines written: $(wc -l <"$WORK/access.log")"
echo "sluice RSS after the run: $(rss_kib "$sluice_pid") KiB"
