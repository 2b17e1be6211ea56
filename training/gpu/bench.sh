#!/usr/bin/env bash
# The GPU shot's inference benchmark on its own (a short device command): the carried wheels, then
# ``ai4mars-train gpu-bench`` (the recipe's U-Net with random weights) into OUT/bench.json.
#
#   training/gpu/bench.sh OUT [gpu-bench options...]
set -euo pipefail
OUT=${1:?usage: bench.sh OUT [gpu-bench options]}
shift
mkdir -p "$OUT"
exec > >(tee "$OUT/bench.log") 2>&1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
source "$(dirname "${BASH_SOURCE[0]}")/site.sh"  # the carried wheels: sets ROOT, PY, SITE, PYTHONPATH
"$PY" -m ai4mars_training.cli gpu-bench --out "$OUT/bench.json" "$@"
