#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# long-context: is sluice itself the noisy neighbour when batch work sends
# long prompts?  A reserved slice (gold, 4 slots) and an elastic slice
# (spot, 64 slots), both gpusim.  Interactive: open loop, 20 req/s, prompt
# 128 tokens, 16 output tokens, streamed, to the reserved slice.  Flood: 16
# closed-loop connections, prompts of BODY_KIB KiB (chat messages), 4 output
# tokens, opportunistic, to the elastic slice (its prefill is made cheap,
# 0.02 ms per 1000 tokens, so that the proxies, not the simulated GPU, limit
# the flood).  The same traffic goes, in the same run, through sluice and
# through a forwarding-only nginx (1 worker) split by hand: interactive to
# the reserved slice, the flood to the elastic one (sluice's interactive
# class lists only the reserved pool here, so that both route alike and the
# difference is the proxies' own cost: spilled to an elastic slice full of
# long contexts, an interactive request would decode as slowly as they do).  Printed: interactive
# p99 and time to first byte (the first SSE event) under the flood over
# alone, and the flood's completions/s, for both.
#
#   bench/scenarios/long-context.sh [SECONDS_PER_PHASE=15] [BODY_KIB=256]
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-15}
KIB=${2:-256}
"$ROOT/scripts/setup.sh" --bench >/dev/null
need nginx

start_gpusim gold --slots 4
start_gpusim spot --slots 64 --prefill-per-ktok-ms 0.02 --prefill-max-tokens 1000000

chat_batch_conf "\
  interactive:   { max_queue: 256,  max_wait_ms: 250,    pools: [gold] }
  opportunistic: { max_queue: 8192, max_wait_ms: 600000, pools: [spot], max_slot_share: 0.75 }" \
	"$(slice_pool gold reserved "$gold_port" 4; slice_pool spot elastic "$spot_port" 64)" \
	"limits: { max_body_bytes: 16MiB, max_queued_bytes: 1GiB }" >"$WORK/sluice.yaml"
start_sluice sl "$WORK/sluice.yaml"

# nginx, forwarding only, split by port: interactive to gold, the rest to spot.
ng_inter=$(free_port)
ng_batch=$(free_port)
mkdir -p "$WORK/ng"
cat >"$WORK/ng.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/ng/nginx.pid;
error_log $WORK/ng/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $WORK/ng;
    proxy_temp_path $WORK/ng;
    client_max_body_size 16m;
    client_body_buffer_size 16m;
    upstream gold { server 127.0.0.1:$gold_port; keepalive 64; }
    upstream spot { server 127.0.0.1:$spot_port; keepalive 64; }
    server {
        listen 127.0.0.1:$ng_inter;
        location / { proxy_pass http://gold; proxy_http_version 1.1; proxy_set_header Connection "";
                     proxy_buffering off; proxy_request_buffering off; }
    }
    server {
        listen 127.0.0.1:$ng_batch;
        location / { proxy_pass http://spot; proxy_http_version 1.1; proxy_set_header Connection "";
                     proxy_buffering off; proxy_request_buffering off; }
    }
}
NGINX
nginx -c "$WORK/ng.conf" -p "$WORK/ng" &
PIDS="$PIDS $!"
sleep 0.5

TOK=$((KIB * 256))	# 4 characters a token
INTER="name=inter,rate=20,prompt_tokens=128,max_tokens=16,stream=1,key=sk-chat"
FLOOD="name=flood,concurrency=16,path=/v1/chat/completions,prompt_tokens=$TOK,max_tokens=4,key=sk-batch"

echo "long-context: ${DUR}s per phase, $(nproc) cores; interactive 20 req/s (prompt 128, 16 tokens, SSE) to gold (4 slots);"
echo "flood 16 connections, ${KIB} KiB chat prompts, 4 tokens, opportunistic to spot (64 slots)"
echo

# nginx's one worker, the child of the master it started
ng_pid=$(pgrep -P "$(cat "$WORK/ng/nginx.pid")" | head -n 1)
# cpu PID: CPU seconds the process (all its threads) has used.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }

run_loadgen sl_alone "$sl_port" "$INTER"
c0=$(cpu "$sl_pid")
run_loadgen sl_flood "$sl_port" "$INTER" "$FLOOD"
sl_cpu=$(awk -v a="$c0" -v b="$(cpu "$sl_pid")" 'BEGIN { print b - a }')
run_loadgen ng_alone "$ng_inter" "$INTER"
c0=$(cpu "$ng_pid")
run_loadgen ng_flood "$ng_inter" "$INTER" "$FLOOD,target=127.0.0.1:$ng_batch"
ng_cpu=$(awk -v a="$c0" -v b="$(cpu "$ng_pid")" 'BEGIN { print b - a }')

$REPORT header
$REPORT row "sluice: interactive alone" "$WORK/sl_alone.json" inter
$REPORT row "sluice: interactive + flood" "$WORK/sl_flood.json" inter
$REPORT row "sluice: flood" "$WORK/sl_flood.json" flood
$REPORT row "nginx split: interactive alone" "$WORK/ng_alone.json" inter
$REPORT row "nginx split: interactive + flood" "$WORK/ng_flood.json" inter
$REPORT row "nginx split: flood" "$WORK/ng_flood.json" flood
echo
g() { $REPORT get "$WORK/$1.json" "$2" "$3"; }
python3 - "$(g sl_alone inter latency_ms.p99)" "$(g sl_flood inter latency_ms.p99)" \
	"$(g sl_alone inter ttfb_ms.p99)" "$(g sl_flood inter ttfb_ms.p99)" \
	"$(g ng_alone inter latency_ms.p99)" "$(g ng_flood inter latency_ms.p99)" \
	"$(g ng_alone inter ttfb_ms.p99)" "$(g ng_flood inter ttfb_ms.p99)" \
	"$(g sl_flood flood ok_rps)" "$(g ng_flood flood ok_rps)" "$KIB" "$sl_cpu" "$ng_cpu" "$DUR" <<'PY'
import sys
s0, s1, st0, st1, n0, n1, nt0, nt1, sf, nf, kib, scpu, ncpu, dur = (float(x) for x in sys.argv[1:])
print(f"{kib:.0f} KiB: interactive p99 flood/alone: sluice {s1 / s0:.2f}x ({s0:.1f} -> {s1:.1f} ms), "
      f"nginx {n1 / n0:.2f}x (target: sluice <= 1.10)")
print(f"{kib:.0f} KiB: interactive TTFB p99 flood/alone: sluice {st1 / st0:.2f}x ({st0:.1f} -> {st1:.1f} ms), "
      f"nginx {nt1 / nt0:.2f}x (target: sluice <= 1.2)")
print(f"{kib:.0f} KiB: flood completions/s: sluice {sf:.0f}, nginx {nf:.0f}, ratio {sf / nf:.2f} (target >= 0.95)")
# CPU over the whole phase (warmup included) per request counted in it:
# an over-estimate for both, fair between them.
print(f"{kib:.0f} KiB: proxy CPU in the flood phase: sluice {scpu:.2f} s ({scpu / ((sf + 20) * dur) * 1e6:.0f} us/request), "
      f"nginx {ncpu:.2f} s ({ncpu / ((nf + 20) * dur) * 1e6:.0f} us/request), ratio {scpu / max(ncpu, 1e-9):.2f}")
PY
