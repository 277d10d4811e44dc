#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# ab: is a change to the request path cheaper or dearer?  Two sluice
# binaries (A, the baseline; B, the candidate) run the same config (a tenant
# key, classification, histograms on, no access log) in front of the same
# zero-latency gpusim, and are measured two ways in one run:
#   - wrk, alternating A and B for ROUNDS rounds (this machine is noisy;
#     alternation spreads the noise over both);
#   - instructions per request under callgrind for a fixed sequence of
#     requests, which is repeatable whatever else the machine does.
#
#   bench/scenarios/ab.sh A_SLUICE B_SLUICE [SECONDS_PER_ROUND=5] [ROUNDS=3] [CONNECTIONS=64]
#
# AB_STREAM=1 asks for streamed completions (16 tokens: 16 server-sent
# events, a usage event and [DONE] per response) instead of JSON ones.
#
# Exits non-zero only when it cannot run.
set -eu
. "$(dirname "$0")/lib.sh"

[ $# -ge 2 ] || die "usage: $0 A_SLUICE B_SLUICE [SECONDS] [ROUNDS] [CONNECTIONS]"
A=$1 B=$2 DUR=${3:-5} ROUNDS=${4:-3} CONNS=${5:-64}
"$ROOT/scripts/setup.sh" --bench >/dev/null
need wrk
need valgrind

start_gpusim sim --zero
bench_conf "$WORK/sluice.yaml" "$sim_port"
bench_lua "$WORK/post.lua"
STREAM=${AB_STREAM:-0}
if [ "$STREAM" = 1 ]; then
	sed -i 's/"max_tokens":16}/"max_tokens":16,"stream":true}/' "$WORK/post.lua"
	BODY='{"model":"m","prompt":"hello world","max_tokens":16,"stream":true}'
else
	BODY='{"model":"m","prompt":"hello world","max_tokens":16}'
fi

# start NAME BINARY [WRAPPER...]: sluice from BINARY on the config
start() {
	name=$1 bin=$2; shift 2
	"$@" "$bin" -c "$WORK/sluice.yaml" >"$WORK/$name.log" 2>&1 &
	eval "${name}_pid=$!"
	PIDS="$PIDS $!"
	eval "${name}_port=\$(wait_port \"\$WORK/$name.log\" 'proxy listening on')"
}

rps() {
	wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$WORK/post.lua" "http://127.0.0.1:$1/v1/completions" 2>&1 |
		awk '/Non-2xx/ { bad = 1 } /Requests\/sec/ { r = $2 } END { if (bad) print "errors"; else printf "%.0f\n", r }'
}

start a "$A"
start b "$B"
for p in "$a_port" "$b_port"; do rps "$p" >/dev/null; done
ra="" rb=""
for _ in $(seq "$ROUNDS"); do
	ra="$ra $(rps "$a_port")"
	rb="$rb $(rps "$b_port")"
done
kill "$a_pid" "$b_pid"

# Instructions per request: 2,000 requests on 8 keep-alive connections.
count() {
	name=$1 bin=$2
	start "$name" "$bin" valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.cg"
	port_var="${name}_port"
	python3 - "${!port_var}" "$BODY" <<'PY'
import socket, sys
port = int(sys.argv[1])
body = sys.argv[2].encode()
req = (b"POST /v1/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-bench\r\n"
       b"x-sluice-class: interactive\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
       % len(body)) + body


def done(buf):
    if b"\r\n\r\n" not in buf:
        return False
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.lower().split(b"\r\n")
    if any(l.startswith(b"transfer-encoding") and b"chunked" in l for l in lines):
        return rest.endswith(b"0\r\n\r\n")
    return len(rest) >= int([l for l in lines if l.startswith(b"content-length")][0].split(b":")[1])


socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
for _ in range(250):
    for s in socks:
        s.sendall(req)
    for s in socks:
        buf = b""
        while not done(buf):
            buf += s.recv(65536)
PY
	pid_var="${name}_pid"
	kill -TERM "${!pid_var}"
	wait "${!pid_var}" 2>/dev/null || true
	callgrind_annotate "$WORK/$name.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
ia=$(count ca "$A")
ib=$(count cb "$B")

echo "ab: A=$A  B=$B  stream=$STREAM"
echo "wrk -t1 -c$CONNS -d${DUR}s x $ROUNDS rounds, alternating (req/s): A:$ra  B:$rb"
awk -v a="$ra" -v b="$rb" -v ia="$ia" -v ib="$ib" 'BEGIN {
	na = split(a, x); nb = split(b, y); sa = sb = 0
	for (i = 1; i <= na; i++) sa += x[i]
	for (i = 1; i <= nb; i++) sb += y[i]
	printf "mean req/s: A %.0f  B %.0f  B/A %.3f\n", sa / na, sb / nb, (sb / nb) / (sa / na)
	printf "instructions per request (callgrind, 2000 requests incl. start-up): A %.0f  B %.0f  B/A %.3f\n",
		ia / 2000, ib / 2000, ib / ia
}'
