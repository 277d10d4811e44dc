#!/bin/sh
# Install, build and run the whole test suite: unit and integration tests,
# first on the release build, then on an AddressSanitizer + UBSan build.
#
#   scripts/test.sh                 both builds
#   SLUICE_NO_SANITIZE=1 scripts/test.sh   release build only (quicker)
set -eu

cd "$(dirname "$0")/.."
scripts/setup.sh
meson test -C build --print-errorlogs

if [ "${SLUICE_NO_SANITIZE:-0}" != 1 ]; then
	[ -d build-asan ] || meson setup build-asan -Dsanitize=true --buildtype=debug
	ninja -C build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		meson test -C build-asan --print-errorlogs --timeout-multiplier 3
fi
echo "test: all suites passed"
