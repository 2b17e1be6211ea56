"""The one frame pipeline: gray frame → :class:`FrameResult` (mask; overlay and summary computed on demand).

The node, ``bag process``, ``segment`` and the demo all run frames through :class:`Pipeline`, configured by one
:class:`PipelineConfig` built from the one parameter table (:mod:`ai4mars_perception.core.params`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import cv2
import numpy as np

from ai4mars_perception.core.image_codec import gray_from_message, read_image_file
from ai4mars_perception.core.model.backends import wants_float_model
from ai4mars_perception.core.model.shipped import default_model_path
from ai4mars_perception.core.overlay import overlay
from ai4mars_perception.core.params import PARAMETERS, ParamsError, check_values, config_base, defaults, group_names
from ai4mars_perception.core.projection import CameraModel, GroundProjector, rotation_from_angles
from ai4mars_perception.core.segmenter import ModelLoadError, Segmenter, Timings
from ai4mars_perception.core.traversability import FrameSummary, TraversabilityConfig, summarize, summary_to_array


class GroundConfig(config_base("_GroundFields", "ground")):
    """Camera pose and grid of the ground-projected costmap: the ``ground`` group of the parameter table."""

    def pose(self) -> tuple[np.ndarray, tuple[float, float, float]]:
        """(ground-from-optical rotation, camera position) from the parameters."""
        rotation = rotation_from_angles(self.camera_roll, self.camera_pitch, self.camera_yaw)
        return rotation, (self.camera_x, self.camera_y, self.camera_height)


_NESTED = [("traversability", TraversabilityConfig, field(default_factory=TraversabilityConfig)),
           ("ground", GroundConfig, field(default_factory=GroundConfig))]  # fmt: skip


class PipelineConfig(config_base("_PipelineFields", "model", "output", extra=_NESTED)):
    """What the pipeline needs from the parameter table: the ``model`` and ``output`` groups as fields, the
    ``traversability`` and ``ground`` groups as nested configs (all generated from the table, defaults included).
    Ranges are the table's, checked in :func:`~ai4mars_perception.core.params.check_value`."""

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> PipelineConfig:
        """Build from parameter values (missing ones take their defaults; names of other groups are ignored);
        raises :class:`ParamsError` for a value out of its type, range or choices, or contradicting thresholds."""
        v = {**defaults(), **check_values({k: x for k, x in values.items() if k in PARAMETERS})}
        trav = TraversabilityConfig(**{k: v[k] for k in group_names("traversability")})
        try:
            trav.validate()
        except ValueError as e:
            raise ParamsError(str(e)) from None
        ground = GroundConfig(**{k: v[k] for k in group_names("ground")})
        return cls(**{k: v[k] for k in group_names("model", "output")}, traversability=trav, ground=ground)

    def values(self) -> dict[str, Any]:
        """Every parameter value this config holds, by name."""
        return {**{k: getattr(self, k) for k in group_names("model", "output")}, **vars(self.traversability),
                **vars(self.ground)}  # fmt: skip

    def with_values(self, values: dict[str, Any]) -> PipelineConfig:
        """A copy with dynamic values changed (overlay_alpha, thresholds, camera pose, grid); raises
        :class:`ParamsError`."""
        fixed = [k for k in values if k not in PARAMETERS or not PARAMETERS[k].dynamic]
        if fixed:
            raise ParamsError(f"{', '.join(sorted(fixed))} cannot change while running")
        new = PipelineConfig.from_values({**self.values(), **values})
        return replace(self, overlay_alpha=new.overlay_alpha, traversability=new.traversability, ground=new.ground)

    def resolved_model_path(self) -> str:
        """The model file: ``model_path``, or when it is empty the shipped default for this device and backend
        (int8 for ONNX Runtime on the CPU when shipped, else the float model)."""
        if self.model_path:
            return self.model_path
        return str(default_model_path(wants_float_model(self.device, self.backend, default_model_path(True))))


