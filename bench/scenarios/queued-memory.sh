#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# queued-memory: what a queued long-context request costs sluice in memory.
# One backend slot, held by a long request; then N clients each send one
# request with a BODY_KIB KiB chat body, which all wait in the queue.
# Printed: sluice's RSS before and with them queued, per queued request,
# against the body's own size.
#
#   bench/scenarios/queued-memory.sh [N=200] [BODY_KIB=256]
set -eu
. "$(dirname "$0")/lib.sh"

N=${1:-200}
KIB=${2:-256}
"$ROOT/scripts/setup.sh" >/dev/null
start_gpusim slow --slots 1 --time-scale 50
cat >"$WORK/sluice.yaml" <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
limits: { max_body_bytes: 16MiB, max_queued_bytes: 4GiB }
classes:
  standard: { max_queue: 100000, max_wait_ms: 600000, pools: [slow] }
pools:
  slow:
    slice: elastic
    backends: [ { address: 127.0.0.1:$slow_port, max_inflight: 1 } ]
YAML
start_sluice sl "$WORK/sluice.yaml"
python3 - "$sl_port" "$sl_admin" "$N" "$KIB" "$sl_pid" <<'PY'
import json, socket, sys, time
port, admin, n, kib, pid = (int(x) for x in sys.argv[1:])

def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def depth():
    s = socket.create_connection(("127.0.0.1", admin))
    s.sendall(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    for line in data.decode().splitlines():
        if line.startswith('sluice_queue_depth{class="standard"}'):
            return int(float(line.split()[1]))
    return 0

def request(body):
    return (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body)) + body

hold = socket.create_connection(("127.0.0.1", port))
hold.sendall(request(json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1000}).encode()))
time.sleep(0.5)
body = json.dumps({"messages": [{"role": "user", "content": "tok " * (kib * 256)}], "max_tokens": 4}).encode()
before = rss()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(request(body))
    socks.append(s)
deadline = time.time() + 60
while depth() < n and time.time() < deadline:
    time.sleep(0.1)
time.sleep(0.5)
after = rss()
q = depth()
per = (after - before) * 1024 / max(q, 1)
print(f"queued-memory: {q} requests of {len(body)} bytes queued; RSS {before} KiB -> {after} KiB")
print(f"per queued request: {per:.0f} bytes = body + {per - len(body):.0f} bytes (target: body + 2048)")
PY
