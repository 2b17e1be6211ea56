# Sourced by the device scripts (shot.sh, bench.sh): install the carried fastai wheels (.whl/) into SITE, no index,
# and put them, the checkout and the training package on PYTHONPATH. Sets ROOT, PY, SITE.
#   SHOT_PYTHON: the interpreter (python3), SHOT_SITE: where the wheels go (/tmp/ai4mars-shot-site)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=${SHOT_PYTHON:-python3}
SITE=${SHOT_SITE:-/tmp/ai4mars-shot-site}
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$ROOT"/.whl/*.whl
export PYTHONPATH="$SITE:$ROOT:$ROOT/training${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
