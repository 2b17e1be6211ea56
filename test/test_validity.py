"""Only terrain is terrain, in closed form: the horizon against the pitch, the range cut against max_range, a box
seen with depth lands in the costmap at the box and not behind it, and side inputs that cannot be used."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ai4mars_perception.core.classes import IGNORE_INDEX
from ai4mars_perception.core.pipeline import Pipeline, PipelineConfig
from ai4mars_perception.core.projection import COST_LUT, CameraModel, GroundProjector, rotation_from_angles
from ai4mars_perception.core.validity import (
    GroundGeometry,
    SideInputError,
    SideInputs,
    depth_from_array,
    depth_points,
    exclusion_from_array,
    valid_terrain,
)

CAMERA = CameraModel.from_fov(121, 101, 60.0)
HEIGHT = 2.0


def _ground(pitch: float) -> GroundGeometry:
    return GroundGeometry(CAMERA, rotation_from_angles(0.0, pitch, 0.0), (0.0, 0.0, HEIGHT))


@pytest.mark.parametrize("pitch", [3.0, 12.0, 27.0])
def test_the_horizon_row_follows_the_pitch(pitch):
    """A row sees the ground when its ray points below the horizon: v > cy - fy tan(pitch) (flat ground)."""
    g = _ground(pitch)
    first = math.floor(CAMERA.cy - CAMERA.fy * math.tan(math.radians(pitch))) + 1
    column = int(CAMERA.cx)
    assert g.horizon_row(column) == max(0, first)
    assert np.isinf(g.range[: max(0, first), column]).all() and np.isfinite(g.range[max(0, first) :, column]).all()


@pytest.mark.parametrize("max_range", [5.0, 12.0, 30.0])
def test_the_range_cut_follows_max_range(max_range):
    """Centre column: a row's ground point lies h / sin(pitch + atan((v - cy) / fy)) from the camera."""
    pitch, column = 12.0, int(CAMERA.cx)
    valid = valid_terrain(max_range, _ground(pitch), None)
    v = np.arange(CAMERA.height)
    elevation = np.radians(pitch) + np.arctan((v - CAMERA.cy) / CAMERA.fy)
    with np.errstate(divide="ignore"):
        distance = np.where(elevation > 0, HEIGHT / np.sin(elevation), np.inf)
    decided = np.abs(distance - max_range) > 1e-6 * max_range  # no pixel sits exactly on the cut
    assert (valid[:, column] == (distance <= max_range))[decided].all()
    assert valid[:, column].any() and not valid[:, column].all()


def _box_scene(pitch: float = 15.0, box_x: float = 8.0):
    """Depth (optical z, metres) and labels of flat ground with a box face: the plane x = box_x, |y| <= 1,
    0 <= z <= 1.5 (ground frame); the face is big rock (3), the ground soil (0)."""
    rotation = rotation_from_angles(0.0, pitch, 0.0)
    rays = np.stack(np.meshgrid((np.arange(CAMERA.width) - CAMERA.cx) / CAMERA.fx,
                                (np.arange(CAMERA.height) - CAMERA.cy) / CAMERA.fy), -1)  # fmt: skip
    rays = np.concatenate([rays, np.ones((*rays.shape[:2], 1))], -1)  # optical, z = 1: t is the depth
    d = rays @ rotation.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(d[..., 2] < 0, -HEIGHT / d[..., 2], np.inf)
        t_box = np.where(d[..., 0] > 0, box_x / d[..., 0], np.inf)
    y, z = t_box * d[..., 1], HEIGHT + t_box * d[..., 2]
    on_box = np.isfinite(t_box) & (np.abs(y) <= 1.0) & (z >= 0) & (z <= 1.5) & (t_box <= t_ground)
    depth = np.where(on_box, t_box, t_ground).astype(np.float32)
    depth[~np.isfinite(depth)] = np.nan  # sky: no depth
    labels = np.where(on_box, 3, 0).astype(np.uint8)
    return rotation, depth, labels, on_box


def test_a_box_seen_with_depth_lands_at_the_box_not_behind_it():
    rotation, depth, labels, on_box = _box_scene()
    assert on_box.sum() > 100
    projector = GroundProjector(CAMERA, rotation, (0.0, 0.0, HEIGHT), resolution=0.25, max_range=30.0, size=20.0)
    g, rock = projector.grid, COST_LUT[3]
    x = g.origin_x + (np.arange(g.width) + 0.5) * g.resolution
    y = g.origin_y + (np.arange(g.height) + 0.5) * g.resolution
    centre = np.abs(y) < 0.8
    at_box, behind = (x > 7.75) & (x < 8.25), x > 9.0
    with_depth = projector.costmap_from_points(labels, depth_points(CAMERA, depth), stride=1)
    assert (with_depth[np.ix_(centre, at_box)] == rock).all()  # the face fills the cells at the box
    assert not (with_depth[np.ix_(centre, behind)] == rock).any()  # and nothing behind it
    flat = projector.costmap(labels)  # the flat-ground model smears the face over the ground behind the box
    assert (flat[np.ix_(centre, behind)] == rock).any()


def test_depth_decides_validity_nan_inf_zero_and_range():
    raw = np.array([[1.0, 0.0, np.nan], [np.inf, 40.0, 2.5]], np.float32)
    metres = depth_from_array(raw, (2, 3), "32FC1")
    assert np.isnan(metres[0, 1:]).all() and np.isnan(metres[1, 0]) and metres[1, 2] == 2.5
    mm = depth_from_array(np.array([[0, 1500, 65535]], np.uint16), (1, 3), "16UC1")
    assert np.isnan(mm[0, 0]) and mm[0, 1] == pytest.approx(1.5) and mm[0, 2] == pytest.approx(65.535)
    camera = CameraModel.from_fov(3, 2, 60.0)
    valid = valid_terrain(30.0, None, SideInputs(depth=metres), depth_points(camera, metres))
    assert valid.tolist() == [[True, False, False], [False, False, True]]  # 40 m is beyond 30 m
    with pytest.raises(SideInputError, match="32FC1 .m. or 16UC1 .mm."):
        depth_from_array(raw, (2, 3), "mono16")
    with pytest.raises(SideInputError, match="depth image is 3x2, the frame 4x2"):
        depth_from_array(raw, (2, 4), "32FC1")


