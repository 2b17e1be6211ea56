"""``ai4mars-train``: fit, lr-find, evaluate and export the AI4Mars U-Net ResNet-18."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ai4mars_training.errors import TrainingError
from ai4mars_training.release_cli import add_commands as add_release_commands


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="AI4Mars root (with msl/images/edr and msl/labels)")
    p.add_argument("--valid-pct", type=float, default=0.1, help="validation fraction of the training labels")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--ignore-rover", action="store_true", help="treat rover pixels (MXY masks) as no label")
    p.add_argument("--ignore-range", action="store_true", help="treat pixels beyond 30 m (RNG masks) as no label")


def _fit_args(p: argparse.ArgumentParser) -> None:
    _data_args(p)
    p.add_argument("--out", default="runs/latest", help="run folder (checkpoints, logs, learner.pkl, run.json)")
    p.add_argument("--size", type=int, default=256, help="training image size (square)")
    p.add_argument("--bs", type=int, default=8, help="batch size (per process)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (see lr-find)")
    p.add_argument("--freeze-epochs", type=int, default=1, help="epochs with a frozen encoder first (pretrained only)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--pretrained", dest="pretrained", action="store_true", default=True,
                   help="ImageNet encoder weights via fastai/torchvision (needs internet), the default")  # fmt: skip
    g.add_argument("--no-pretrained", dest="pretrained", action="store_false", help="train from scratch")
    p.add_argument("--pretrained-weights", help="local torchvision resnet18 ImageNet state dict (.pth)")
    p.add_argument("--init-from", metavar="PTH|ONNX",
                   help="start from an earlier run's whole-model weights (models/best.pth) or an exported model "
                   "(models/ai4mars_unet_r18.onnx: fine-tune the shipped model); a new one-cycle schedule")  # fmt: skip
    p.add_argument("--null-class", action="store_true", help="reference notebook set-up: label 255 as a 5th class")
    p.add_argument("--loss", choices=("ce", "focal", "dice"), default="ce",
                   help="cross-entropy; focal; dice = cross-entropy + soft Dice over the classes present")  # fmt: skip
    p.add_argument("--focal-gamma", type=float, default=2.0)
    p.add_argument("--class-weights", default="auto", help="auto (median frequency), none, or w0,w1,w2,w3")
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="auto: fp16 on a GPU, bf16 autocast + channels_last on a CPU with AVX512-BF16/AMX, "
                   "else fp32")  # fmt: skip
    p.add_argument("--crop", type=int, default=0, help="train on random N x N windows of the frames (no rescaling); "
                   "validation uses whole frames")  # fmt: skip
    p.add_argument("--time-budget", type=float, default=0.0, metavar="MINUTES",
                   help="fit the one-cycle schedule into this wall-clock time; --epochs is then the upper "
                   "bound")  # fmt: skip
    p.add_argument("--patience", type=int, default=0, help="early stopping patience in epochs (0: off)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/models/last.pth")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--limit", type=int, default=0, help="use only the first N labelled pairs (smoke tests)")
    p.add_argument("--optimizer", choices=("adam", "adamw-fused"), default="adam",
                   help="fastai's Adam, or the same update by PyTorch's fused AdamW (less host work)")  # fmt: skip
    p.add_argument("--profile-steps", type=int, default=0, metavar="N",
                   help="profile N training steps of the first epoch after 20 warm-up steps (torch.profiler): top "
                   "operators to the log, a summary to run.json")  # fmt: skip


def _fit_config(a: argparse.Namespace):
    from ai4mars_training.train import FitConfig

    return FitConfig(
        data=a.data, out=a.out, size=a.size, batch_size=a.bs, epochs=a.epochs, lr=a.lr, freeze_epochs=a.freeze_epochs,
        valid_pct=a.valid_pct, seed=a.seed, pretrained=a.pretrained, pretrained_weights=a.pretrained_weights,
        init_from=a.init_from, null_class=a.null_class, ignore_rover=a.ignore_rover, ignore_range=a.ignore_range,
        loss=a.loss,
        focal_gamma=a.focal_gamma, class_weights=a.class_weights, augment=a.augment, precision=a.precision,
        crop=a.crop, time_budget=a.time_budget,
        patience=a.patience, resume=a.resume, num_workers=a.workers, limit=a.limit, profile_steps=a.profile_steps,
        optimizer=a.optimizer,
    )  # fmt: skip


def cmd_fit(a: argparse.Namespace) -> int:
    from ai4mars_training.train import fit

    run = fit(_fit_config(a))
    if run:
        best = run["best_epoch"]
        print(f"best epoch {int(best.get('epoch', -1))}: mIoU {best.get('miou', float('nan')):.4f}; "
              f"wrote {a.out}/learner.pkl, {a.out}/run.json, {a.out}/history.csv")  # fmt: skip
    return 0


def cmd_lr_find(a: argparse.Namespace) -> int:
    from ai4mars_training.train import lr_find

    plot = Path(a.out) / "lr_find.png"
    Path(a.out).mkdir(parents=True, exist_ok=True)
    print(f"suggested learning rate {lr_find(_fit_config(a), plot):.2e}; plot in {plot}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from ai4mars_training.evaluate import evaluate

    r = evaluate(Path(a.model), Path(a.data), Path(a.out), a.labels, a.split, a.valid_pct, a.seed, a.worst,
                 a.device, a.ignore_rover, a.ignore_range, a.flip_tta, a.limit)  # fmt: skip
    ious = "  ".join(f"{k} {'-' if v is None else f'{v:.3f}'}" for k, v in r["iou"].items())
    print(f"{r['images']} images: mIoU {r['miou']:.4f}, pixel accuracy {r['pixel_accuracy']:.4f}\nIoU: {ious}")
    print(f"wrote {a.out}/metrics.json, confusion.png, worst.png")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from ai4mars_training.export import export

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


def cmd_bench(a: argparse.Namespace) -> int:
    from ai4mars_perception.core.cpu_info import cpu_description
    from ai4mars_training.bench import bench

    cpu = cpu_description()
    print(f"cpu: {cpu['summary']}, {__import__('os').cpu_count()} cores", flush=True)
    cfg = _fit_config(a)
    cfg.pretrained, cfg.pretrained_weights = False, None  # throughput does not depend on the start weights
    rows = bench(cfg, a.precisions.split(","), [int(c) for c in a.crops.split(",")], a.steps)
    base = next((r for r in rows if r["precision"] == "fp32"), None)
    fp32 = {r["crop"]: r["images_per_s"] for r in rows if r["precision"] == "fp32"}
    for r in rows:
        r["speedup_vs_fp32_same_crop"] = round(r["images_per_s"] / fp32[r["crop"]], 2) if r["crop"] in fp32 else None
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(
            json.dumps({"rows": rows, "cpu": cpu, "threads": __import__("torch").get_num_threads()}, indent=2)
        )
    if base:
        best = max(rows, key=lambda r: r["images_per_s"])
        print(f"fastest: {best['precision']} crop {best['crop']}², {best['images_per_s'] / base['images_per_s']:.2f}x "
              f"the fp32 crop-{base['crop']}² images/s")  # fmt: skip
    return 0


def cmd_quantize(a: argparse.Namespace) -> int:
    from ai4mars_perception.core.image_codec import collect_images, read_image_file
    from ai4mars_perception.core.paths import share_dir
    from ai4mars_training.quantize import QuantRecipe, quantize, report

    frame = read_image_file(a.frame or collect_images([str(share_dir() / "samples" / "navcam")])[0])
    if a.compare:
        from ai4mars_training.quantize import compare, format_comparison

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ai4mars-train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="train unet_learner(dls, resnet18)")
    _fit_args(p)
    p.set_defaults(func=cmd_fit)
    p = sub.add_parser("lr-find", help="fastai learning-rate finder (plot + suggestion)")
    _fit_args(p)
    p.set_defaults(func=cmd_lr_find)
    p = sub.add_parser("bench", help="training throughput (images/s) per precision and crop, on real frames")
    _fit_args(p)
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16, fp16 (GPU)")
    p.add_argument("--crops", default="128", help="comma-separated crop sizes (0: whole frames)")
    p.add_argument("--steps", type=int, default=6, help="timed steps per configuration (after 2 warm-up steps)")
    p.add_argument("--json", help="also write the table to this JSON file")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("evaluate", help="IoU per class, mIoU, accuracy, confusion matrix, worst images")
    _data_args(p)
    p.add_argument("--model", required=True, help="exported model.onnx, or a learner .pkl")
    p.add_argument("--out", required=True)
    p.add_argument("--labels", default="train", help="train, gold, or a folder under msl/labels")
    p.add_argument("--split", choices=("valid", "train", "all"), default="valid")
    p.add_argument("--worst", type=int, default=8, help="images in the worst-images contact sheet")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--flip-tta", action="store_true", help="average with horizontally flipped frames")
    p.add_argument("--limit", type=int, default=0)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("quantize", help="int8 static quantization (ONNX Runtime), calibrated on training frames")
    _data_args(p)
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
    add_release_commands(sub, _fit_args, _data_args, _fit_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    import warnings

    # torch/fastai/pandas deprecation notices are for library authors, not for users of this CLI
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*mode.chained_assignment.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TrainingError as e:
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
