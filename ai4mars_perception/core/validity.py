"""Only terrain is terrain: which pixels of a frame can be terrain at all (ROS-free).

A pixel is *unknown* (255 in the mask, 0 in confidence, -1 in the costmap, NaN in the cloud, never in a verdict)
when
- its ray does not meet the ground (above the horizon) or meets it farther than ``max_range`` (flat-ground model of
  the camera geometry: intrinsics and pose), or, with a depth image, its depth is NaN, inf, zero or its 3D point
  lies farther than ``max_range``;
- an exclusion mask (the rover's body, from a static file or per frame from the rover's kinematics) marks it.

Depth images are aligned with the camera: ``32FC1`` in metres or ``16UC1`` in millimetres (REP-118).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ai4mars_perception.core.projection import CameraModel

DEPTH_ENCODINGS = ("32FC1", "16UC1")


class SideInputError(ValueError):
    """An exclusion mask or depth image that cannot be used for its frame; the message says why."""


@dataclass
class SideInputs:
    """What may come with a frame: ``exclusion`` (bool, True = not terrain) and ``depth`` (float32 metres, NaN
    where unknown), both at the frame's size."""

    exclusion: np.ndarray | None = None
    depth: np.ndarray | None = None


def exclusion_from_array(mask: np.ndarray, shape: tuple[int, int], encoding: str = "mono8") -> np.ndarray:
    """A mono8 exclusion mask (non-zero = not terrain) as bool; raises :class:`SideInputError` for another
    encoding or size."""
    if encoding != "mono8" or mask.dtype != np.uint8 or mask.ndim != 2:
        raise SideInputError(f"exclusion mask must be mono8, got {encoding} ({mask.dtype}, {mask.ndim} dims)")
    if mask.shape != shape:
        raise SideInputError(f"exclusion mask is {mask.shape[1]}x{mask.shape[0]}, the frame {shape[1]}x{shape[0]}")
    return mask > 0


def depth_from_array(depth: np.ndarray, shape: tuple[int, int], encoding: str) -> np.ndarray:
    """A depth image as float32 metres with NaN where it holds no depth (NaN, inf, zero); raises
    :class:`SideInputError` for another encoding or size."""
    if encoding not in DEPTH_ENCODINGS:
        raise SideInputError(f"depth must be 32FC1 (m) or 16UC1 (mm), got {encoding}")
    if depth.shape != shape:
        raise SideInputError(f"depth image is {depth.shape[1]}x{depth.shape[0]}, the frame {shape[1]}x{shape[0]}")
    metres = depth.astype(np.float32) / (1000.0 if encoding == "16UC1" else 1.0)
    metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def optical_rays(camera: CameraModel) -> np.ndarray:
    """``(H, W, 3)`` rays through each pixel in the optical frame (z = 1: x right, y down)."""
    u = (np.arange(camera.width, dtype=np.float64) - camera.cx) / camera.fx
    v = (np.arange(camera.height, dtype=np.float64) - camera.cy) / camera.fy
    rays = np.empty((camera.height, camera.width, 3), np.float64)
    rays[..., 0], rays[..., 1], rays[..., 2] = u[None, :], v[:, None], 1.0
    return rays


class GroundGeometry:
    """Per pixel, where its ray meets the flat ground (``z = 0`` of the ground frame): the 3D point in the optical
    frame and its range from the camera (inf above the horizon). Computed once per camera and pose."""

    def __init__(self, camera: CameraModel, rotation: np.ndarray, position: tuple[float, float, float]) -> None:
        if position[2] <= 0:
            raise ValueError("the camera must be above the ground (height > 0)")
        self.camera, self.rotation, self.position = camera, rotation, tuple(position)
        rays = optical_rays(camera)
        self.rays = rays.astype(np.float32)  # kept: a depth frame's points are these rays times its depth
        down = (rays @ rotation.T)[..., 2]  # the ground-frame z of each ray
        hits = down < -1e-9
        t = np.where(hits, -position[2] / np.where(hits, down, -1.0), np.inf)  # ray length to the ground
        self.points = (rays * np.where(hits, t, np.nan)[..., None]).astype(np.float32)  # optical frame, metres
        self.range = np.where(hits, t * np.linalg.norm(rays, axis=-1), np.inf)
        self._within: tuple[float, np.ndarray] | None = None

    def within(self, max_range: float) -> np.ndarray:
        """bool: the ray meets the ground at most ``max_range`` away (kept for the next frame with the same range)."""
        if self._within is None or self._within[0] != max_range:
            self._within = (max_range, self.range <= max_range)
        return self._within[1]

    @staticmethod
    def key_of(camera: CameraModel, rotation: np.ndarray, position) -> tuple:
        return camera, np.round(rotation, 9).tobytes(), tuple(position)

    @property
    def key(self) -> tuple:
        return self.key_of(self.camera, self.rotation, self.position)

    def horizon_row(self, column: int) -> int:
        """The first image row (from the top) whose ray in ``column`` meets the ground (height if none)."""
        rows = np.flatnonzero(np.isfinite(self.range[:, column]))
        return int(rows[0]) if len(rows) else self.camera.height


def depth_points(camera: CameraModel, depth: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float32 points in the optical frame from a depth image (z along the optical axis, metres);
    NaN where the depth is NaN."""
    return (optical_rays(camera) * depth[..., None]).astype(np.float32)


def valid_terrain(max_range: float, ground: GroundGeometry | None, side: SideInputs | None,
                  points: np.ndarray | None = None) -> np.ndarray | None:  # fmt: skip
    """bool: True where a pixel can be terrain (see the module); None when nothing restricts it. ``points``: the
    frame's 3D points from depth (:func:`depth_points`), which replace the flat-ground ``ground`` geometry."""
    valid = None
    if points is not None:
        dist = np.linalg.norm(points, axis=-1)
        valid = np.isfinite(dist) & (dist <= max_range)
    elif ground is not None:
        valid = ground.within(max_range)
    if side is not None and side.exclusion is not None:  # a new array: the cached geometry is not changed
        valid = ~side.exclusion if valid is None else valid & ~side.exclusion
    return valid
