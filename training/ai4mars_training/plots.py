"""Figures of a run: the training history (losses, validation mIoU and big-rock IoU per epoch)."""

from __future__ import annotations

import csv
from pathlib import Path


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
