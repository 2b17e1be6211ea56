"""Side inputs of image files and bags, found by one documented rule, so that ``segment``, ``bag make`` and
``bag process`` give the pipeline what the node gets from its exclusion_mask and depth topics.

Files next to a frame ``DIR/NAME.EXT``:
- exclusion masks (non-zero = not terrain; all found are united): ``DIR/NAME_exclusion.png``; the AI4Mars layout's
  rover mask ``mxy/NAME'.png`` and range mask ``rng-30m/NAME''.png`` (``EDR`` in the name replaced by ``MXY`` /
  ``RNG``), in ``DIR`` or beside it (``DIR/../mxy``, as in ``msl/images/{edr,mxy,rng-30m}``);
- depth: ``DIR/NAME_depth.png`` (16-bit, millimetres) or ``DIR/NAME_depth.tiff`` (32-bit float, metres).

Topics of a bag, next to an image topic ``NS/image_raw``: ``NS/exclusion_mask`` (mono8) and ``NS/depth`` (32FC1
or 16UC1), matched to frames by header stamp.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ai4mars_perception.core.validity import SideInputError, SideInputs, depth_from_array, exclusion_from_array

EXCLUSION_SUFFIX, DEPTH_SUFFIXES = "_exclusion.png", (("_depth.png", "16UC1"), ("_depth.tiff", "32FC1"))
AI4MARS_MASKS = (("mxy", "MXY"), ("rng-30m", "RNG"))


def exclusion_files(frame: Path) -> list[Path]:
    """The exclusion-mask files of ``frame`` by the rule above (those that exist)."""
    found = [frame.with_name(frame.stem + EXCLUSION_SUFFIX)]
    if "EDR" in frame.stem:
        for folder, tag in AI4MARS_MASKS:
            name = frame.stem.replace("EDR", tag) + ".png"
            found += [frame.parent / folder / name, frame.parent.parent / folder / name]
    return [p for p in found if p.is_file()]


def exclusion_for(frame: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The union of ``frame``'s exclusion masks as a mono8 array (1 = not terrain), or None when it has none;
    raises :class:`SideInputError` for an unreadable one or one of another size."""
    union = None
    for path in exclusion_files(frame):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise SideInputError(f"exclusion mask {path} is not a readable image")
        excluded = exclusion_from_array(mask, shape)
        union = excluded if union is None else union | excluded
    return None if union is None else union.astype(np.uint8)


def side_inputs_for(frame: Path, shape: tuple[int, int]) -> SideInputs:
    """:class:`SideInputs` of an image file by the rule above; raises :class:`SideInputError` with the reason."""
    exclusion = exclusion_for(frame, shape)
    side = SideInputs(exclusion=None if exclusion is None else exclusion > 0)
    for suffix, encoding in DEPTH_SUFFIXES:
        path = frame.with_name(frame.stem + suffix)
        if path.is_file():
            depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if depth is None:
                raise SideInputError(f"depth image {path} is not readable")
            side.depth = depth_from_array(depth, shape, encoding)
            break
    return side


def side_topics(image_topic: str) -> dict[str, str]:
    """The side-input topics of a bag's image topic: ``{"exclusion_mask": NS/exclusion_mask, "depth": NS/depth}``."""
    base = image_topic.removesuffix("/compressed").rsplit("/", 1)[0]
    return {"exclusion_mask": f"{base}/exclusion_mask", "depth": f"{base}/depth"}
