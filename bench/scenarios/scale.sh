#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# scale: many clients, a deep queue.
#
# N client connections (10,000 by default) each send one standard request to
# a slice of 64 slots whose requests take seconds, so nearly all of them wait
# in sluice's queue at once.  Measures sluice's RSS with them queued, and the
# latency of interactive requests (their own reserved slice, idle) sent
# meanwhile, against the same requests with the queue empty: what a deep
# queue costs admission.  Then every client leaves; the queue must empty and
# the gpusim must see none of the queued requests.  The admission cost at
# 100,000 queued requests is measured in process by bench/admission_bench
# (one machine cannot hold 100,000 client sockets under the usual limits).
#
#   bench/scenarios/scale.sh [CONNECTIONS]
set -eu
. "$(dirname "$0")/lib.sh"

N=${1:-10000}
"$ROOT/scripts/setup.sh" >/dev/null
ulimit -n $((N + 1024)) 2>/dev/null || die "cannot raise the open file limit to $((N + 1024))"

start_gpusim gold --slots 8
start_gpusim spot --slots 64 --time-scale 20
cat >"$WORK/sluice.yaml" <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
limits: { max_connections: $((N + 1000)) }
timeouts: { header_ms: 300000, idle_ms: 300000 }
classes:
  interactive: { max_queue: 256, max_wait_ms: 250, pools: [gold] }
  standard: { max_queue: $((N + 1000)), max_wait_ms: 600000, pools: [spot] }
pools:
  gold: { slice: reserved, backends: [ { address: 127.0.0.1:$gold_port, max_inflight: 8 } ] }
  spot: { slice: elastic, backends: [ { address: 127.0.0.1:$spot_port, max_inflight: 64 } ] }
YAML
start_sluice sl "$WORK/sluice.yaml"
INTER="name=inter,rate=50,prompt_tokens=16,max_tokens=4,class=interactive"
metric() { curl -s "http://127.0.0.1:$sl_admin/metrics" | awk -v s="$1" '$1 == s { print $2 }'; }

"$LOADGEN" -t "127.0.0.1:$sl_port" -d 8 -w 1 -j "$WORK/empty.json" -S "$INTER" >/dev/null 2>&1 || die "baseline failed"
rss0=$(rss_kib "$sl_pid")

python3 - "$sl_port" "$N" "$sl_admin" "$WORK/hold" <<'PY' &
# Open N connections, each with one queued request; hold them until the
# file $4 appears, then leave all at once.
import os, socket, sys, time
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), sys.argv[4]
body = b'{"prompt":"hello","max_tokens":256}'
req = (b"POST /v1/completions HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
       b"content-length: %d\r\n\r\n" % len(body)) + body
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    socks.append(s)
deadline = time.monotonic() + 200
while not os.path.exists(hold) and time.monotonic() < deadline:
    time.sleep(0.1)
for s in socks:
    s.close()
PY
holder=$!
i=0
while [ "$(metric 'sluice_queue_depth{class="standard"}')" != "$((N - 64))" ]; do
	i=$((i + 1))
	[ $i -lt 600 ] || die "the queue never reached $((N - 64)) (at $(metric 'sluice_queue_depth{class="standard"}'))"
	sleep 0.1
done
queued=$(metric 'sluice_queue_depth{class="standard"}')
rss1=$(rss_kib "$sl_pid")
"$LOADGEN" -t "127.0.0.1:$sl_port" -d 8 -w 1 -j "$WORK/deep.json" -S "$INTER" >/dev/null 2>&1 || die "deep run failed"
touch "$WORK/hold"
wait $holder
i=0
while [ "$(metric 'sluice_queue_depth{class="standard"}')" != 0 ]; do
	i=$((i + 1))
	[ $i -lt 300 ] || die "the queue did not empty after the clients left"
	sleep 0.1
done
sleep 0.5
rss2=$(rss_kib "$sl_pid")
seen=$(curl -s "http://127.0.0.1:$spot_port/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')

echo "scale: $N client connections, one standard request each, on a slice of 64 slots; $(nproc) cores"
echo "queued at once: $queued requests; sluice RSS $rss0 KiB with the queue empty, $rss1 KiB with them queued"
echo "($(( (rss1 - rss0) * 1024 / queued )) bytes per queued request with its connection), $rss2 KiB after they all left"
echo "requests that reached the slice: $seen (the 64 running; the queued ones that left never did)"
echo
$REPORT header
$REPORT row "interactive 50/s, queue empty" "$WORK/empty.json" inter
$REPORT row "interactive 50/s, $queued queued" "$WORK/deep.json" inter
echo
"$BUILD/bench/admission_bench" 100000 100 200000
