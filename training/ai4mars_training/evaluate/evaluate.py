"""``ai4mars-train evaluate``: metrics of a model on a labelled folder, through the node's inference core."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ai4mars_perception.core.classes import CLASS_NAMES
from ai4mars_perception.core.image_codec import read_image_file
from ai4mars_perception.core.overlay import colorize
from ai4mars_perception.core.segmenter import ModelLoadError, Segmenter
from ai4mars_training.data.dataset import read_label, scan, split
from ai4mars_training.errors import TrainingError
from ai4mars_training.evaluate.metrics import confusion, iou_per_class, summarize
from ai4mars_training.plots import plot_confusion, plot_worst


def open_model(
    model: Path, device: str = "auto", flip_tta: bool = False
) -> tuple[Segmenter, tempfile.TemporaryDirectory | None]:
    """An ONNX file directly; a learner .pkl is exported to a temporary ONNX first (same core either way)."""
    tmp = None
    if model.suffix == ".pkl":
        from ai4mars_perception.core.model.fastai_learner import learner_metadata
        from ai4mars_training.export.export import export_onnx, load_learner_file

        learn = load_learner_file(model)
        try:
            meta = learner_metadata(learn, model, f"learner:{model.name}")
        except ModelLoadError as e:
            raise TrainingError(str(e)) from None
        tmp = tempfile.TemporaryDirectory()
        onnx_path = Path(tmp.name) / "model.onnx"
        export_onnx(learn.model, onnx_path, meta.input.height, meta)
        model = onnx_path
    try:
        return Segmenter(model, device, flip_tta=flip_tta), tmp
    except ModelLoadError as e:
        raise TrainingError(str(e)) from None


def evaluate(
    model: Path,
    data: Path,
    out: Path,
    labels: str = "train",
    split_name: str = "valid",
    valid_pct: float = 0.1,
    seed: int = 42,
    worst: int = 8,
    device: str = "auto",
    ignore_rover: bool = False,
    ignore_range: bool = False,
    flip_tta: bool = False,
    limit: int = 0,
) -> dict:
    """Per-class IoU, mIoU (4 classes, 255 ignored), pixel accuracy, confusion matrix (JSON + PNG), worst images."""
    seg, tmp = open_model(model, device, flip_tta)
    found = scan(data, labels)
    samples = found.samples
    if split_name == "valid":
        samples = split(samples, valid_pct, seed)[1]
    elif split_name == "train":
        samples = split(samples, valid_pct, seed)[0]
    if limit:
        samples = samples[:limit]
    out.mkdir(parents=True, exist_ok=True)
    total = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES) + 1), np.int64)
    per_image = []
    for s in tqdm(samples, desc="evaluate", unit="img"):
        gray = read_image_file(s.image)
        target = read_label(s, False, ignore_rover, ignore_range)
        pred = seg.segment(gray)
        if pred.shape != target.shape:
            pred = cv2.resize(pred, target.shape[::-1], interpolation=cv2.INTER_NEAREST)
        cm = confusion(target, pred)
        total += cm
        labelled = cm.sum()
        if labelled:
            ious = iou_per_class(cm)
            per_image.append((float(np.nanmean(ious)), float(np.trace(cm[:, :4]) / labelled), s))
    result = summarize(total, list(CLASS_NAMES))
    result.update({
        "model": str(model), "model_version": seg.metadata.model_version, "data": str(data), "labels": labels,
        "split": split_name, "images": len(samples), "scan": found.summary(), "flip_tta": flip_tta,
    })  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    plot_confusion(total, list(CLASS_NAMES), out / "confusion.png", f"{model.name}: mIoU {result['miou']:.3f}")
    per_image.sort(key=lambda r: (r[0], r[1]))
    if per_image and worst:
        rows = []
        for miou, acc, s in per_image[:worst]:
            gray = read_image_file(s.image)
            pred = seg.segment(gray)
            rows.append((f"{s.id}\nmIoU {miou:.2f} acc {acc:.2f}", [gray, colorize(read_label(s)), colorize(pred)]))
        plot_worst(rows, out / "worst.png", [*CLASS_NAMES, "unknown"], [*seg.metadata.class_colors, (0, 0, 0)])
    if tmp is not None:
        tmp.cleanup()
    return result
