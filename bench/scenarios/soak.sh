#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# soak: a long run of mixed traffic with faults, to see that nothing leaks
# and nothing is answered twice or not at all.  loadgen sends streamed and
# non-streamed completions (standard class) to a zero-latency gpusim that
# fails 1% of them with a 500; alongside, a client sends bad input
# (opportunistic class): requests it abandons before the answer, invalid
# JSON, oversized headers and malformed HTTP.  Printed: sluice's RSS after
# the first tenth of the run and at the end, its open fds before and after,
# and loadgen's answered requests against sluice's sluice_requests_total for
# the standard class (equal when every request was answered exactly once).
#
#   bench/scenarios/soak.sh [SECONDS=40]
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-40}
"$ROOT/scripts/setup.sh" >/dev/null
start_gpusim sim --zero --fail-rate 0.01
cat >"$WORK/sluice.yaml" <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  standard: { max_queue: 4096, max_wait_ms: 5000, pools: [sim] }
  opportunistic: { max_queue: 4096, max_wait_ms: 5000, pools: [sim] }
limits: { max_header_bytes: 8KiB }
pools:
  sim:
    slice: elastic
    backends: [ { address: 127.0.0.1:$sim_port, max_inflight: 256 } ]
YAML
start_sluice sl "$WORK/sluice.yaml"
fds() { find "/proc/$1/fd" -mindepth 1 | wc -l; }
fd0=$(fds "$sl_pid")

# The bad client, bounded in time: as many rounds as fit in the run.
python3 - "$sl_port" "$DUR" >"$WORK/bad.txt" 2>&1 <<'PY' &
import socket, sys, time
port, dur = int(sys.argv[1]), float(sys.argv[2])
ok = json = 0
end = time.time() + dur
body = b'{"prompt":"x","max_tokens":4}'
def send(data, read=True):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    if read:
        try:
            s.recv(65536)
        except OSError:
            pass
    s.close()
head = b"POST /v1/completions HTTP/1.1\r\nhost: x\r\nx-sluice-class: opportunistic\r\n"
rounds = 0
while time.time() < end:
    send(head + b"content-length: %d\r\n\r\n" % len(body) + body, read=False)     # abandoned
    send(head + b"content-length: 9\r\n\r\n{not json")                              # invalid JSON
    send(head + b"x-pad: " + b"a" * 9000 + b"\r\n\r\n")                             # 431
    send(b"GET / HTTP/9.9 what\r\n\r\n")                                            # 400
    rounds += 1
    time.sleep(0.005)
print(f"bad client: {rounds} rounds of 4")
PY
bad=$!
"$LOADGEN" -t "127.0.0.1:$sl_port" -d "$((DUR / 10))" -w 0 -g 5 -j "$WORK/warm.json" \
	-S "name=plain,concurrency=32,max_tokens=4" -S "name=sse,concurrency=16,max_tokens=4,stream=1" >/dev/null 2>&1 ||
	die "loadgen failed (warm)"
rss0=$(rss_kib "$sl_pid")
"$LOADGEN" -t "127.0.0.1:$sl_port" -d "$((DUR - DUR / 10))" -w 0 -g 5 -j "$WORK/main.json" \
	-S "name=plain,concurrency=32,max_tokens=4" -S "name=sse,concurrency=16,max_tokens=4,stream=1" \
	>"$WORK/main.txt" 2>&1 || die "loadgen failed: $(cat "$WORK/main.txt")"
wait "$bad"
sleep 1
rss1=$(rss_kib "$sl_pid")
fd1=$(fds "$sl_pid")
python3 - "$WORK/warm.json" "$WORK/main.json" "$sl_admin" "$rss0" "$rss1" "$fd0" "$fd1" "$(cat "$WORK/bad.txt")" <<'PY'
import json, re, sys, urllib.request
warm, main, admin, rss0, rss1, fd0, fd1, bad = sys.argv[1:]
def answered(path):
    total = 0
    for s in json.load(open(path))["streams"]:
        total += s["ok"] + s["rejected_429"] + s["other_status"]
    return total, sum(s["errors"] for s in json.load(open(path))["streams"])
a0, e0 = answered(warm)
a1, e1 = answered(main)
text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics").read().decode()
counted = sum(float(m.group(1)) for m in re.finditer(r'^sluice_requests_total\{[^}]*class="standard"[^}]*\} (\S+)', text, re.M))
print(f"soak: {a0 + a1} loadgen requests answered ({e0 + e1} transport errors); {bad}")
print(f"sluice_requests_total{{class=standard}}: {counted:.0f} (equal to loadgen's answered: {counted == a0 + a1})")
print(f"RSS: {rss0} KiB after the first tenth, {rss1} KiB at the end ({(int(rss1) / int(rss0) - 1) * 100:+.1f}%, target within 10%)")
idle = sum(float(m.group(1)) for m in re.finditer(r'^sluice_backend_idle_connections\{[^}]*\} (\S+)', text, re.M))
print(f"open fds: {fd0} before, {fd1} after, of which {idle:.0f} idle pooled upstream connections "
      f"(closed after timeouts.upstream_idle_ms): {int(fd1) - idle:.0f} otherwise")
PY
