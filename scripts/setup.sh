#!/bin/sh
# Install what sluice needs from Debian, only what is missing, then build.
#
#   scripts/setup.sh            build dependencies, then build ./build
#   scripts/setup.sh --bench    also the benchmark tools (wrk, nginx)
#   scripts/setup.sh --deploy   also what builds the container image (mmdebstrap, umoci)
#   scripts/setup.sh --deps     install only, no build
#
# Idempotent: a second run installs nothing and rebuilds only what changed.
set -eu

cd "$(dirname "$0")/.."

pkgs="gcc pkg-config meson ninja-build libuv1-dev libjemalloc-dev libcriterion-dev
      node-llhttp libyaml-dev libjansson-dev libssl-dev python3 curl nodejs prometheus
      clang libclang-rt-14-dev libc-ares-dev dnsmasq-base libhiredis-dev redis-server tmux"
# npm, for the OpenAI SDK test (tests/e2e); NodeSource's nodejs bundles its own
# npm and conflicts with Debian's.
dpkg-query -W -f='${Provides}' nodejs 2>/dev/null | grep -qw npm || pkgs="$pkgs npm"
build=1
for arg in "$@"; do
	case "$arg" in
	--bench) pkgs="$pkgs wrk nginx-light haproxy valgrind util-linux" ;;
	--deploy) pkgs="$pkgs mmdebstrap umoci" ;;
	--deps) build=0 ;;
	*) echo "usage: $0 [--bench] [--deploy] [--deps]" >&2; exit 2 ;;
	esac
done

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "setup: installing$missing"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	# shellcheck disable=SC2086 # $missing is a list of words on purpose
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi

[ "$build" -eq 1 ] || exit 0
[ -d build ] || meson setup build --buildtype=release
ninja -C build
