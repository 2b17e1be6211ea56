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

from ai4mars_perception.core.model.backends import wants_float_model
from ai4mars_perception.core.model.shipped import default_model_path
from ai4mars_perception.core.overlay import overlay
from ai4mars_perception.core.params import ParamsError, defaults
from ai4mars_perception.core.projection import CameraModel, GroundProjector, rotation_from_angles
from ai4mars_perception.core.segmenter import ModelLoadError, Segmenter, Timings
from ai4mars_perception.core.traversability import FrameSummary, TraversabilityConfig, summarize, summary_to_array

_TRAVERSABILITY_KEYS = tuple(TraversabilityConfig.__dataclass_fields__)


@dataclass(frozen=True)
class GroundConfig:
    """Camera pose and grid of the ground-projected costmap (parameters camera_* and costmap_*)."""

    costmap_frame: str = "base_link"
    use_tf: bool = True
    camera_height: float = 1.9
    camera_pitch: float = 25.0
    camera_yaw: float = 0.0
    camera_roll: float = 0.0
    camera_x: float = 0.0
    camera_y: float = 0.0
    camera_hfov: float = 45.0
    costmap_resolution: float = 0.1
    costmap_size: float = 0.0
    costmap_max_range: float = 30.0

    def pose(self) -> tuple[np.ndarray, tuple[float, float, float]]:
        """(ground-from-optical rotation, camera position) from the parameters."""
        rotation = rotation_from_angles(self.camera_roll, self.camera_pitch, self.camera_yaw)
        return rotation, (self.camera_x, self.camera_y, self.camera_height)


_GROUND_KEYS = tuple(GroundConfig.__dataclass_fields__)


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline needs from the parameter table (defaults = the table's defaults)."""

    model_path: str = ""
    device: str = "auto"
    backend: str = "auto"
    allow_pickle: bool = False
    intra_op_threads: int = 0
    flip_tta: bool = False
    max_pixels: int = defaults()["max_pixels"]
    rover_mask_path: str = ""
    overlay_alpha: float = 0.5
    traversability: TraversabilityConfig = field(default_factory=TraversabilityConfig)
    ground: GroundConfig = field(default_factory=GroundConfig)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> PipelineConfig:
        """Build from parameter values (missing ones take their defaults); raises :class:`ParamsError`."""
        v = {**defaults(), **values}
        trav = TraversabilityConfig(**{k: v[k] for k in _TRAVERSABILITY_KEYS})
        try:
            trav.validate()
        except ValueError as e:
            raise ParamsError(str(e)) from None
        if not 0.0 <= float(v["overlay_alpha"]) <= 1.0:
            raise ParamsError("overlay_alpha must lie in [0, 1]")
        names = ("model_path", "device", "backend", "allow_pickle", "intra_op_threads", "flip_tta", "max_pixels",
                 "rover_mask_path")  # fmt: skip
        ground = GroundConfig(**{k: v[k] for k in _GROUND_KEYS})
        return cls(**{k: v[k] for k in names}, overlay_alpha=float(v["overlay_alpha"]), traversability=trav,
                   ground=ground)  # fmt: skip

    def with_values(self, values: dict[str, Any]) -> PipelineConfig:
        """A copy with dynamic values changed (overlay_alpha, thresholds, camera pose, grid); raises
        :class:`ParamsError`."""
        current = {"overlay_alpha": self.overlay_alpha, **vars(self.traversability), **vars(self.ground)}
        unknown = set(values) - set(current)
        if unknown:
            raise ParamsError(f"{', '.join(sorted(unknown))} cannot change while running")
        new = PipelineConfig.from_values({**current, **values})
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