@dataclass
class FrameResult:
    """One processed frame. ``overlay``, ``summary`` and ``table`` are computed when first asked for."""

    gray: np.ndarray
    mask: np.ndarray
    logits: np.ndarray
    timings: Timings
    config: PipelineConfig
    segmenter: Segmenter

    @cached_property
    def confidence(self) -> np.ndarray:
        """uint8 softmax maximum x 255 at the frame size (0 where unknown), from the same forward pass."""
        return self.segmenter.confidence(self.logits, self.mask)

    @cached_property
    def overlay(self) -> np.ndarray:
        """RGB frame with class colours blended in (unknown pixels left as they are)."""
        return overlay(self.gray, self.mask, self.config.overlay_alpha, self.segmenter.metadata.class_colors)

    @cached_property
    def summary(self) -> FrameSummary:
        """Traversability summary of the frame and its near-field sectors."""
        return summarize(self.mask, self.config.traversability)

    @cached_property
    def table(self) -> np.ndarray:
        """The summary as the structured table published on ``~/traversability``."""
        return summary_to_array(self.summary)

    def costmap(self, projector: GroundProjector) -> np.ndarray:
        """int8 cost grid (-1 unknown, 0..100) of the mask projected onto the ground by ``projector``."""
        return projector.costmap(self.mask)


def read_rover_mask(path: str) -> np.ndarray:
    """A rover mask image (non-zero = rover body); raises :class:`ParamsError` when unreadable."""
    rover = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if rover is None:
        raise ParamsError(f"rover mask {path} is not a readable image")
    return rover


class Pipeline:
    """Loads the model (and rover mask) of a :class:`PipelineConfig` and turns gray frames into results."""

    def __init__(self, config: PipelineConfig) -> None:
        path = config.resolved_model_path()
        try:
            self.segmenter = Segmenter(path, config.device, config.intra_op_threads, config.flip_tta, config.backend,
                                       config.allow_pickle)  # fmt: skip
        except ModelLoadError as e:
            if not config.model_path:
                raise ModelLoadError(f"{e} (no model named: pass model_path:=/path/to/model.onnx)") from None
            raise
        if config.rover_mask_path:
            self.segmenter.set_rover_mask(read_rover_mask(config.rover_mask_path))
        self.config = config
        self._projector: GroundProjector | None = None

    @property
    def metadata(self):
        """The model's :class:`~ai4mars_perception.core.model.metadata.ModelMetadata`."""
        return self.segmenter.metadata

    def update(self, values: dict[str, Any]) -> None:
        """Change dynamic values (overlay_alpha, thresholds) for the next frames; raises :class:`ParamsError`."""
        self.config = self.config.with_values(values)

    def process_message(self, msg) -> FrameResult:
        """Decode an Image or CompressedImage message (rclpy or rosbags; size checked against max_pixels before
        decoding) and segment it; raises :class:`~ai4mars_perception.core.image_codec.ImageDecodeError`."""
        return self.process(gray_from_message(msg, self.config.max_pixels))

    def process_file(self, path) -> FrameResult:
        """Read an image file (any format OpenCV/Pillow read; size checked first) and segment it."""
        return self.process(read_image_file(path, self.config.max_pixels))

    def process(self, gray: np.ndarray) -> FrameResult:
        """Segment one uint8 gray frame."""
        config, timings = self.config, Timings()
        mask, logits = self.segmenter.run(gray, timings)
        return FrameResult(gray, mask, logits, timings, config, self.segmenter)

    def projector(self, shape: tuple[int, int], camera: CameraModel | None = None,
                  pose: tuple[np.ndarray, tuple[float, float, float]] | None = None) -> GroundProjector:  # fmt: skip
        """The pixel → cell lookup for masks of ``shape``: intrinsics from ``camera`` (a CameraInfo) or the
        camera_hfov parameter, pose from ``pose`` (tf2) or the camera_* parameters. Rebuilt only when one of
        them changes."""
        g = self.config.ground
        h, w = shape
        camera = camera.scaled(w, h) if camera is not None else CameraModel.from_fov(w, h, g.camera_hfov)
        rotation, position = pose if pose is not None else g.pose()
        grid = (g.costmap_resolution, g.costmap_max_range, g.costmap_size)
        if self._projector is None or self._projector.key != GroundProjector.key_of(camera, rotation, position, *grid):
            self._projector = GroundProjector(camera, rotation, position, *grid)
        return self._projector
