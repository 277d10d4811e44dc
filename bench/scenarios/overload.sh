#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# overload: offered load at 3x what the slice can serve.
#
# One elastic slice (gpusim, 16 slots, calibrated defaults).  Its capacity C
# is measured first (closed loop, saturated).  Then four tenants offer 3C
# together, open loop, for the phase, in the standard class (deadline 1 s).
# Meanwhile a probe, as one of those tenants, retries each 429 once after its
# advertised retry-after-ms and counts how often that retry succeeds.
# Reports goodput against C, how fast refusals come, the share of requests
# answered (served or refused) within the deadline, and sluice's RSS.
#
#   bench/scenarios/overload.sh [SECONDS]
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-20}
"$ROOT/scripts/setup.sh" >/dev/null

start_gpusim spot --slots 16
{
	cat <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  standard: { max_queue: 2048, max_wait_ms: 1000, pools: [spot] }
pools:
  spot:
    slice: elastic
    backends: [ { address: 127.0.0.1:$spot_port, max_inflight: 16 } ]
tenants:
YAML
	for t in t1 t2 t3 t4; do
		echo "  $t: { keys: [ { sha256: \"$(hash_key "sk-$t")\" } ], default_class: standard, max_class: standard }"
	done
} >"$WORK/sluice.yaml"
start_sluice sl "$WORK/sluice.yaml"

REQ="prompt_tokens=256,max_tokens=32"
"$LOADGEN" -t "127.0.0.1:$sl_port" -d 8 -w 2 -j "$WORK/cap.json" \
	-S "name=cap,concurrency=64,$REQ,key=sk-t1" >"$WORK/cap.txt" 2>&1 || die "capacity run failed"
cap=$($REPORT get "$WORK/cap.json" cap ok_rps)
per=$(python3 -c "print(round(3 * $cap / 4, 1))")
rss0=$(rss_kib "$sl_pid")

args=()
for t in t1 t2 t3 t4; do args+=(-S "name=$t,rate=$per,$REQ,key=sk-$t,max_conns=3000"); done
"$LOADGEN" -t "127.0.0.1:$sl_port" -d "$DUR" -w 2 -g 10 -j "$WORK/over.json" "${args[@]}" \
	>"$WORK/over.txt" 2>&1 &
lg=$!
sleep 4
python3 - "$sl_port" "$((DUR - 4))" >"$WORK/probe.txt" <<'PY'
# The probe: tenant t1's SDK, retrying each 429 once after its hint.
import json, socket, sys, time
port, until = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
body = json.dumps({"prompt": "x" * 1024, "prompt_tokens": 256, "max_tokens": 32}).encode()
req = (b"POST /v1/completions HTTP/1.1\r\nhost: t\r\nauthorization: Bearer sk-t1\r\n"
       b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)) + body
def once():
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(req)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head = data.split(b"\r\n\r\n")[0].decode()
    s.close()
    status = int(head.split()[1])
    hint = next((int(l.split(":")[1]) for l in head.split("\r\n") if l.lower().startswith("retry-after-ms:")), None)
    return status, hint
first_429 = retried_ok = retried = 0
hints = []
while time.monotonic() < until:
    status, hint = once()
    if status == 429 and hint is not None:
        first_429 += 1
        hints.append(hint)
        time.sleep(hint / 1000)
        retried += 1
        retried_ok += once()[0] == 200
    time.sleep(0.05)
hints.sort()
print(json.dumps({"refused": first_429, "retried": retried, "retried_ok": retried_ok,
                  "hint_p50_ms": hints[len(hints) // 2] if hints else None,
                  "hint_max_ms": hints[-1] if hints else None}))
PY
rss_peak=$(rss_kib "$sl_pid")
wait $lg || die "overload run failed: $(cat "$WORK/over.txt")"
rss1=$(rss_kib "$sl_pid")

echo "overload: ${DUR}s, $(nproc) cores; one slice of 16 slots; prompt 256, 32 tokens; standard class, deadline 1 s"
echo "capacity C (closed loop, saturated): $cap req/s; offered: 4 tenants x $per req/s = 3C"
echo
$REPORT header
for t in t1 t2 t3 t4; do $REPORT row "tenant $t (offers 0.75C)" "$WORK/over.json" "$t"; done
echo
python3 - "$WORK/over.json" "$cap" "$(cat "$WORK/probe.txt")" "$rss0" "$rss_peak" "$rss1" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
cap, probe = float(sys.argv[2]), json.loads(sys.argv[3])
rss0, rss_peak, rss1 = (int(x) for x in sys.argv[4:7])
ok = sum(s["ok"] for s in data["streams"])
sent = sum(s["sent"] for s in data["streams"])
refused = sum(s["rejected_429"] for s in data["streams"])
dur = data["run"]["duration_s"]
# answered in time: served within deadline (1 s queue) + service, or refused at once
in_time = 0
for s in data["streams"]:
    lat, rej = s["latency_ms"], s["reject_latency_ms"]
    in_time += s["ok"] if lat.get("p99", 0) <= 1000 + 400 else s["ok"] * 0.99
    in_time += s["rejected_429"] if rej.get("p99", 0) <= 1000 else s["rejected_429"] * 0.99
print(f"goodput: {ok / dur:.1f} req/s = {ok / dur / cap:.2f} of capacity; {ok} served, {refused} refused (429) of {sent} sent")
p99s = [s["reject_latency_ms"].get("p99", 0) for s in data["streams"]]
print(f"refusals answered fast: 429 latency p99 {max(p99s):.1f} ms (worst tenant)")
print(f"answered within the deadline (served, or refused at once): {in_time / sent * 100:.1f}% of requests")
if probe["retried"]:
    print(f"retry hints: {probe['retried_ok']}/{probe['retried']} retries after the advertised delay succeeded "
          f"({probe['retried_ok'] / probe['retried'] * 100:.0f}%); hint p50 {probe['hint_p50_ms']} ms, max {probe['hint_max_ms']} ms")
else:
    print("retry hints: the probe was never refused")
print(f"sluice RSS: {rss0} KiB before, {rss_peak} KiB during, {rss1} KiB after")
PY
