"""The one set of file writers every tool uses, so that offline results equal online ones by construction:
the traversability CSV (one row per frame and region, from the same table as ``~/traversability``) and the PNG
files of a frame. ROS messages are written by :func:`ai4mars_perception.ros.messages.result_messages`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from ai4mars_perception.core.overlay import costmap_image
from ai4mars_perception.core.traversability import TABLE_FIELDS, Verdict, sector_names

#: Columns of every traversability CSV (``segment``, ``bag process``, ``demo``).
CSV_COLUMNS = ["frame", "topic", "stamp_ns", "status", "region", "verdict", *TABLE_FIELDS[2:], "inference_ms",
               "end_to_end_ms", "error"]  # fmt: skip
PNG_OUTPUTS = ("mask", "overlay", "confidence", "costmap")


def region_names(table: np.ndarray) -> list[str]:
    """Names of a table's rows: ``frame``, then the near-field sectors left to right."""
    return ["frame", *sector_names(len(table) - 1)]


class TraversabilityCsv:
    """Rows of :data:`CSV_COLUMNS` into an open text file; a failed frame gets one ``error`` row."""

    def __init__(self, f: IO[str]) -> None:
        self.rows = csv.writer(f)
        self.rows.writerow(CSV_COLUMNS)

    def frame(self, index: int, topic: str, stamp: int, table: np.ndarray, inference_ms: float | None = None,
              end_to_end_ms: float | None = None) -> None:  # fmt: skip
        """One row per region of ``table`` (the structured traversability table of one frame)."""
        timing = ["" if v is None else f"{v:.1f}" for v in (inference_ms, end_to_end_ms)]
        for name, row in zip(region_names(table), table):
            values = [f"{float(row[k]):.4f}" for k in TABLE_FIELDS[2:]]
            verdict = Verdict(int(row["verdict"])).name.lower()
            self.rows.writerow([index, topic, stamp, "ok", name, verdict, *values, *timing, ""])

    def failure(self, index: int, topic: str, stamp: int, error: str) -> None:
        """The row of a frame that gave no result, and why."""
        blanks = [""] * (len(TABLE_FIELDS) - 2 + 2)
        self.rows.writerow([index, topic, stamp, "error", "frame", "", *blanks, error])


def write_pngs(out_dir: Path, stem: str, result, projector=None, outputs: tuple[str, ...] = PNG_OUTPUTS) -> None:
    """``<stem>_mask.png`` (class ids, 255 unknown), ``_overlay.png``, ``_confidence.png`` (softmax maximum x 255)
    and ``_costmap.png`` (top view of the ground cost grid of ``projector``: forward up, green to red, unknown
    gray) of a :class:`~ai4mars_perception.core.pipeline.FrameResult`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {
        "mask": lambda: result.mask,
        "overlay": lambda: cv2.cvtColor(np.ascontiguousarray(result.overlay), cv2.COLOR_RGB2BGR),
        "confidence": lambda: result.confidence,
        "costmap": lambda: cv2.cvtColor(costmap_image(result.costmap(projector)), cv2.COLOR_RGB2BGR),
    }
    for name in outputs:
        if name == "costmap" and projector is None:
            continue
        path = out_dir / f"{stem}_{name}.png"
        if not cv2.imwrite(str(path), images[name]()):
            raise OSError(f"could not write {path}")
