"""Mask → ground-plane cost grid through a pinhole camera (ROS-free; the node fills it into nav_msgs/OccupancyGrid).

Conventions (REP-103 / REP-105): the grid frame (``costmap_frame``, default ``base_link``) has x forward, y left,
z up, and the ground is the plane z = 0 of that frame. The camera's optical frame has z forward (out of the lens),
x right, y down. The camera pose is its optical centre's position (x, y, height above ground) and its orientation
as yaw (left positive, about z), pitch (tilt down positive) and roll (about the viewing direction) applied to a
camera looking straight forward; or any rotation matrix, e.g. from tf2.

The pixel → cell lookup is computed once per camera model, pose, grid and mask size, and reused for every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ai4mars_perception.core.classes import TERRAIN_CLASSES

#: optical axes expressed in a forward-looking body frame: x_body = z_opt, y_body = -x_opt, z_body = -y_opt
_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
#: at most this many pixels (evenly spread) decide a cell's cost
PIXELS_PER_CELL = 64
#: class id → cost 0..100 (OccupancyGrid scale); anything else (unknown, rover, null class) → -1
COST_LUT = np.full(256, -1, np.int16)
for _c in TERRAIN_CLASSES:
    COST_LUT[_c.id] = round(100 * _c.cost)


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics for images of ``width`` x ``height`` pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> CameraModel:
        """Square pixels, principal point at the centre, horizontal field of view ``hfov_deg``."""
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    @classmethod
    def from_k(cls, width: int, height: int, k: list[float]) -> CameraModel:
        """From a CameraInfo ``K`` (row-major 3x3)."""
        return cls(width, height, float(k[0]), float(k[4]), float(k[2]), float(k[5]))

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera for images resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        return CameraModel(width, height, self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                           (self.cy + 0.5) * sy - 0.5)  # fmt: skip


def rotation_from_angles(roll_deg: float, pitch_deg: float, yaw_deg: float) -> np.ndarray:
    """Ground-from-optical rotation of a camera looking forward, then rolled, pitched down and yawed left."""
    r, p, y = (math.radians(a) for a in (roll_deg, pitch_deg, yaw_deg))
    rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    rz = np.array([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]])
    return rz @ ry @ rx @ _BODY_FROM_OPTICAL


def rotation_from_quaternion(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Rotation matrix of a unit quaternion (as in geometry_msgs / tf2)."""
    n = math.sqrt(x * x + y * y + z * z + w * w) or 1.0
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


@dataclass(frozen=True)
class Grid:
    """Where the cost grid lies in the ground frame: ``width`` x ``height`` cells of ``resolution`` metres, cell
    (0, 0) with its corner at (``origin_x``, ``origin_y``), rows along +y, columns along +x (OccupancyGrid order)."""

    resolution: float
    width: int
    height: int
    origin_x: float
    origin_y: float


