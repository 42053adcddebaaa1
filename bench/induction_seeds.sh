#!/usr/bin/env bash
# The induction acceptance benchmark: configs/induction.yaml over seeds 0-4, then a Markdown table
# of each run's mechanism (mechanism.json): the induction head and its score, the previous-token
# head it needs, the step and epoch it formed at, the in-context score and the wall time. Writes
# the table to stdout and to ${OUT_MD:-bench/results/induction_seeds.md}.
# usage: bench/induction_seeds.sh [BUILD_DIR] [SEEDS...]   (extra --set overrides: SET="a=1 b=2")
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}; shift || true
SEEDS=${*:-0 1 2 3 4}
EXE=$BUILD/cli/attnscope
WORK=$(mktemp -d /tmp/attnscope-induction-XXXXXX)
OUT_MD=${OUT_MD:-bench/results/induction_seeds.md}
mkdir -p "$(dirname "$OUT_MD")"
for s in $SEEDS; do
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$EXE" train configs/induction.yaml --out "$WORK/seed-$s" --set run.seed=$s train.progress=none run.log_level=warn ${SET:-}
  echo "$(echo "$(date +%s.%N) - $start" | bc)" > "$WORK/seed-$s/wall_seconds"
done
python3 - "$WORK" "${SET:-}" $SEEDS <<'PY' | tee "$OUT_MD"
import json, sys, subprocess
work, extra, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
print(f"induction heads, configs/induction.yaml{' --set ' + extra if extra else ''}, {cpu}; command: bench/induction_seeds.sh\n")
print("| seed | induction head (score) | previous-token head (score) | formed at step (epoch) | val_icl | val_loss | shown | wall s |")
print("|---|---|---|---|---|---|---|---|")
shown = 0
for s in seeds:
    d = f"{work}/seed-{s}"
    m = json.load(open(f"{d}/mechanism.json"))
    last = [json.loads(l) for l in open(f"{d}/metrics.jsonl") if l.strip()][-1]
    ih, ph = m["induction_head"], m["previous_token_head"]
    shown += bool(m["mechanism_shown"])
    formed = f'{m["formed_at_step"]} ({m["formed_at_epoch"]})' if m["formed_at_step"] is not None else "—"
    wall = float(open(f"{d}/wall_seconds").read())
    print(f'| {s} | L{ih["layer"]}H{ih["head"]} ({ih["score"]:.2f}) | L{ph["layer"]}H{ph["head"]} ({ph["score"]:.2f}) | '
          f'{formed} | {last.get("val_icl", float("nan")):.2f} | {last["val_loss"]:.3f} | {"yes" if m["mechanism_shown"] else "no"} | {wall:.0f} |')
print(f"\n{shown} of {len(seeds)} runs show induction heads (an induction score >= {m['threshold']} with a "
      "previous-token head below it at >= the same threshold; target: >= 3 of 5, each run <= ~10 min).")
PY
rm -rf "$WORK"
