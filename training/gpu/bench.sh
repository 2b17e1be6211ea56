#!/usr/bin/env bash
# The GPU shot's inference benchmark on its own (a short device command): the carried wheels, then
# ``ai4mars-train gpu-bench`` (the recipe's U-Net, random weights unless a learner is named) into OUT/bench.json.
#
#   training/gpu/bench.sh OUT [gpu-bench options...]
set -euo pipefail
OUT=${1:?usage: bench.sh OUT [gpu-bench options]}
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=${SHOT_PYTHON:-python3}
SITE=${SHOT_SITE:-/tmp/ai4mars-shot-site}
mkdir -p "$OUT"
exec > >(tee "$OUT/bench.log") 2>&1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$ROOT"/.whl/*.whl
export PYTHONPATH="$SITE:$ROOT:$ROOT/training${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$PY" -m ai4mars_training.cli gpu-bench --out "$OUT/bench.json" "$@"