class GroundProjector:
    """The precomputed pixel → cell lookup for one camera, pose, grid set-up and mask size."""

    def __init__(self, camera: CameraModel, rotation: np.ndarray, position: tuple[float, float, float],
                 resolution: float = 0.1, max_range: float = 30.0, size: float = 0.0) -> None:  # fmt: skip
        """``position``: camera centre (x, y, z) in the ground frame, z = height above ground. ``size`` > 0: a fixed
        square window of that many metres ahead of the camera; 0: the projected footprint's bounding box."""
        if position[2] <= 0:
            raise ValueError("the camera must be above the ground (height > 0)")
        if resolution <= 0 or max_range <= 0:
            raise ValueError("costmap resolution and range must be positive")
        self.camera, self.rotation, self.position = camera, rotation, tuple(position)
        self.max_range = max_range
        self.key = self.key_of(camera, rotation, position, resolution, max_range, size)
        u, v = np.meshgrid(np.arange(camera.width, dtype=np.float64), np.arange(camera.height, dtype=np.float64))
        rays = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], -1) @ rotation.T
        down = rays[..., 2] < -1e-9  # rays at or above the horizon never meet the ground
        t = np.where(down, -position[2] / np.where(down, rays[..., 2], -1.0), np.inf)
        gx, gy = position[0] + t * rays[..., 0], position[1] + t * rays[..., 1]
        valid = down & (np.hypot(gx - position[0], gy - position[1]) <= max_range)
        if size > 0:
            x0, y0, nx, ny = position[0], position[1] - size / 2, *(2 * [math.ceil(size / resolution)])
        elif valid.any():
            x0 = math.floor(gx[valid].min() / resolution) * resolution
            y0 = math.floor(gy[valid].min() / resolution) * resolution
            nx = math.floor((gx[valid].max() - x0) / resolution) + 1
            ny = math.floor((gy[valid].max() - y0) / resolution) + 1
        else:
            x0, y0, nx, ny = position[0], position[1], 1, 1
        col = np.floor((gx - x0) / resolution)
        row = np.floor((gy - y0) / resolution)
        valid &= (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
        pixels = np.flatnonzero(valid)
        cells = (row.ravel()[pixels] * nx + col.ravel()[pixels]).astype(np.int64)
        # far away, consecutive image rows land more than a cell apart: the cells in between take the pixel
        # their centre projects to, so the footprint has no striped gaps
        missed = np.setdiff1d(np.arange(nx * ny), cells)
        back_pixels, back_cells = self._back_project(missed, camera, rotation, position, (x0, y0, nx), resolution,
                                                     max_range)  # fmt: skip
        pixels, cells = np.concatenate([pixels, back_pixels]), np.concatenate([cells, back_cells])
        order = np.argsort(cells, kind="stable")
        pixels, cells = pixels[order], cells[order]
        # near the camera hundreds of pixels share a cell; an even sample of PIXELS_PER_CELL of them sees
        # every feature larger than ~1/4 of the cell and keeps the per-frame cost small
        _, starts, counts = np.unique(cells, return_index=True, return_counts=True)
        rank = np.arange(len(cells)) - np.repeat(starts, counts)
        keep = rank % np.repeat(np.maximum(1, -(-counts // PIXELS_PER_CELL)), counts) == 0
        self.pixels, cells = pixels[keep], cells[keep]  # pixel indices, sorted by cell
        self.cells, self.starts = np.unique(cells, return_index=True)  # cells hit, and where their pixels start
        self.grid = Grid(resolution, int(nx), int(ny), float(x0), float(y0))

    @staticmethod
    def _back_project(cells, camera, rotation, position, layout, resolution, max_range):
        """(pixel, cell) for the cells whose centre is seen by the camera within range."""
        x0, y0, nx = layout
        cx = x0 + (cells % nx + 0.5) * resolution
        cy = y0 + (cells // nx + 0.5) * resolution
        d = np.stack([cx - position[0], cy - position[1], np.full(len(cells), -position[2])], -1) @ rotation
        z = d[:, 2]
        ahead = z > 1e-9
        u = np.where(ahead, camera.fx * d[:, 0] / np.where(ahead, z, 1) + camera.cx, -1)
        v = np.where(ahead, camera.fy * d[:, 1] / np.where(ahead, z, 1) + camera.cy, -1)
        ui, vi = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
        seen = ahead & (ui >= 0) & (ui < camera.width) & (vi >= 0) & (vi < camera.height)
        seen &= np.hypot(cx - position[0], cy - position[1]) <= max_range
        return vi[seen] * camera.width + ui[seen], cells[seen]

    @staticmethod
    def key_of(camera: CameraModel, rotation: np.ndarray, position, resolution: float, max_range: float,
               size: float) -> tuple:  # fmt: skip
        """What the lookup depends on: a projector is reused while this stays the same."""
        return camera, np.round(rotation, 9).tobytes(), tuple(position), resolution, max_range, size

    def costmap(self, mask: np.ndarray) -> np.ndarray:
        """int8 ``(height, width)`` grid: per cell the worst (highest) cost of the known pixels that fall in it,
        0..100; -1 where no known pixel falls (nothing seen, unknown, rover body, null class)."""
        if mask.shape != (self.camera.height, self.camera.width):
            raise ValueError(f"mask {mask.shape} does not match the camera {self.camera.height}x{self.camera.width}")
        grid = np.full(self.grid.width * self.grid.height, -1, np.int8)
        if len(self.cells):
            costs = COST_LUT[mask.ravel()[self.pixels]]
            grid[self.cells] = np.maximum.reduceat(costs, self.starts).astype(np.int8)
        return grid.reshape(self.grid.height, self.grid.width)

    def costmap_from_points(self, mask: np.ndarray, points: np.ndarray, stride: int = 2) -> np.ndarray:
        """The grid of :meth:`costmap`, but each labelled pixel lands at its own 3D point (``points``: ``(H, W,
        3)`` in the optical frame, NaN where unknown, e.g. from a depth image): a rock face fills the cells at the
        rock, not the ground behind it. Every ``stride``-th pixel in both directions is placed."""
        if mask.shape != points.shape[:2]:
            raise ValueError(f"mask {mask.shape} and points {points.shape[:2]} differ in size")
        m, pts = mask[::stride, ::stride].ravel(), points[::stride, ::stride].reshape(-1, 3).astype(np.float64)
        costs = COST_LUT[m]
        ground = pts @ self.rotation.T + np.asarray(self.position)
        g = self.grid
        col = np.floor((ground[:, 0] - g.origin_x) / g.resolution)
        row = np.floor((ground[:, 1] - g.origin_y) / g.resolution)
        reach = np.hypot(ground[:, 0] - self.position[0], ground[:, 1] - self.position[1]) <= self.max_range
        keep = (costs >= 0) & np.isfinite(col) & np.isfinite(row) & reach
        keep &= (col >= 0) & (col < g.width) & (row >= 0) & (row < g.height)
        grid = np.full(g.width * g.height, -1, np.int16)
        np.maximum.at(grid, (row[keep] * g.width + col[keep]).astype(np.int64), costs[keep])
        return grid.astype(np.int8).reshape(g.height, g.width)
