#!/bin/sh
# Fuzz the HTTP parsing layer, the request body scan (checked against
# jansson), the response stream scan (whole against split), the reader of
# vLLM's /metrics, the config loader and loadgen's stream spec with libFuzzer under ASan + UBSan (clang from Debian).  Bounded: SECONDS per target (60).
#
#   scripts/fuzz.sh [SECONDS]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
out=build-fuzz
mkdir -p "$out"
flags="-g -O1 -std=c11 -D_GNU_SOURCE -DLLHTTP_STRICT_MODE=1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. -I/usr/share/include/llhttp"
llhttp="/usr/share/llhttp/llhttp.c /usr/share/llhttp/api.c /usr/share/llhttp/http.c"
# shellcheck disable=SC2086 # $flags and $llhttp are lists
clang $flags tests/fuzz/fuzz_http.c gateway/http.c gateway/buf.c gateway/errors.c conf/*.c $llhttp \
	-ljansson -lyaml -lcrypto -o "$out/fuzz_http"
# shellcheck disable=SC2086
clang $flags tests/fuzz/fuzz_body.c gateway/openai.c gateway/jscan.c gateway/buf.c gateway/http.c \
	queue/bucket.c $llhttp -ljansson -lm -o "$out/fuzz_body"
# shellcheck disable=SC2086
clang $flags tests/fuzz/fuzz_conf.c conf/*.c -lyaml -ljansson -lcrypto -o "$out/fuzz_conf"
# shellcheck disable=SC2086
clang $flags tests/fuzz/fuzz_sse.c gateway/sse.c -o "$out/fuzz_sse"
# shellcheck disable=SC2086
clang $flags tests/fuzz/fuzz_promtext.c backends/promtext.c -lm -o "$out/fuzz_vllm"
# shellcheck disable=SC2086
clang $flags tests/fuzz/fuzz_lgspec.c bench/loadgen/spec.c -lm -o "$out/fuzz_lgspec"
for t in http body sse vllm conf lgspec; do
	mkdir -p "$out/corpus-$t"
	echo "fuzz: $t for ${secs}s"
	dict=""
	[ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
	# shellcheck disable=SC2086 # $dict is empty or one flag
	"$out/fuzz_$t" $dict -max_total_time="$secs" -max_len=4096 -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 \
		"$out/corpus-$t" "tests/fuzz/corpus/$t" 2>"$out/fuzz_$t.log" || { tail -40 "$out/fuzz_$t.log"; exit 1; }
	grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/fuzz_$t.log" | sed "s/^/fuzz: $t: /"
done
echo "fuzz: no crash, leak, hang or undefined behaviour found"
