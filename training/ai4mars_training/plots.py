"""Figures of a run: the training history (losses, validation mIoU and big-rock IoU per epoch), the confusion
matrix and the worst validation images of an evaluation (matplotlib)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def plot_history(history_csv: Path, png: Path, title: str = "") -> Path | None:
    """Draw ``history.csv`` (fastai's CSVLogger: train/valid loss, miou, iou_big_rock) into ``png``; returns the
    path, or None when the file holds no epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(history_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("epoch", "").strip().isdigit()]
    if not rows:
        return None
    epochs = [int(r["epoch"]) for r in rows]

    def col(name: str) -> list[float]:
        return [float(r[name]) if r.get(name) not in (None, "") else float("nan") for r in rows]

    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, col("train_loss"), label="train loss")
    ax_loss.plot(epochs, col("valid_loss"), label="valid loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.legend()
    ax_iou.plot(epochs, col("miou"), marker="o", label="validation mIoU")
    if "iou_big_rock" in rows[0]:
        ax_iou.plot(epochs, col("iou_big_rock"), marker=".", label="big-rock IoU")
    best = max(range(len(rows)), key=lambda i: col("miou")[i])
    ax_iou.annotate(f"best {col('miou')[best]:.3f}", (epochs[best], col("miou")[best]), textcoords="offset points",
                    xytext=(-30, 8))  # fmt: skip
    ax_iou.set_xlabel("epoch")
    ax_iou.set_ylim(0, 1)
    ax_iou.grid(alpha=0.3)
    ax_iou.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png


def plot_worst(rows: list[tuple[str, list]], png: Path, names: list[str], colors: list[tuple[int, int, int]]) -> Path:
    """The worst validation images: one row each (caption, [gray frame, label RGB, prediction RGB]), with a colour
    legend of ``names`` (their RGB ``colors``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.6 * len(rows)), squeeze=False)
    for r, (caption, tiles) in enumerate(rows):
        for c, (tile, head) in enumerate(zip(tiles, ("image", "label", "prediction"))):
            ax = axes[r][c]
            ax.imshow(tile, cmap="gray" if tile.ndim == 2 else None, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(head)
        axes[r][0].set_ylabel(caption, fontsize=7)
    handles = [Patch(color=[v / 255 for v in color], label=name) for name, color in zip(names, colors)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png


def plot_confusion(cm: np.ndarray, names: list[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix with counts, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [*names, "unknown"] if cm.shape[1] > cm.shape[0] else names
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=30)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{cm[i, j]:,}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
