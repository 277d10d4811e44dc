#!/bin/sh
# Install, build, and run sluice on its embedded default: the demo config
# (conf/examples/demo.yaml) in front of two simulated GPU slices (gpusim on
# 127.0.0.1:8001, reserved, and 127.0.0.1:8002, elastic).  Ctrl-C stops all.
set -eu

cd "$(dirname "$0")/.."
scripts/setup.sh

pids=""
cleanup() {
	# shellcheck disable=SC2086 # a list of pids
	[ -z "$pids" ] || kill $pids 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

./build/bench/gpusim --listen 127.0.0.1:8001 --name gold --slots 64 &
pids="$pids $!"
./build/bench/gpusim --listen 127.0.0.1:8002 --name spot --slots 64 &
pids="$pids $!"

# tests/integration/test_demo.py runs these curl lines against the demo
# config and checks that README.md shows the same ones.
cat <<'MSG'

sluice demo: proxy on http://127.0.0.1:8080, admin on http://127.0.0.1:9090
  curl -s http://127.0.0.1:8080/v1/completions -H 'authorization: Bearer sk-chat-demo' \
       -H 'x-sluice-class: interactive' -d '{"prompt":"hello","max_tokens":16}'
  curl -sN http://127.0.0.1:8080/v1/chat/completions -H 'authorization: Bearer sk-batch-demo' \
       -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":16,"stream":true}'
  curl -s http://127.0.0.1:9090/metrics
Ctrl-C stops sluice and the simulated slices.

MSG
./build/sluice -c conf/examples/demo.yaml &
pids="$pids $!"
wait
