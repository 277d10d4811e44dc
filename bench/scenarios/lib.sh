# shellcheck shell=bash
# Shared helpers for the benchmark scenarios (sourced, not run).
#
# Everything listens on 127.0.0.1 with ports the kernel picks; each helper
# waits for the process to print the address it bound.  Every process a
# scenario starts is killed on exit, whatever the exit path.

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${SLUICE_BUILD_DIR:-$ROOT/build}
WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
MADE_WORK=$WORK
PIDS=""

cleanup() {
	# shellcheck disable=SC2086 # a list of pids
	[ -z "$PIDS" ] || kill $PIDS 2>/dev/null || true
	wait 2>/dev/null || true
	# Only the folder made above, whatever WORK was set to since.
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$MADE_WORK"
}
trap cleanup EXIT INT TERM

die() { echo "$0: $*" >&2; exit 1; }

# wait_port LOGFILE REGEX: print the port captured by REGEX once it appears.
wait_port() {
	i=0
	while [ $i -lt 100 ]; do
		port=$(sed -n "s/.*$2.*127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p" "$1" | head -n 1)
		[ -n "$port" ] && { echo "$port"; return 0; }
		sleep 0.05
		i=$((i + 1))
	done
	cat "$1" >&2
	die "no '$2' line in $1"
}

# start_gpusim NAME ARGS...: sets NAME_port
start_gpusim() {
	name=$1; shift
	"$BUILD/bench/gpusim" --listen 127.0.0.1:0 --name "$name" "$@" >"$WORK/$name.log" 2>&1 &
	PIDS="$PIDS $!"
	eval "${name}_port=\$(wait_port \"\$WORK/$name.log\" 'gpusim listening on')"
}

# start_sluice NAME CONFIG_FILE: sets NAME_port, NAME_admin, NAME_pid
start_sluice() {
	"$BUILD/sluice" -c "$2" >"$WORK/$1.log" 2>&1 &
	eval "${1}_pid=$!"
	PIDS="$PIDS $!"
	eval "${1}_port=\$(wait_port \"\$WORK/$1.log\" 'proxy listening on')"
	eval "${1}_admin=\$(wait_port \"\$WORK/$1.log\" 'admin listening on')"
}

# free_port: a port that was free a moment ago (for nginx, which cannot
# report an ephemeral port).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_nginx NAME HOST:PORT...: nginx (1 worker) proxying round-robin to the
# given servers over keep-alive connections; sets NAME_port.
start_nginx() {
	name=$1; shift
	port=$(free_port)
	mkdir -p "$WORK/$name"
	servers=""
	for s in "$@"; do servers="$servers server $s;"; done
	cat >"$WORK/$name.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/$name/nginx.pid;
error_log $WORK/$name/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $WORK/$name;
    proxy_temp_path $WORK/$name;
    upstream backends { $servers keepalive 256; }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 600s;
        }
    }
}
NGINX
	nginx -c "$WORK/$name.conf" -p "$WORK/$name" &
	PIDS="$PIDS $!"
	eval "${name}_port=$port"
	i=0
	while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 100 ] || die "nginx did not start: $(cat "$WORK/$name/error.log")"
		sleep 0.05
	done
}

# stop NAME_pid: stop one process started by a helper (SIGTERM, then wait).
stop_pid() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# shellcheck disable=SC2034 # used by the scenarios that source this file
LOADGEN="$BUILD/bench/loadgen"
# shellcheck disable=SC2034
REPORT="python3 $ROOT/bench/scenarios/report.py"

# hash_key KEY: the sha256 a tenant's keys: entry wants.
hash_key() { printf %s "$1" | "$BUILD/sluice" hash-key | sed 's/.*"\(.*\)"/\1/'; }

# run_loadgen NAME PORT STREAM...: one loadgen run of $DUR seconds (after a
# 2 s warmup) into $WORK/NAME.json, its table in $WORK/NAME.txt.
run_loadgen() {
	name=$1 port=$2; shift 2
	args=()
	for s in "$@"; do args+=(-S "$s"); done
	"$LOADGEN" -t "127.0.0.1:$port" -d "$DUR" -w 2 -g 10 -j "$WORK/$name.json" "${args[@]}" \
		>"$WORK/$name.txt" 2>&1 || die "loadgen failed ($name): $(cat "$WORK/$name.txt")"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed (run scripts/setup.sh --bench)"; }

# chat_batch_conf CLASSES POOLS [TOP]: a sluice config on ephemeral ports
# with the two tenants the traffic-mix scenarios use, chat (key sk-chat,
# interactive) and batch (sk-batch, opportunistic); CLASSES and POOLS are
# the bodies of its classes: and pools: sections, TOP more top-level lines.
chat_batch_conf() {
	cat <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
${3:+$3
}classes:
$1
pools:
$2
tenants:
  chat:  { keys: [ { sha256: "$(hash_key sk-chat)" } ],  default_class: interactive,   max_class: interactive }
  batch: { keys: [ { sha256: "$(hash_key sk-batch)" } ], default_class: opportunistic, max_class: opportunistic }
YAML
}

# slice_pool NAME SLICE PORT SLOTS [LINE]: a pools: entry with one backend on
# 127.0.0.1:PORT; LINE: one more key of the pool (e.g. its slots: map).
slice_pool() {
	echo "  $1:"
	echo "    slice: $2"
	[ -z "${5:-}" ] || echo "    $5"
	echo "    backends: [ { address: 127.0.0.1:$3, max_inflight: $4 } ]"
}

# bench_conf FILE BACKEND_PORT: sluice in production shape in front of one
# fast backend (a tenant with key sk-bench, two classes, histograms on);
# bench_lua FILE: the wrk script that calls it (a small completion with the
# key and x-sluice-class).  For the per-request cost scenarios.
bench_conf() {
	cat >"$1" <<YAML
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  interactive: { max_queue: 4096, max_wait_ms: 5000, pools: [sim] }
  standard: { max_queue: 4096, max_wait_ms: 5000, pools: [sim] }
pools:
  sim:
    slice: elastic
    backends: [ { address: 127.0.0.1:$2, max_inflight: 1024 } ]
tenants:
  bench:
    keys: [ { sha256: "$(hash_key sk-bench)" } ]
    default_class: standard
    max_class: interactive
    requests_per_s: 1000000
    tokens_per_min: 1000000000
YAML
}
bench_lua() {
	cat >"$1" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"m","prompt":"hello world","max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.headers["x-sluice-class"] = "interactive"
LUA
}
