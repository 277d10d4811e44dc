#!/bin/sh
# Install, build and run the whole test suite: unit and integration tests,
# first on the release build, then on an AddressSanitizer + UBSan build; then
# a bounded libFuzzer run of every parser (SLUICE_FUZZ_SECONDS each, 15).
#
#   scripts/test.sh                 both builds
#   SLUICE_NO_SANITIZE=1 scripts/test.sh   release build only (quicker)
set -eu

cd "$(dirname "$0")/.."
scripts/setup.sh --deploy   # the image test builds the container image

# Node modules from their lockfiles, when missing or stale: the OpenAI SDK
# test's, and the Kubernetes schemas the manifests are checked against.
for dir in tests/e2e deploy/kubernetes/check; do
	if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
		[ -n "$(find "$dir/package.json" "$dir/package-lock.json" -newer "$dir/node_modules/.package-lock.json")" ]; then
		echo "test: installing $dir/node_modules"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	fi
done

SLUICE_REQUIRE_E2E=1 meson test -C build --print-errorlogs

if [ "${SLUICE_NO_SANITIZE:-0}" != 1 ]; then
	[ -d build-asan ] || meson setup build-asan -Dsanitize=true --buildtype=debug
	ninja -C build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		SLUICE_REQUIRE_E2E=1 meson test -C build-asan --print-errorlogs --timeout-multiplier 3
fi
# Every parser is fuzzed a little on every run (the checked-in corpus,
# crash regressions included, is replayed first); scripts/fuzz.sh SECONDS
# fuzzes longer.
scripts/fuzz.sh "${SLUICE_FUZZ_SECONDS:-15}"
echo "test: all suites passed"
