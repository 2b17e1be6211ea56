"""The one place that defines the AI4Mars terrain classes, their colours and traversal costs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Label value for "no label" in AI4Mars and "unknown" in every mask this package writes.
IGNORE_INDEX = 255


@dataclass(frozen=True)
class TerrainClass:
    """One terrain class: id as stored in masks, display colour (RGB) and traversal cost in [0, 1]."""

    id: int
    name: str
    color: tuple[int, int, int]
    cost: float

    @property
    def traversable(self) -> bool:
        """A class is traversable when its cost is below 0.5."""
        return self.cost < 0.5


#: The four AI4Mars classes (MSL), in label order.
TERRAIN_CLASSES: tuple[TerrainClass, ...] = (
    TerrainClass(0, "soil", (194, 122, 62), 0.1),
    TerrainClass(1, "bedrock", (90, 140, 220), 0.3),
    TerrainClass(2, "sand", (245, 215, 80), 0.7),
    TerrainClass(3, "big_rock", (220, 40, 40), 1.0),
)
NUM_CLASSES = len(TERRAIN_CLASSES)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in TERRAIN_CLASSES)
#: Colour of unknown pixels in overlays.
UNKNOWN_COLOR = (0, 0, 0)
#: Name given to the optional 5th "null" class of the reference notebook (label 255 trained as a class).
NULL_CLASS_NAME = "null"


def color_lut(colors: list[tuple[int, int, int]] | None = None) -> np.ndarray:
    """A 256×3 uint8 lookup table from class id to RGB colour (unknown ids map to black)."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:] = UNKNOWN_COLOR
    for i, color in enumerate(colors if colors is not None else [c.color for c in TERRAIN_CLASSES]):
        lut[i] = color
    return lut
