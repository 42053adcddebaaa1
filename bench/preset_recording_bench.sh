#!/usr/bin/env bash
# What attention recording costs a real preset run: the same training (a preset and its data, as
# shipped) with hooks.attention off and on, interleaved (off/on, then on/off, ...), in one
# invocation on one machine. Prints per run the process wall time and the recorder's own
# account from train.log, then the median cost of recording as a share of the run with it off.
#   bench/preset_recording_bench.sh [BUILD] [CONFIG] [EPOCHS] [REPEATS] [--set overrides...]
#   e.g. bench/preset_recording_bench.sh build configs/chemberta-esol.yaml 10 3 run.threads=1
# FIRST=on in the environment starts with the on run (pairs alternate from there): to add the
# other order to a long preset measured one pair at a time.
# SITES='[attn.probs, attn.scores, attn.q, ...]' compares two recording runs instead: "off" records
# the preset's sites, "on" these (what recording the model internals adds; issue 21's budget is
# the recorder's time in the trainer's thread).
# Taps present but unobserved (the "off" runs) against no taps at all are measured by
# build/bench/minmax_bench and build/bench/roberta_recording_bench (a model without its tap calls).
set -euo pipefail
BUILD=${1:-build}
CONFIG=${2:-configs/chemberta-esol.yaml}
EPOCHS=${3:-10}
REPEATS=${4:-3}
shift $(( $# < 4 ? $# : 4 ))
EXTRA=("$@")
FIRST_ON=$([ "${FIRST:-off}" = on ] && echo 1 || echo 0)
BIN=$BUILD/cli/attnscope
OUT=$(mktemp -d /tmp/attnscope-recording-bench.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

run() {  # run NAME on|off -> prints "wall_seconds"
  local dir=$OUT/$1 t0 t1 mode=()
  if [ -n "${SITES:-}" ]; then
    mode=(hooks.attention.enabled=true)
    [ "$2" = on ] && mode+=("hooks.attention.sites=$SITES")
  else
    mode=(hooks.attention.enabled="$([ "$2" = on ] && echo true || echo false)")
  fi
  t0=$(date +%s.%N)
  "$BIN" train "$CONFIG" --out "$dir" --force --set train.epochs="$EPOCHS" train.progress=none \
    "${mode[@]}" "${EXTRA[@]}" > "$dir.out" 2>&1
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}

[ -n "${SITES:-}" ] && echo "off: recording the preset's sites; on: recording hooks.attention.sites=$SITES"
echo "preset $CONFIG, $EPOCHS epochs, ${EXTRA[*]:-no overrides}; pair 1 runs $([ $FIRST_ON = 1 ] && echo on || echo off) first; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %10s %10s %8s %s\n' run off_s on_s cost "recorder (from the on run's train.log)"
costs=()
for r in $(seq 1 "$REPEATS"); do
  if (( (r + ${FIRST_ON}) % 2 )); then off=$(run off$r off); on=$(run on$r on); else on=$(run on$r on); off=$(run off$r off); fi
  line=$(grep -o '\[attention\] .*' "$OUT/on$r/train.log" | tail -1)
  h5=$(stat -c %s "$OUT/on$r/attention.h5")
  n=$(sed -n 's/.*\[attention\] \([0-9]*\) epochs recorded.*/\1/p' <<< "$line")
  cost=$(python3 -c "print(f'{($on - $off) / $off * 100:+.2f}')")
  rec=$(sed -n 's/.*recorded; \([0-9.]*\) s of the trainer.s thread.*/\1/p' <<< "$line")
  share=$(python3 -c "print(f'{$rec / $off * 100:.2f}')")
  costs+=("$cost")
  printf '%-8s %10s %10s %7s%% %s\n' "#$r" "$off" "$on" "$cost" "$line"
  echo "         the recorder's time in the trainer's thread: $rec s = $share % of the off run"
  if [ -n "${SITES:-}" ]; then
    rec_off=$(grep -o '\[attention\] .*' "$OUT/off$r/train.log" | tail -1 | sed -n 's/.*recorded; \([0-9.]*\) s of the trainer.s thread.*/\1/p')
    echo "         ... with the preset's sites: $rec_off s; the internals add $(python3 -c "print(f'{($rec - $rec_off) / $off * 100:+.2f}')") % of the run in the trainer's thread"
    echo "         attention.h5 with the preset's sites: $(( $(stat -c %s "$OUT/off$r/attention.h5") / 1000000 )) MB"
  fi
  echo "         attention.h5 $(( h5 / 1000000 )) MB, $n recorded epochs: $(( h5 / 1000000 / (n > 0 ? n : 1) )) MB per recorded epoch"
done
python3 - "${costs[@]}" <<'EOF'
import statistics, sys
c = [float(x) for x in sys.argv[1:]]
print(f"recording on vs off: median {statistics.median(c):+.2f} % of the run's wall time (runs: {', '.join(f'{x:+.2f}' for x in c)})")
EOF
