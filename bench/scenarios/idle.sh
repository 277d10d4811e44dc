#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# idle: memory per idle keep-alive client connection.  Opens N connections
# to sluice (10,000 by default), sends one request on each so that every
# connection has been used and is parked in keep-alive, then reads sluice's
# RSS and prints the growth per connection.
#
#   bench/scenarios/idle.sh [CONNECTIONS]
set -eu
. "$(dirname "$0")/lib.sh"

N=${1:-10000}
"$ROOT/scripts/setup.sh" >/dev/null
# sluice and the client each hold N descriptors (plus a few).
ulimit -n $((N + 1024)) 2>/dev/null || die "cannot raise the open file limit to $((N + 1024))"

start_gpusim sim --zero
cat >"$WORK/sluice.yaml" <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
limits: { max_connections: $((N + 100)) }
timeouts: { idle_ms: 300000, header_ms: 300000 }
classes:
  standard: { max_queue: 4096, max_wait_ms: 5000, pools: [sim] }
pools:
  sim:
    slice: elastic
    backends: [ { address: 127.0.0.1:$sim_port, max_inflight: 64 } ]
YAML
start_sluice sluice "$WORK/sluice.yaml"
sleep 0.2
before=$(rss_kib "$sluice_pid")

python3 - "$sluice_port" "$N" "$sluice_pid" "$before" <<'PY'
import socket, sys, time
port, n, pid, before = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
req = (b'POST /v1/completions HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n'
       b'content-length: 35\r\n\r\n{"prompt":"hello","max_tokens":4}  ')
socks = []
deadline = time.monotonic() + 120
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    socks.append(s)
    if i % 500 == 499:          # read answers in batches to keep the loop simple
        for t in socks[-500:]:
            t.settimeout(10)
            data = t.recv(65536)
            assert data.startswith(b"HTTP/1.1 200"), data[:80]
    if time.monotonic() > deadline:
        sys.exit("idle: timed out opening connections")
for t in socks[n - n % 500:]:
    t.settimeout(10)
    assert t.recv(65536).startswith(b"HTTP/1.1 200")
time.sleep(1.0)
def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
after = rss()
print(f"idle: {n} keep-alive connections, each used once, then idle")
print(f"sluice RSS: {before} KiB before, {after} KiB with them open")
print(f"per idle connection: {(after - before) * 1024 / n:.0f} bytes (target < 4096)")
for s in socks:
    s.close()
PY
