#!/usr/bin/env bash
# The README's ChemBERTa results table: ESOL, BBBP and Tox21 on DeepChem's scaffold split, seeds
# 0-2, for (a) the small preset from scratch, (b) the small preset fine-tuned from an attnscope
# pretraining run, (c) the ECFP4 + XGBoost baselines, all on the same splits, then the table.
#   bench/chemberta_results.sh [BUILD] [OUT] [PRETRAIN_RUN]
#   env: SEEDS ("0 1 2"), EPOCHS_ESOL (20), EPOCHS_BBBP (10), EPOCHS_TOX21 (5), DATASETS ("esol bbbp tox21"),
#        KINDS ("baseline scratch pretrained": which rows to run; two invocations may split them)
# Runs that already finished (test_metrics.json / baseline_metrics.json present) are skipped, so
# the script can be re-run after an interruption. Data: data/esol/, data/moleculenet/ (in the repository).
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-runs/results}
PRE=${3:-}
SEEDS=${SEEDS:-"0 1 2"}
DATASETS=${DATASETS:-"esol bbbp tox21"}
KINDS=${KINDS:-"baseline scratch pretrained"}
want() { [[ " $KINDS " == *" $1 "* ]]; }
declare -A EPOCHS=([esol]=${EPOCHS_ESOL:-20} [bbbp]=${EPOCHS_BBBP:-10} [tox21]=${EPOCHS_TOX21:-5})
BIN=$BUILD/cli/attnscope
mkdir -p "$OUT"
common=(run.threads=1 train.progress=none hooks.attention.every=5 hooks.attention.metrics_every=5)
for ds in $DATASETS; do
  for s in $SEEDS; do
    want baseline && { [ -f "$OUT/$ds-baseline-s$s/baseline_metrics.json" ] ||
      "$BIN" baseline "configs/chemberta-$ds.yaml" --set run.seed="$s" run.threads=1 --out "$OUT/$ds-baseline-s$s" --force; }
    want scratch && { [ -f "$OUT/$ds-scratch-s$s/test_metrics.json" ] ||
      "$BIN" train "configs/chemberta-$ds.yaml" --set run.seed="$s" train.epochs="${EPOCHS[$ds]}" "${common[@]}" \
        --out "$OUT/$ds-scratch-s$s" --force; }
    if [ -n "$PRE" ] && want pretrained; then
      [ -f "$OUT/$ds-pretrained-s$s/test_metrics.json" ] ||
        "$BIN" train "configs/chemberta-$ds.yaml" --set run.seed="$s" train.epochs="${EPOCHS[$ds]}" "${common[@]}" \
          model.pretrained="$PRE" --out "$OUT/$ds-pretrained-s$s" --force
    fi
  done
done
python3 "$(dirname "$0")/results_table.py" "$OUT" > "$OUT/results.md"
cat "$OUT/results.md"
