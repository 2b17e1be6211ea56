#!/usr/bin/env bash
# The release-model GPU shot (issue 8, docs/TRAINING.md "The GPU shot"): the one script a device command runs.
# Installs the carried fastai wheels (.whl/), unpacks (.data/pack.tgz) and checks the packed data, trains within
# the budget and leaves in OUT what comes back: weights.fp16.part*, run.json, history.csv, train.log (<= 8 files).
#
#   training/gpu/shot.sh OUT MINUTES [ai4mars-train fit options...]
#
# The same script is rehearsed on the CPU by training/tests/test_gpu_rehearsal.py (SHOT_PYTHON: the interpreter,
# SHOT_SITE: where the wheels go, SHOT_PACK: the packed data).
set -euo pipefail
OUT=${1:?usage: shot.sh OUT MINUTES [fit options]}
MINUTES=${2:?usage: shot.sh OUT MINUTES [fit options]}
shift 2
PACK=${SHOT_PACK:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.data/pack}
mkdir -p "$OUT"
exec > >(tee "$OUT/train.log") 2>&1
echo "shot: $(date -u +%FT%TZ), budget $MINUTES min, $(nproc) CPUs"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$(date +%s)
if [ ! -d "$PACK" ] && [ -f "$PACK.tgz" ]; then  # the pack travels as one archive (make gpu-pack)
  tar -xzf "$PACK.tgz" -C "$(dirname "$PACK")" && echo "shot: unpacked $PACK.tgz"
fi
source "$(dirname "${BASH_SOURCE[0]}")/site.sh"  # the carried wheels: sets ROOT, PY, SITE, PYTHONPATH
"$PY" -c 'import fastai, fastcore, fastprogress, torch; print("shot: fastai", fastai.__version__, "from",
fastai.__file__, "fastcore", fastcore.__version__, "fastprogress", fastprogress.__version__, "torch",
torch.__version__, "cuda", torch.cuda.is_available())'
echo "shot: wheels installed in $(( $(date +%s) - t0 )) s"
"$PY" -m ai4mars_training.cli shot --data "$PACK" --shot-out "$OUT" --time-budget "$MINUTES" --no-pretrained \
  --epochs 200 "$@"
echo "shot: done in $(( $(date +%s) - t0 )) s"; ls -la "$OUT"
