"""``ai4mars-train export | quantize``: ONNX + TorchScript with the node's metadata; int8 quantization."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ai4mars_training.cli.common import data_args
from ai4mars_training.errors import TrainingError


def cmd_export(a: argparse.Namespace) -> int:
    from ai4mars_training.export.export import export

    if bool(a.run) == bool(a.learner):
        raise TrainingError("give exactly one of --run RUN_DIR or --learner FILE.pkl")
    learner = Path(a.run) / "learner.pkl" if a.run else Path(a.learner)
    if a.learner:
        print(f"loading {learner}: unpickling runs code from the file; only load learners you trust", file=sys.stderr)
    run_json = Path(a.run) / "run.json" if a.run else None
    r = export(learner, Path(a.out), a.size, a.model_version, run_json, Path(a.frames) if a.frames else None,
               a.fp16_weights, Path(a.metrics) if a.metrics else None)  # fmt: skip
    print(json.dumps(r, indent=2))
    return 0


def cmd_quantize(a: argparse.Namespace) -> int:
    from ai4mars_perception.core.image_codec import collect_images, read_image_file
    from ai4mars_perception.core.model.shipped import share_dir
    from ai4mars_training.export.quantize import QuantRecipe, quantize, report

    frame = read_image_file(a.frame or collect_images([str(share_dir() / "samples" / "navcam")])[0])
    if a.compare:
        from ai4mars_training.export.quantize import compare, format_comparison

        names = a.recipes.split(",") if a.recipes else None
        result = compare(Path(a.model), Path(a.data), Path(a.out), frame, a.valid_limit or 100, a.valid_pct, a.seed,
                         names)  # fmt: skip
        print(format_comparison(result))
        print(f"wrote {a.out}/comparison.json")
        return 0
    recipe = QuantRecipe(a.format, a.activations, not a.per_tensor, a.reduce_range, a.method, a.exclude_last,
                         a.calibration_frames)  # fmt: skip
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    quantize(Path(a.model), out, Path(a.data), recipe, a.valid_pct, a.seed, a.model_version)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if a.no_report:
        return 0
    r = report(Path(a.model), out, Path(a.data), frame, a.valid_limit, a.valid_pct, a.seed)
    r["recipe"] = vars(recipe)
    out.with_suffix(".json").write_text(json.dumps(r, indent=2))
    print(f"forward {r['fp32']['forward_ms']:.1f} -> {r['int8']['forward_ms']:.1f} ms ({r['speedup']:.2f}x); "
          f"validation mIoU {r['fp32']['miou']:.4f} -> {r['int8']['miou']:.4f} ({r['miou_difference']:+.4f}) "
          f"on {r['validation_images']} images; report {out.with_suffix('.json')}")  # fmt: skip
    return 0


def add_commands(sub) -> None:
    """Register this group's subcommands on the ``ai4mars-train`` parser."""
    p = sub.add_parser("quantize", help="int8 static quantization (ONNX Runtime), calibrated on training frames")
    data_args(p)
    p.add_argument("--model", required=True, help="the fp32 (or fp16-weight) model.onnx from export")
    p.add_argument("--out", required=True, help="the int8 .onnx to write (its report: same name, .json)")
    p.add_argument("--format", choices=("qdq", "qoperator"), default="qdq")
    p.add_argument("--activations", choices=("s8", "u8"), default="u8", help="activation type (weights: s8)")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (default: per channel)")
    p.add_argument("--reduce-range", action="store_true", help="7-bit weights (for CPUs without VNNI)")
    p.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="percentile",
                   help="activation calibration (default: chosen by quantize --compare)")  # fmt: skip
    p.add_argument("--exclude-last", action="store_true", help="keep the final convolution in float")
    p.add_argument("--calibration-frames", type=int, default=16, help="training-split frames for calibration")
    p.add_argument("--frame", help="frame for the speed comparison (default: the first bundled Navcam frame)")
    p.add_argument("--valid-limit", type=int, default=0, help="validate on the first N validation frames (0: all)")
    p.add_argument("--no-report", action="store_true", help="skip the speed and mIoU comparison")
    p.add_argument("--model-version", help="version of the int8 model (default: the float model's + '-int8')")
    p.add_argument("--compare", action="store_true",
                   help="measure every candidate recipe against fp32; --out is a folder (comparison.json)")  # fmt: skip
    p.add_argument("--recipes", help="with --compare: comma-separated recipe names (default: all candidates)")
    p.set_defaults(func=cmd_quantize)
    p = sub.add_parser("export", help="learner.pkl + ONNX with the node's metadata, parity-checked")
    p.add_argument("--run", help="run folder written by fit")
    p.add_argument("--learner", help="any fastai segmentation learner .pkl (e.g. the reference notebook's)")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, help="ONNX input size (default: the training size, else 256)")
    p.add_argument("--model-version")
    p.add_argument("--frames", help="folder of frames for the parity check (default: random frames)")
    p.add_argument("--fp16-weights", action="store_true", help="store weights as float16 (half the file; fp32 compute)")
    p.add_argument("--metrics", help="metrics.json from evaluate, recorded in the model's metadata")
    p.set_defaults(func=cmd_export)
