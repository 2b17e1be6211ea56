"""Per-frame traversability summary of a class mask: class fractions, cost and a go/caution/stop verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import cv2
import numpy as np

from ai4mars_perception.core.classes import CLASS_NAMES, NUM_CLASSES, TERRAIN_CLASSES
from ai4mars_perception.core.params import ParamsError, check_values, config_base


class Verdict(IntEnum):
    """What a planner should do with the terrain ahead."""

    GO = 0
    CAUTION = 1
    STOP = 2


class TraversabilityConfig(config_base("_TraversabilityFields", "traversability")):
    """Thresholds, as fractions of the *known* (labelled) pixels of a region: the ``traversability`` group of the
    parameter table (fields, types and defaults generated from it)."""

    def validate(self) -> None:
        """Raise ValueError when a value is out of its range (the table's) or the thresholds contradict."""
        try:
            check_values(vars(self))
        except ParamsError as e:
            raise ValueError(str(e)) from None
        if self.stop_below_traversable > self.go_min_traversable:
            raise ValueError("stop_below_traversable must not exceed go_min_traversable")


@dataclass
class RegionSummary:
    """Summary of one image region."""

    name: str
    class_fractions: dict[str, float]
    unknown_fraction: float
    traversable_fraction: float
    mean_cost: float
    verdict: Verdict


@dataclass
class FrameSummary:
    """Summary of a whole frame and of the near-field sectors (left to right)."""

    frame: RegionSummary
    sectors: list[RegionSummary] = field(default_factory=list)

    @property
    def regions(self) -> list[RegionSummary]:
        """The frame first, then the sectors."""
        return [self.frame, *self.sectors]


_COSTS = np.array([c.cost for c in TERRAIN_CLASSES], np.float64)
_TRAVERSABLE = np.array([c.traversable for c in TERRAIN_CLASSES])


def sector_names(n: int) -> list[str]:
    """Names of ``n`` near-field sectors, left to right."""
    return ["left", "centre", "right"] if n == 3 else [f"sector_{i}" for i in range(n)]


def summarize_region(name: str, mask: np.ndarray, config: TraversabilityConfig) -> RegionSummary:
    """Class fractions (of all pixels), traversable fraction and mean cost (of known pixels), verdict."""
    # OpenCV's histogram reads the strided sector views in place (np.bincount would copy and widen them): 3x faster
    counts = cv2.calcHist([mask.astype(np.uint8, copy=False)], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    total = float(mask.size)
    known_counts = counts[:NUM_CLASSES]
    known = known_counts.sum()
    fractions = {n: float(c / total) if total else 0.0 for n, c in zip(CLASS_NAMES, known_counts)}
    unknown = 1.0 - known / total if total else 1.0
    if known > 0:
        traversable = float(known_counts[_TRAVERSABLE].sum() / known)
        mean_cost = float((known_counts * _COSTS).sum() / known)
        big_rock = float(known_counts[3] / known)
    else:
        traversable, mean_cost, big_rock = 0.0, float("nan"), 0.0
    if known == 0 or traversable < config.stop_below_traversable or big_rock > config.stop_above_big_rock:
        verdict = Verdict.STOP
    elif traversable < config.go_min_traversable or (1.0 - unknown) < config.min_known_fraction:
        verdict = Verdict.CAUTION
    else:
        verdict = Verdict.GO
    return RegionSummary(name, fractions, float(unknown), traversable, mean_cost, verdict)


def summarize(mask: np.ndarray, config: TraversabilityConfig | None = None) -> FrameSummary:
    """Summarise the whole frame and the near field (bottom rows) split into vertical sectors."""
    config = config or TraversabilityConfig()
    h, w = mask.shape
    near = mask[h - max(1, round(h * config.near_field_fraction)) :]
    edges = np.linspace(0, w, config.sectors + 1).round().astype(int)
    sectors = [
        summarize_region(name, near[:, a:b], config)
        for name, a, b in zip(sector_names(config.sectors), edges[:-1], edges[1:])
    ]
    return FrameSummary(summarize_region("frame", mask, config), sectors)


#: Field layout of the traversability table (one row per region); see traversability_msg for the message.
TABLE_FIELDS = ("region", "verdict", *CLASS_NAMES, "unknown", "traversable", "mean_cost")
TABLE_DTYPE = np.dtype([(n, "<u4" if n in ("region", "verdict") else "<f4") for n in TABLE_FIELDS])


def summary_to_array(summary: FrameSummary) -> np.ndarray:
    """One structured row per region: frame first (region 0), then sectors 1..N left to right."""
    rows = np.zeros(len(summary.regions), TABLE_DTYPE)
    for i, r in enumerate(summary.regions):
        rows[i] = (
            i,
            int(r.verdict),
            *r.class_fractions.values(),
            r.unknown_fraction,
            r.traversable_fraction,
            r.mean_cost,
        )
    return rows
