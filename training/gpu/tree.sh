#!/usr/bin/env bash
# Keep the shipped models (~93 MB) out of what a device call sends (64 MiB limit), and bring them back after.
#   training/gpu/tree.sh hold      # untrack models/*.onnx in the index and ignore them locally (files stay)
#   training/gpu/tree.sh restore   # track them again (do this before any commit)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")" && touch "$exclude"
case "${1:-}" in
  hold)
    git rm -q --cached --ignore-unmatch 'models/*.onnx'
    grep -qx '/models/\*.onnx' "$exclude" || echo '/models/*.onnx' >> "$exclude"
    echo "models held out of the device tree (restore with: training/gpu/tree.sh restore)";;
  restore)
    git reset -q -- models
    sed -i '\|^/models/\*\.onnx$|d' "$exclude"
    git status --short models;;
  *) echo "usage: $0 hold|restore" >&2; exit 2;;
esac