def test_exclusion_masks_must_be_mono8_and_the_frames_size():
    assert exclusion_from_array(np.array([[0, 1, 255]], np.uint8), (1, 3)).tolist() == [[False, True, True]]
    with pytest.raises(SideInputError, match="must be mono8"):
        exclusion_from_array(np.zeros((1, 3), np.uint16), (1, 3), "mono16")
    with pytest.raises(SideInputError, match="exclusion mask is 3x1, the frame 4x1"):
        exclusion_from_array(np.zeros((1, 3), np.uint8), (1, 4))


def test_the_pipeline_reports_excluded_and_far_pixels_unknown(tiny_model):
    frame = np.full((100, 120), 96, np.uint8)  # bedrock everywhere for the brightness model
    pipe = Pipeline(PipelineConfig.from_values({"model_path": str(tiny_model), "device": "cpu", "camera_pitch": 25.0}))
    plain = pipe.process(frame)
    assert (plain.mask != IGNORE_INDEX).all()  # pitched down 25° with a 45° view: all ground within 30 m
    rover = np.zeros(frame.shape, bool)
    rover[60:, 40:80] = True
    result = pipe.process(frame, SideInputs(exclusion=rover))
    assert (result.mask[rover] == IGNORE_INDEX).all() and (result.mask[~rover] == 1).all()
    assert (result.confidence[rover] == 0).all()
    assert result.summary.frame.unknown_fraction == pytest.approx(rover.mean())
    assert result.summary.frame.traversable_fraction == 1.0  # the known share only: bedrock
    level = Pipeline(PipelineConfig.from_values({"model_path": str(tiny_model), "device": "cpu",
                                                 "camera_pitch": 0.0}))  # fmt: skip
    horizon = level.process(frame)  # looking level: the top half is sky
    assert (horizon.mask[:45] == IGNORE_INDEX).all() and (horizon.mask[60:] == 1).all()
    cloud = horizon.ground_cloud()
    assert cloud.shape == (25, 30, 3) and np.isnan(cloud[0]).all() and np.isfinite(cloud[-1]).all()


def test_bench_validity_measures_what_is_called_terrain(tmp_path, tiny_model, navcam_frames):
    """bench-validity on a demo frame with its MXY and RNG-30m masks: the plain model calls every rover and far
    pixel terrain, with the masks as exclusion mask none, and in-range terrain is kept."""
    import json
    import shutil

    from ai4mars_perception.tools.cli import main

    frame = navcam_frames[0]
    (tmp_path / "mxy").mkdir()
    (tmp_path / "rng-30m").mkdir()
    shutil.copy(frame, tmp_path / frame.name)
    for folder, tag in (("mxy", "MXY"), ("rng-30m", "RNG")):
        name = frame.stem.replace("EDR", tag) + ".png"
        shutil.copy(frame.parent / folder / name, tmp_path / folder / name)
    out = tmp_path / "bench.json"
    assert main(["bench-validity", str(tmp_path / frame.name), "--model", str(tiny_model), "--json", str(out)]) == 0
    m = json.loads(out.read_text())["mean"]
    assert m["rover_share"] > 0.05 and m["far_share"] > 0.05
    assert m["plain_rover_as_terrain"] == 1.0 and m["plain_far_as_terrain"] == 1.0
    assert m["masks_rover_as_terrain"] == 0.0 and m["masks_far_as_terrain"] == 0.0
    assert m["masks_in_range_terrain_kept"] == 1.0
    assert main(["bench-validity", str(tmp_path / "mxy"), "--model", str(tiny_model)]) == 2  # masks, no frames


def test_side_inputs_are_matched_by_stamp_late_or_missing():
    """A side input that comes after its frame but within the timeout is matched; one that never comes is missing
    after the timeout; only the newest few are kept; unusable ones are reported, not used."""
    import threading

    from sensor_msgs.msg import Image

    from ai4mars_perception.ros.messages import image_msg
    from ai4mars_perception.ros.side_inputs import StampMatcher, side_inputs

    def mask(sec: int) -> Image:
        m = image_msg(np.ones((4, 6), np.uint8), "mono8")
        m.header.stamp.sec = sec
        return m

    matcher = StampMatcher(keep=3)
    late = threading.Timer(0.2, matcher.put, [mask(7)])
    late.start()
    assert matcher.take(7 * 10**9, timeout=5.0) is not None  # late, within the wait
    assert matcher.take(8 * 10**9, timeout=0.1) is None  # never came
    for sec in range(10, 15):
        matcher.put(mask(sec))
    assert matcher.take(10 * 10**9, timeout=0.0) is None and matcher.take(14 * 10**9, timeout=0.0) is not None
    depth = image_msg(np.zeros((4, 6), np.uint8), "mono8")  # a depth image must be 32FC1 or 16UC1
    side, problems = side_inputs((4, 6), mask(1), depth)
    assert side.exclusion is not None and side.exclusion.all() and side.depth is None
    assert problems == ["depth ignored: depth must be 32FC1 (m) or 16UC1 (mm), got mono8"]
    wrong = side_inputs((5, 6), mask(1), None)
    assert wrong[0].exclusion is None and "exclusion mask is 6x4, the frame 6x5" in wrong[1][0]
