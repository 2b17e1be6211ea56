"""Segmentation metrics from a confusion matrix (label 255 ignored), in NumPy.

The matrix has one row per true class and one column per predicted class plus a last column for
predictions that are no class (255 unknown, e.g. rover pixels or a null class): those count as misses.
"""

from __future__ import annotations

import numpy as np

from ai4mars_perception.core.classes import NUM_CLASSES


def confusion(target: np.ndarray, pred: np.ndarray, n: int = NUM_CLASSES) -> np.ndarray:
    """``(n, n + 1)`` counts; pixels whose target is not a class (255 = no label) are ignored."""
    t = target.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    keep = t < n
    p = np.where(p < n, p, n)
    return np.bincount(t[keep] * (n + 1) + p[keep], minlength=n * (n + 1)).reshape(n, n + 1)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU per class; NaN where a class is absent from both target and prediction."""
    n = cm.shape[0]
    tp = np.diag(cm[:, :n]).astype(np.float64)
    denom = cm[:, :n].sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


def summarize(cm: np.ndarray, class_names: list[str]) -> dict:
    """Per-class IoU, mIoU (mean over the classes present), pixel accuracy and the matrix itself."""
    ious = iou_per_class(cm)
    total = int(cm.sum())
    return {
        "miou": float(np.nanmean(ious)) if np.isfinite(ious).any() else float("nan"),
        "pixel_accuracy": float(np.trace(cm[:, : cm.shape[0]]) / total) if total else float("nan"),
        "iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(class_names, ious)},
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
        "pixels": total,
    }
