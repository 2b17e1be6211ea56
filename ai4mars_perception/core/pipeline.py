"""The one frame pipeline: gray frame → :class:`FrameResult` (mask; overlay and summary computed on demand).

The node, ``bag process``, ``segment`` and the demo all run frames through :class:`Pipeline`, configured by one
:class:`PipelineConfig` built from the one parameter table (:mod:`ai4mars_perception.core.params`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import cv2
import numpy as np

from ai4mars_perception.core.classes import IGNORE_INDEX
from ai4mars_perception.core.image_codec import gray_from_message, read_image_file
from ai4mars_perception.core.model.backends import wants_float_model
from ai4mars_perception.core.model.shipped import default_model_path
from ai4mars_perception.core.overlay import overlay
from ai4mars_perception.core.params import PARAMETERS, ParamsError, check_values, config_base, defaults, group_names
from ai4mars_perception.core.projection import CameraModel, GroundProjector, rotation_from_angles
from ai4mars_perception.core.segmenter import ModelLoadError, Segmenter, Timings
from ai4mars_perception.core.traversability import FrameSummary, TraversabilityConfig, summarize, summary_to_array
from ai4mars_perception.core.validity import GroundGeometry, SideInputs, valid_terrain


class GroundConfig(config_base("_GroundFields", "ground")):
    """Camera pose and grid of the ground-projected costmap: the ``ground`` group of the parameter table."""

    def pose(self) -> tuple[np.ndarray, tuple[float, float, float]]:
        """(ground-from-optical rotation, camera position) from the parameters."""
        rotation = rotation_from_angles(self.camera_roll, self.camera_pitch, self.camera_yaw)
        return rotation, (self.camera_x, self.camera_y, self.camera_height)


_NESTED = [("traversability", TraversabilityConfig, field(default_factory=TraversabilityConfig)),
           ("ground", GroundConfig, field(default_factory=GroundConfig))]  # fmt: skip


class PipelineConfig(config_base("_PipelineFields", "model", "validity", "output", extra=_NESTED)):
    """What the pipeline needs from the parameter table: the ``model``, ``validity`` and ``output`` groups as fields,
    the ``traversability`` and ``ground`` groups as nested configs (all generated from the table, defaults included).
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
        return cls(**{k: v[k] for k in group_names("model", "validity", "output")}, traversability=trav, ground=ground)

    def values(self) -> dict[str, Any]:
        """Every parameter value this config holds, by name."""
        flat = {k: getattr(self, k) for k in group_names("model", "validity", "output")}
        return {**flat, **vars(self.traversability), **vars(self.ground)}

    def with_values(self, values: dict[str, Any]) -> PipelineConfig:
        """A copy with dynamic values changed (overlay_alpha, thresholds, camera pose, grid); raises
        :class:`ParamsError`."""
        fixed = [k for k in values if k not in PARAMETERS or not PARAMETERS[k].dynamic]
        if fixed:
            raise ParamsError(f"{', '.join(sorted(fixed))} cannot change while running")
        new = PipelineConfig.from_values({**self.values(), **values})
        dynamic = {k: getattr(new, k) for k in group_names("validity", "output")}
        return replace(self, **dynamic, traversability=new.traversability, ground=new.ground)

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
    points: np.ndarray | None = None  # (H, W, 3) optical-frame points of the pixels: depth, else flat ground
    from_depth: bool = False

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
        """int8 cost grid (-1 unknown, 0..100) of the mask on the ground: each labelled pixel at its 3D point when
        the frame came with depth (a rock face lands at the rock), else by ``projector``'s flat-ground lookup."""
        if self.from_depth and self.points is not None:
            return projector.costmap_from_points(self.mask, self.points)
        return projector.costmap(self.mask)

    def ground_cloud(self) -> np.ndarray:
        """``(h, w, 3)`` float32 points in the camera's optical frame, every ``cloud_decimation``-th pixel in both
        directions (organized like the image); NaN where the pixel is unknown."""
        d = self.config.cloud_decimation
        mask = self.mask[::d, ::d]
        if self.points is None:
            return np.full((*mask.shape, 3), np.nan, np.float32)
        cloud = self.points[::d, ::d].copy()
        cloud[mask == IGNORE_INDEX] = np.nan
        return cloud


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
        self._ground: GroundGeometry | None = None

    @property
    def metadata(self):
        """The model's :class:`~ai4mars_perception.core.model.metadata.ModelMetadata`."""
        return self.segmenter.metadata

    def update(self, values: dict[str, Any]) -> None:
        """Change dynamic values (overlay_alpha, thresholds) for the next frames; raises :class:`ParamsError`."""
        self.config = self.config.with_values(values)

    def process_message(self, msg, side: SideInputs | None = None, camera: CameraModel | None = None,
                        pose=None) -> FrameResult:  # fmt: skip
        """Decode an Image or CompressedImage message (rclpy or rosbags; size checked against max_pixels before
        decoding) and segment it; raises :class:`~ai4mars_perception.core.image_codec.ImageDecodeError`."""
        return self.process(self.decode(msg), side, camera, pose)

    def decode(self, msg) -> np.ndarray:
        """An Image or CompressedImage message as a uint8 gray frame (size checked before decoding)."""
        return gray_from_message(msg, self.config.max_pixels)

    def process_file(self, path, side: SideInputs | None = None) -> FrameResult:
        """Read an image file (any format OpenCV/Pillow read; size checked first) and segment it."""
        return self.process(self.read(path), side)

    def read(self, path) -> np.ndarray:
        """An image file as a uint8 gray frame (size checked before decoding)."""
        return read_image_file(path, self.config.max_pixels)

    def process(self, gray: np.ndarray, side: SideInputs | None = None, camera: CameraModel | None = None,
                pose=None) -> FrameResult:  # fmt: skip
        """Segment one uint8 gray frame; pixels that cannot be terrain (:mod:`~ai4mars_perception.core.validity`:
        beyond range or sky by the camera geometry or the depth, excluded by a mask) become unknown (255).
        ``camera`` (CameraInfo intrinsics) and ``pose`` (tf2) default to the camera_* parameters."""
        config, timings = self.config, Timings()
        mask, logits = self.segmenter.run(gray, timings)
        t0 = time.perf_counter()
        ground = self.ground(gray.shape[:2], camera, pose)
        depth = side.depth if side is not None else None
        points = ground.rays * depth[..., None] if depth is not None else ground.points  # no per-frame rays
        valid = valid_terrain(config.max_range, ground if config.use_geometry else None, side,
                              points if depth is not None else None)  # fmt: skip
        if valid is not None:
            mask[~valid] = IGNORE_INDEX
        timings.validity = time.perf_counter() - t0
        return FrameResult(gray, mask, logits, timings, config, self.segmenter, points, depth is not None)

    def ground(self, shape: tuple[int, int], camera: CameraModel | None = None, pose=None) -> GroundGeometry:
        """The flat-ground geometry of frames of ``shape`` (rebuilt only when the camera or pose changes)."""
        camera, rotation, position = self._camera(shape, camera, pose)
        if self._ground is None or self._ground.key != GroundGeometry.key_of(camera, rotation, position):
            self._ground = GroundGeometry(camera, rotation, position)
        return self._ground

    def _camera(self, shape: tuple[int, int], camera: CameraModel | None, pose):
        g = self.config.ground
        h, w = shape
        camera = camera.scaled(w, h) if camera is not None else CameraModel.from_fov(w, h, g.camera_hfov)
        rotation, position = pose if pose is not None else g.pose()
        return camera, rotation, position

    def projector(self, shape: tuple[int, int], camera: CameraModel | None = None,
                  pose: tuple[np.ndarray, tuple[float, float, float]] | None = None) -> GroundProjector:  # fmt: skip
        """The pixel → cell lookup for masks of ``shape``: intrinsics from ``camera`` (a CameraInfo) or the
        camera_hfov parameter, pose from ``pose`` (tf2) or the camera_* parameters. Rebuilt only when one of
        them changes."""
        g = self.config.ground
        camera, rotation, position = self._camera(shape, camera, pose)
        grid = (g.costmap_resolution, g.costmap_max_range, g.costmap_size)
        if self._projector is None or self._projector.key != GroundProjector.key_of(camera, rotation, position, *grid):
            self._projector = GroundProjector(camera, rotation, position, *grid)
        return self._projector
