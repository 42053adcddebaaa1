#!/usr/bin/env bash
# The HTML report in a real browser: trains a short min/max run, renders its report, and drives
# it with headless Chromium (viz/web/test/report_test.mjs: no console error, the epoch slider
# changes the heatmap, a token click changes the token view, a screenshot is saved); then the same
# for a tiny ESOL run, whose report also shows the whole validation set in embedding space and,
# from its recorded q, k and v, one query of one head step by step. Both reports, and the
# comparison page of `attnscope compare`, are opened once more with names that are markup in their
# data (viz/web/test/hostile_test.mjs): shown as text, no handler runs, the page's
# Content-Security-Policy blocks inline code (issue 33, item 5).
# Exit 77 (ctest: skipped) when node, playwright-core or chromium is missing.
# Usage: report_browser_test.sh ATTNSCOPE_EXE SOURCE_DIR OUT_DIR
set -euo pipefail
exe="$1"; src="$2"; out="$3"
if ! command -v node > /dev/null; then echo "SKIP: node is not installed"; exit 77; fi
if [ ! -d "$src/viz/web/node_modules/playwright-core" ]; then
  echo "SKIP: viz/web/node_modules/playwright-core missing (run make deps)"; exit 77
fi
if [ ! -x /usr/bin/chromium ]; then echo "SKIP: /usr/bin/chromium missing (apt-get install chromium)"; exit 77; fi
rm -rf "$out"; mkdir -p "$out"
"$exe" train "$src/configs/minmax.yaml" --out "$out/run" --set data.minmax_numbers=32 train.epochs=40 \
  hooks.attention.every=10 train.progress=none run.log_level=warn
"$exe" render "$out/run" --format html --out "$out/render"
test -s "$out/render/report.html"
node "$src/viz/web/test/report_test.mjs" "$out/render/report.html" "$out"
echo "screenshot: $out/report.png"
node "$src/viz/web/test/hostile_test.mjs" "$out/render/report.html" "$out/hostile_report" --report
"$exe" compare "$out/run" "$out/run/attention.h5" --format html --out "$out/compare"
node "$src/viz/web/test/hostile_test.mjs" "$out/compare/compare.html" "$out/hostile_compare" --compare
# a molecular run (tiny RoBERTa on ESOL): the validation set in embedding space too
"$exe" train "$src/configs/chemberta-esol.yaml" --out "$out/esol" --set data.csv="$src/data/esol/delaney-processed.csv" model.n_layers=2 model.d_model=32 \
  model.n_heads=4 model.d_ff=64 train.epochs=2 train.batch_size=64 hooks.attention.every=1 hooks.attention.probes=8 \
  run.threads=1 train.progress=none run.log_level=warn \
  'hooks.attention.sites=[attn.probs, attn.scores, embed.out, attn.q, attn.k, attn.v, attn.context, ffn.out, block.out]'
"$exe" render "$out/esol" --format html --out "$out/esol_render"
node "$src/viz/web/test/report_test.mjs" "$out/esol_render/report.html" "$out/esol_shots" --validation --internals
node "$src/viz/web/test/hostile_test.mjs" "$out/esol_render/report.html" "$out/hostile_esol" --report
