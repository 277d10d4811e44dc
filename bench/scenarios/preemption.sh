#!/bin/bash
# shellcheck disable=SC2154 # *_port and *_pid are set by start_* through eval
# preemption: an interactive burst at 3x the reserved capacity during an
# opportunistic flood of long generations, with preemption off and on.
#
# Preemption only matters where interactive work may use the slots the
# flood holds, so both classes list the elastic pool: gold (reserved, 4
# slots) serves interactive only; spot (elastic, 64 slots) serves both, and
# the flood may hold all of it (no max_slot_share headroom): every slot the
# burst may use beyond gold's is held by opportunistic work.
#
#   gpusim gold --slots 4, spot --slots 64, calibrated H100 timings scaled
#   by TIME_SCALE (default 0.5: a 2000-token generation lasts ~3 s).
#   Interactive: open loop, 240 req/s (gold's 4 slots serve ~80 req/s of
#   these), prompt 128, 16 output tokens, streamed; max_wait_ms 250.
#   Flood: 72 closed-loop clients (more than spot's 64 slots, so it always
#   has work waiting), prompt 256, 2000 output tokens, not streamed (batch).
#
# Misses: interactive requests not served (429 queue_timeout or
# deadline_unmeetable, errors, dropped) over those sent.  Flood goodput:
# output tokens of completed flood requests per second (a preempted one
# answers 503 and counts nothing; its client sends its next request).
#
# Knobs: PREEMPT_RATE (max_per_s, 50), TIME_SCALE (0.5), SPOT_ARGS (more
# gpusim options for spot, e.g. "--prefill-min-ms 0.2 --prefill-per-ktok-ms
# 0.2" for a slice whose prefills do not stall its batch, as with chunked
# prefill).
#
#   bench/scenarios/preemption.sh [SECONDS_PER_PHASE]
set -eu
. "$(dirname "$0")/lib.sh"

DUR=${1:-30}
SCALE=${TIME_SCALE:-0.5}
RATE=${PREEMPT_RATE:-50}

start_gpusim gold --slots 4 --time-scale "$SCALE"
# shellcheck disable=SC2086 # SPOT_ARGS: extra gpusim options for spot, split on spaces
start_gpusim spot --slots 64 --time-scale "$SCALE" ${SPOT_ARGS:-}

# sluice_conf FILE PREEMPTION
sluice_conf() {
	chat_batch_conf "\
  interactive:   { max_queue: 1024, max_wait_ms: 250,    pools: [gold, spot] }
  opportunistic: { max_queue: 8192, max_wait_ms: 600000, pools: [spot]$2 }" \
		"$(slice_pool gold reserved "$gold_port" 4; slice_pool spot elastic "$spot_port" 64)" >"$1"
}
sluice_conf "$WORK/off.yaml" ""
sluice_conf "$WORK/on.yaml" ", preemption: { enabled: true, max_per_s: $RATE }"

INTER="name=inter,rate=240,prompt_tokens=128,max_tokens=16,stream=1,key=sk-chat,max_conns=2000"
FLOOD="name=flood,concurrency=72,prompt_tokens=256,max_tokens=2000,key=sk-batch"
stat() { curl -s "http://127.0.0.1:$1/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
preemptions() {
	curl -s "http://127.0.0.1:$1/metrics" |
		awk '/^sluice_rejections_total\{.*reason="preempted"/ { n += $2 } END { print n + 0 }'
}

echo "preemption: ${DUR}s per phase, $(nproc) cores, gpusim time-scale $SCALE; interactive 240 req/s"
echo "(prompt 128, 16 tokens, SSE; max_wait_ms 250) on gold (4 slots, reserved) + spot (64, elastic);"
echo "flood 72 clients (prompt 256, 2000 tokens) on spot; preemption max_per_s $RATE${SPOT_ARGS:+; spot: $SPOT_ARGS}"
echo

for mode in off on; do
	start_sluice "sl_$mode" "$WORK/$mode.yaml"
	g0=$(stat "$spot_port" tokens_generated)
	run_loadgen "$mode" "$(eval echo "\$sl_${mode}_port")" "$INTER" "$FLOOD"
	g1=$(stat "$spot_port" tokens_generated)
	gen=$((g1 - g0))
	eval "gen_$mode=$gen"
	eval "pre_$mode=\$(preemptions \"\$sl_${mode}_admin\")"
	# Work thrown away: how long each preempted generation had run.
	eval "lost_$mode=\$(sed -n 's/.*preempted request_id=.* ran_ms=\([0-9]*\).*/\1/p' \"\$WORK/sl_$mode.log\" |
		awk '{ s += \$1 } END { print s / 1000 + 0 }')"
	stop_pid "$(eval echo "\$sl_${mode}_pid")"
done

$REPORT header
$REPORT row "burst 240/s, preemption off" "$WORK/off.json" inter
$REPORT row "flood, preemption off" "$WORK/off.json" flood
$REPORT row "burst 240/s, preemption on" "$WORK/on.json" inter
$REPORT row "flood, preemption on" "$WORK/on.json" flood
echo

python3 - "$WORK/off.json" "$WORK/on.json" "$pre_off" "$pre_on" "$gen_off" "$gen_on" "$DUR" "$lost_on" <<'PY'
import json, sys
off, on = (json.load(open(p)) for p in sys.argv[1:3])
pre_off, pre_on, gen_off, gen_on, dur, lost = (float(x) for x in sys.argv[3:9])
def s(d, name):
    return next(x for x in d["streams"] if x["name"] == name)
def misses(d):
    i = s(d, "inter")
    missed = i["sent"] - i["ok"] + i["dropped"]
    return missed, i["sent"] + i["dropped"]
for label, d in (("off", off), ("on", on)):
    m, n = misses(d)
    i = s(d, "inter")
    p99 = i["latency_ms"].get("p99", float("nan"))
    print(f"preemption {label:>3}: interactive p99 {p99:.1f} ms, misses {m}/{n} = {100 * m / n:.2f}% "
          f"(reasons {i['reasons'] or '-'})")
fo, fn = s(off, "flood")["output_tokens_per_s"], s(on, "flood")["output_tokens_per_s"]
print(f"flood goodput (completed requests' tokens/s): off {fo:.0f}, on {fn:.0f}: {fn / fo:.2f}x (target >= 0.9)")
print(f"preemptions: off {pre_off:.0f}, on {pre_on:.0f} ({pre_on / (dur + 2):.1f}/s); "
      f"tokens generated on spot (incl. warmup and grace): off {gen_off:.0f}, on {gen_on:.0f}")
print(f"slot time thrown away by preemption: {lost:.1f} slot-s, {100 * lost / (64 * (dur + 2)):.1f}% of spot's "
      f"64 slots over the run")
mo, no = misses(on)
print(f"interactive misses with preemption on: {100 * mo / no:.2f}% (target <= 1%)")
PY
