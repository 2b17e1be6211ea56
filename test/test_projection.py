"""Ground projection against closed-form geometry, the cached lookup, and the confidence image (ROS-free)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ai4mars_perception.core.pipeline import Pipeline, PipelineConfig
from ai4mars_perception.core.projection import CameraModel, GroundProjector, rotation_from_angles

H, PITCH, HFOV, SIZE, RES = 2.0, 30.0, 60.0, 101, 0.1


def _projector(pitch: float = PITCH, yaw: float = 0.0, **kw) -> GroundProjector:
    camera = CameraModel.from_fov(SIZE, SIZE, HFOV)
    return GroundProjector(camera, rotation_from_angles(0.0, pitch, yaw), (0.0, 0.0, H), RES, **kw)


def _known_cells(p: GroundProjector, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(grid >= 0)
    x = p.grid.origin_x + (cols + 0.5) * p.grid.resolution
    y = p.grid.origin_y + (rows + 0.5) * p.grid.resolution
    return x, y, grid[rows, cols]


@pytest.mark.parametrize("row", [60, 75, 100])
def test_an_image_row_lands_at_the_closed_form_distance(row):
    p = _projector()
    mask = np.full((SIZE, SIZE), 255, np.uint8)
    mask[row] = 0  # one row of soil, everything else unknown
    x, _, values = _known_cells(p, p.costmap(mask))
    f = (SIZE / 2) / math.tan(math.radians(HFOV / 2))
    alpha = math.atan((row - (SIZE - 1) / 2) / f)
    expected = H / math.tan(math.radians(PITCH) + alpha)
    assert len(x) > 0 and set(values.tolist()) == {10}  # soil costs 0.1 -> 10
    assert np.all(np.abs(x - expected) <= RES)  # within one cell


def test_image_left_is_plus_y_and_the_worst_class_wins():
    p = _projector()
    mask = np.zeros((SIZE, SIZE), np.uint8)  # soil
    mask[:, : SIZE // 2] = 3  # big rock on the left half of the image
    x, y, values = _known_cells(p, p.costmap(mask))
    assert set(values[y > 0.2].tolist()) == {100}
    assert set(values[y < -0.2].tolist()) == {10}
    assert np.all(x > 0)  # in front of the camera


def test_pixels_above_the_horizon_never_land_and_range_is_limited():
    p = _projector(pitch=0.0, max_range=12.0)
    mask = np.full((SIZE, SIZE), 255, np.uint8)
    mask[: SIZE // 2 + 1] = 1  # the upper half (at and above the horizon) is bedrock
    assert (p.costmap(mask) == -1).all()
    mask[:] = 1
    x, y, _ = _known_cells(p, p.costmap(mask))
    assert np.hypot(x, y).max() <= 12.0 + RES


def test_yaw_turns_the_footprint_left():
    p = _projector(yaw=90.0)
    x, y, _ = _known_cells(p, p.costmap(np.zeros((SIZE, SIZE), np.uint8)))
    assert np.all(y > 0) and np.abs(x).max() < np.abs(y).max()


def test_fixed_window_and_camera_model_scaling():
    p = _projector(size=20.0)
    assert (p.grid.width, p.grid.height) == (200, 200) and p.grid.origin_y == pytest.approx(-10.0)
    cam = CameraModel.from_k(1024, 1024, [1236.0, 0, 511.5, 0, 1236.0, 511.5, 0, 0, 1])
    small = cam.scaled(256, 256)
    assert small.fx == pytest.approx(309.0) and small.cx == pytest.approx(127.5)


def test_the_lookup_is_rebuilt_only_when_camera_or_pose_change(tiny_model):
    pipe = Pipeline(PipelineConfig(model_path=str(tiny_model), device="cpu", use_geometry=False))
    first = pipe.projector((128, 128))
    assert pipe.projector((128, 128)) is first
    pipe.update({"camera_pitch": 40.0})
    second = pipe.projector((128, 128))
    assert second is not first and pipe.projector((128, 128)) is second
    info = CameraModel.from_k(256, 256, [300.0, 0, 127.5, 0, 300.0, 127.5, 0, 0, 1])
    third = pipe.projector((128, 128), camera=info)
    assert third is not second and third.camera.fx == pytest.approx(150.0)
    pose = (rotation_from_angles(0, 10, 0), (0.0, 0.0, 1.0))
    assert pipe.projector((128, 128), camera=info, pose=pose) is not third


def test_confidence_is_the_softmax_maximum(tiny_model, navcam_frames):
    from ai4mars_perception.core.image_codec import read_image_file

    pipe = Pipeline(PipelineConfig(model_path=str(tiny_model), device="cpu", use_geometry=False))
    frame = read_image_file(navcam_frames[0])
    result = pipe.process(frame)
    z = result.logits.astype(np.float64)
    p = np.exp(z - z.max(0)) / np.exp(z - z.max(0)).sum(0)
    want = np.round(255 * p.max(0))
    conf = result.confidence
    assert conf.shape == frame.shape and conf.dtype == np.uint8
    small = conf[8::16, 8::16]  # model resolution 64: the output pixel nearest each model pixel centre
    assert np.abs(small.astype(int) - want).max() <= 2 + 255 * 0.02
