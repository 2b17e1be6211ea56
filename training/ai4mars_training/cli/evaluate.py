"""``ai4mars-train evaluate``: per-class IoU, mIoU, confusion matrix and worst images of a model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ai4mars_training.cli.common import data_args


def cmd_evaluate(a: argparse.Namespace) -> int:
    from ai4mars_training.evaluate.evaluate import evaluate

    r = evaluate(Path(a.model), Path(a.data), Path(a.out), a.labels, a.split, a.valid_pct, a.seed, a.worst,
                 a.device, a.ignore_rover, a.ignore_range, a.flip_tta, a.limit)  # fmt: skip
    ious = "  ".join(f"{k} {'-' if v is None else f'{v:.3f}'}" for k, v in r["iou"].items())
    print(f"{r['images']} images: mIoU {r['miou']:.4f}, pixel accuracy {r['pixel_accuracy']:.4f}\nIoU: {ious}")
    print(f"wrote {a.out}/metrics.json, confusion.png, worst.png")
    return 0


def add_commands(sub) -> None:
    """Register this group's subcommands on the ``ai4mars-train`` parser."""
    p = sub.add_parser("evaluate", help="IoU per class, mIoU, accuracy, confusion matrix, worst images")
    data_args(p)
    p.add_argument("--model", required=True, help="exported model.onnx, or a learner .pkl")
    p.add_argument("--out", required=True)
    p.add_argument("--labels", default="train", help="train, gold, or a folder under msl/labels")
    p.add_argument("--split", choices=("valid", "train", "all"), default="valid")
    p.add_argument("--worst", type=int, default=8, help="images in the worst-images contact sheet")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--flip-tta", action="store_true", help="average with horizontally flipped frames")
    p.add_argument("--limit", type=int, default=0)
    p.set_defaults(func=cmd_evaluate)
