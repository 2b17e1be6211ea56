"""The node in its own process (console script), a publisher/subscriber here, real Fast DDS on loopback."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from ros_harness import Harness, NodeProcess, Topics, mask_array, qos
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from tiny_model import brightness_model, expected_class

from ai4mars_perception.core.image_codec import read_image_file
from ai4mars_perception.core.model.parity import compare_logits, top2_margin
from ai4mars_perception.core.pipeline import Pipeline, PipelineConfig
from ai4mars_perception.core.segmenter import Segmenter
from ai4mars_perception.core.traversability import TABLE_FIELDS
from ai4mars_perception.ros.environment import child_env
from ai4mars_perception.ros.messages import image_msg as array_to_image
from ai4mars_perception.ros.messages import table_from_msg as table_to_array
from ai4mars_perception.tools.processes import node_command

NODE = "terrain_segmentation"
NS = f"/{NODE}"
MAX_PIXELS = 1100 * 1100
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw_node(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("raw_node")
    p = NodeProcess(tmp, {"model_path": tiny_model, "max_pixels": MAX_PIXELS, "device": "cpu"}, {"image": "/cam/image"})
    yield p
    code = p.stop()
    assert code == 0, p.output()


@pytest.fixture(scope="module")
def topics(harness, raw_node):
    t = Topics(harness, "/cam/image")
    t.wait_connected()
    return t


def test_real_navcam_frame_answered_with_same_size_and_header(topics, navcam_frames, tiny_model):
    frame = read_image_file(navcam_frames[0])
    assert frame.shape == (1024, 1024)
    topics.send(array_to_image(frame, "mono8"), 1001)
    mask = topics.answer_for(1001)
    assert mask is not None, "no mask for a 1024x1024 Navcam frame"
    assert (mask.width, mask.height, mask.encoding) == (1024, 1024, "mono8")
    assert mask.header.frame_id == "navcam_left"
    values = mask_array(mask)
    assert set(np.unique(values)) <= {0, 1, 2, 3, 255}
    assert np.array_equal(values, Segmenter(tiny_model, "cpu").segment(frame))
    # the traversability table carries the same header and valid fractions
    assert topics.h.spin_until(lambda: any(s.header.stamp.sec == 1001 for s in topics.summaries), 5)
    table = table_to_array(next(s for s in topics.summaries if s.header.stamp.sec == 1001))
    assert len(table) == 4 and table.dtype.names == TABLE_FIELDS
    fractions = sum(table[0][n] for n in ("soil", "bedrock", "sand", "big_rock", "unknown"))
    assert fractions == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("encoding", ["mono16", "rgb8", "bgr8", "rgba8", "bgra8"])
def test_every_encoding_with_padding(topics, encoding):
    gray = np.zeros((64, 80), np.uint8)
    gray[:, 40:] = 224  # left soil, right big rock in the brightness model
    if encoding == "mono16":
        arr = (gray.astype(">u2") * 257).view(np.uint8).reshape(64, 160)
    else:
        ch = 4 if encoding.endswith("a8") else 3
        arr = np.repeat(gray[..., None], ch, axis=2).reshape(64, -1)
    padded = np.concatenate([arr, np.full((64, 6), 77, np.uint8)], axis=1)
    msg = Image(height=64, width=80, encoding=encoding, step=padded.shape[1], is_bigendian=int(encoding == "mono16"))
    msg.data = padded.tobytes()
    stamp = 2000 + ["mono16", "rgb8", "bgr8", "rgba8", "bgra8"].index(encoding)
    topics.send(msg, stamp)
    mask = topics.answer_for(stamp)
    assert mask is not None and (mask.width, mask.height) == (80, 64)
    values = mask_array(mask)
    assert (values[:, :36] == 0).all() and (values[:, 44:] == 3).all()


def _bad(**kw) -> Image:
    msg = Image(height=32, width=32, encoding="mono8", step=32)
    msg.data = bytes(32 * 32)
    for k, v in kw.items():
        setattr(msg, k, v)
    return msg


BAD_FRAMES = {
    "unknown encoding": lambda: _bad(encoding="yuv422"),
    "short data": lambda: _bad(data=bytes(100)),
    "step too small": lambda: _bad(step=16),
    "zero size": lambda: _bad(height=0, width=0, step=0, data=b""),
    "over-sized": lambda: _bad(height=1200, width=1200, step=1200, data=bytes(1200 * 1200)),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_bad_frame_is_counted_and_next_good_frame_answered(topics, case):
    before = int(topics.diag_values()["errors"])
    stamp = 3000 + list(BAD_FRAMES).index(case)
    topics.send(BAD_FRAMES[case](), stamp)
    time.sleep(0.5)
    topics.send(array_to_image(np.full((48, 48), 96, np.uint8), "mono8"), stamp + 100)
    good = topics.answer_for(stamp + 100)
    assert good is not None, f"good frame after '{case}' not answered"
    assert (mask_array(good) == 1).all()
    assert topics.answer_for(stamp, timeout=0.1) is None
    values = topics.diag_values()
    assert int(values["errors"]) == before + 1
    assert values["last_error"].startswith("bad frame")


def test_overlay_only_while_subscribed(topics, harness):
    frame = array_to_image(np.full((40, 40), 160, np.uint8), "mono8")
    topics.send(frame, 4000)
    assert topics.answer_for(4000) is not None
    before = int(topics.diag_values()["overlays_published"])
    topics.send(frame, 4001)
    assert topics.answer_for(4001) is not None
    assert int(topics.diag_values()["overlays_published"]) == before  # nobody listens: none made
    overlays = harness.collect(Image, f"{NS}/overlay")
    assert topics.send_until(frame, 4002, lambda: any(o.header.stamp.sec == 4002 for o in overlays))
    o = next(o for o in overlays if o.header.stamp.sec == 4002)
    assert (o.encoding, o.width, o.height) == ("rgb8", 40, 40)
    rgb = np.frombuffer(bytes(o.data), np.uint8).reshape(40, 40, 3)
    assert (rgb[0, 0] != 160).any()  # coloured, not the bare frame
    harness.node.destroy_subscription(overlays.subscription)


def test_diagnostics_content(topics):
    values = topics.diag_values()
    status = topics.diags[-1].status[0]
    assert status.name.startswith("terrain_segmentation")
    for key in ("input_rate_hz", "processed_rate_hz", "frames_dropped", "inference_ms", "latency_ms", "errors"):
        assert key in values
    assert int(values["frames_processed"]) >= 1 and values["provider"] == "CPUExecutionProvider"


def _set_param(h: Harness, name: str, value: float) -> bool:
    client = h.node.create_client(SetParameters, f"{NS}/set_parameters")
    assert client.wait_for_service(timeout_sec=10)
    req = SetParameters.Request(
        parameters=[
            ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))
        ]
    )
    future = client.call_async(req)
    assert h.spin_until(future.done, 10)
    h.node.destroy_client(client)
    return future.result().results[0].successful


def test_dynamic_parameters_validated(topics, harness):
    assert not _set_param(harness, "go_min_traversable", 1.7)
    assert not _set_param(harness, "stop_below_traversable", 0.95)  # above go_min_traversable (0.8)
    assert not _set_param(harness, "overlay_alpha", -0.1)
    assert _set_param(harness, "stop_above_big_rock", 0.99)
    frame = np.zeros((60, 60), np.uint8)
    frame[:, :] = 32
    frame[30:, 40:] = 224  # big rock fills the near-right sector (bottom 30 rows, right 20 columns)
    topics.send(array_to_image(frame, "mono8"), 5000)
    assert topics.answer_for(5000) is not None
    assert topics.h.spin_until(lambda: any(s.header.stamp.sec == 5000 for s in topics.summaries), 5)
    table = table_to_array(next(s for s in topics.summaries if s.header.stamp.sec == 5000))
    assert table["verdict"][3] == 2  # right sector: traversable 0 -> stop
    assert table["verdict"][1] == 0  # left sector: all soil -> go
    assert _set_param(harness, "stop_above_big_rock", 0.1)


@pytest.mark.parametrize("reliable", [False, True], ids=["best_effort", "reliable"])
def test_full_resolution_from_both_publisher_qos(harness, raw_node, navcam_frames, reliable):
    t = Topics(harness, "/cam/image", reliable=reliable)
    t.wait_connected()
    frame = read_image_file(navcam_frames[1])
    for i in range(3):
        t.send(array_to_image(frame, "mono8"), 6000 + 10 * reliable + i)
        assert t.answer_for(6000 + 10 * reliable + i) is not None, f"1 MiB frame {i} lost"
    harness.node.destroy_publisher(t.pub)


def test_latest_frame_only(tmp_path, harness):
    slow = brightness_model(tmp_path / "slow.onnx", size=256, slow_layers=8, slow_channels=48)
    seg = Segmenter(slow, "cpu")
    x = seg.preprocess(np.zeros((256, 256), np.uint8))
    seg.logits(x)
    t0 = time.perf_counter()
    seg.logits(x)
    forward = time.perf_counter() - t0
    del seg
    remaps = {"image": "/slow/image", "__node": "slow_seg"}
    node = NodeProcess(tmp_path, {"model_path": slow, "device": "cpu"}, remaps, "slow")
    try:
        t = Topics(harness, "/slow/image", node="slow_seg")
        t.wait_connected()
        frame = array_to_image(np.full((256, 256), 96, np.uint8), "mono8")
        t.send(frame, 7000)
        assert t.answer_for(7000, 30) is not None
        for i in range(1, 31):  # a burst far faster than the model runs (10 frames per forward pass)
            t.send(frame, 7000 + i)
            time.sleep(forward / 10)
        assert t.answer_for(7030, 30) is not None, "the newest frame was not processed"
        time.sleep(1.0)
        answered = {m.header.stamp.sec for m in t.masks if 7001 <= m.header.stamp.sec <= 7030}
        # latest-only: frames that arrive while the model runs replace each other instead of queueing (how many
        # get through depends on the machine's load, so no count is asserted beyond "not all")
        assert len(answered) < 30, "every frame of the burst was processed: a queue built up"
        values = t.diag_values()  # every frame that reached the node was processed, failed or replaced
        took = int(values["frames_processed"]) + int(values["errors"]) + int(values["frames_dropped"])
        assert took == int(values["frames_received"]) and int(values["frames_dropped"]) >= 1
    finally:
        assert node.stop() == 0, node.output()


def test_compressed_transport_and_corrupt_data(tmp_path, harness, tiny_model, navcam_frames):
    node = NodeProcess(
        tmp_path,
        {"model_path": tiny_model, "transport": "compressed"},
        {"image/compressed": "/cc/image/compressed", "__node": "cc_seg"},
    )
    try:
        t = Topics(harness, "/cc/image/compressed", CompressedImage, node="cc_seg")
        t.wait_connected()
        jpeg = navcam_frames[2].read_bytes()
        t.send(CompressedImage(format="jpeg", data=jpeg), 8000)
        mask = t.answer_for(8000, 30)
        assert mask is not None and (mask.width, mask.height) == (1024, 1024)
        t.send(CompressedImage(format="jpeg", data=jpeg[:5000] + b"\x00" * 10), 8001)
        t.send(CompressedImage(format="png", data=b"\x89PNG not really"), 8002)
        time.sleep(0.5)
        ok, png = cv2.imencode(".png", np.full((30, 30), 224, np.uint8))
        t.send(CompressedImage(format="png", data=png.tobytes()), 8003)
        good = t.answer_for(8003)
        assert good is not None and (mask_array(good) == 3).all()
        values = t.diag_values()
        assert int(values["errors"]) >= 1 and "bad frame" in values["last_error"]
    finally:
        assert node.stop() == 0, node.output()


def test_missing_or_invalid_model_exits_nonzero(tmp_path):
    for model in (tmp_path / "nope.onnx", tmp_path / "junk.onnx"):
        if model.name == "junk.onnx":
            model.write_bytes(b"junk")
        r = subprocess.run(
            [*node_command(), "--ros-args", "-p", f"model_path:={model}"],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2
        assert "cannot start" in r.stderr and str(model) in r.stderr


def test_module_entry_point_null_class_rover_mask_and_stale_warning(tmp_path, harness, null_model):
    """``python -m ai4mars_perception.node`` works too; the model's null class and the rover mask come out
    as 255; before any input, diagnostics warn that the input is stale."""
    import sys

    from ai4mars_perception.tools import processes

    rover = np.zeros((8, 8), np.uint8)
    rover[:, 6:] = 1  # right quarter of the frame is rover body
    cv2.imwrite(str(tmp_path / "rover.png"), rover)
    env = child_env()
    log = open(tmp_path / "m.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai4mars_perception.node", "--ros-args", "-p", f"model_path:={null_model}",
         "-p", f"rover_mask_path:={tmp_path / 'rover.png'}", "-p", "stale_timeout:=0.5", "-p", "use_geometry:=false",
         "-r", "image:=/nm/image", "-r", "__node:=nm_seg"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        t = Topics(harness, "/nm/image", node="nm_seg")
        t.wait_connected()
        assert t.h.spin_until(lambda: len(t.diags) > 0, 5)
        status = t.diags[-1].status[0]
        assert status.level == DiagnosticStatus.WARN, status
        assert "stale" in status.message
        frame = np.full((32, 32), 250, np.uint8)
        frame[:16] = 32
        t.send(array_to_image(frame, "mono8"), 9000)
        m = t.answer_for(9000)
        assert m is not None
        values = mask_array(m)
        want = expected_class(frame, True)
        want[:, 24:] = 255
        assert np.array_equal(values, want)
    finally:
        assert processes.stop(proc) == 0


SHIPPED = Path(__file__).resolve().parents[1] / "models" / "ai4mars_unet_r18.onnx"


@pytest.mark.skipif(not SHIPPED.is_file(), reason="no trained model shipped yet (models/ai4mars_unet_r18.onnx)")
def test_shipped_model_answers_navcam_frame(tmp_path, harness, navcam_frames):
    node = NodeProcess(tmp_path, {}, {"image": "/shipped/image", "__node": "shipped_seg"}, "shipped")  # default model
    try:
        t = Topics(harness, "/shipped/image", node="shipped_seg")
        t.wait_connected()
        t.send(array_to_image(read_image_file(navcam_frames[0]), "mono8"), 9500)
        m = t.answer_for(9500, 60)
        assert m is not None and (m.width, m.height) == (1024, 1024)
        assert set(np.unique(mask_array(m))) <= {0, 1, 2, 3, 255}
    finally:
        assert node.stop() == 0, node.output()
    if SHIPPED.with_name("ai4mars_unet_r18_int8.onnx").is_file():  # on the CPU the node takes the int8 model
        assert "models/ai4mars_unet_r18_int8.onnx (version" in node.output(), node.output()


def test_costmap_and_confidence_follow_camera_info(tmp_path, harness, tiny_model, navcam_frames):
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import CameraInfo

    from ai4mars_perception.ros.messages import camera_info_msg

    name = "cm_seg"
    node = NodeProcess(tmp_path, {"model_path": tiny_model, "camera_pitch": 30.0},
                       {"image": "/cm/left/image_raw", "__node": name}, name)  # fmt: skip
    try:
        t = Topics(harness, "/cm/left/image_raw", node=name)
        grids = harness.collect(OccupancyGrid, f"/{name}/costmap")
        confidence = harness.collect(Image, f"/{name}/confidence")
        info_pub = harness.node.create_publisher(CameraInfo, "/cm/left/camera_info", qos(True, 1))
        t.wait_connected()
        frame = array_to_image(read_image_file(navcam_frames[0]), "mono8")

        def grid_for(stamp: int) -> OccupancyGrid:
            assert t.send_until(frame, stamp, lambda: any(g.header.stamp.sec == stamp for g in grids))
            return next(g for g in grids if g.header.stamp.sec == stamp)

        g = grid_for(11000)
        assert g.header.frame_id == "base_link" and g.info.resolution == pytest.approx(0.1)
        values = np.array(g.data, np.int16)
        assert len(values) == g.info.width * g.info.height and set(np.unique(values)) <= {-1, 10, 30, 70, 100}
        assert (values >= 0).mean() > 0.3
        assert t.send_until(frame, 11000, lambda: any(c.header.stamp.sec == 11000 for c in confidence))
        c = next(c for c in confidence if c.header.stamp.sec == 11000)
        assert (c.width, c.height, c.encoding) == (1024, 1024, "mono8")
        # a camera_info with a narrower field of view (longer focal length) shrinks the footprint
        info = camera_info_msg(frame.header, 1024, 1024, 20.0)
        for _ in range(5):
            info_pub.publish(info)
            harness.spin_until(lambda: False, 0.1)
        narrow = grid_for(11001)
        assert narrow.info.height < g.info.height  # y extent (left-right) of the footprint
    finally:
        assert node.stop() == 0, node.output()


def test_node_with_the_pytorch_backend_answers_navcam_frames(tmp_path, harness, navcam_frames, tiny_model):
    pytest.importorskip("torch", reason="the PyTorch backend is optional (pip install .[torch])")
    from tiny_model import brightness_torchscript

    model = brightness_torchscript(tmp_path / "brightness.pt")
    name = "pt_seg"
    node = NodeProcess(tmp_path, {"model_path": model, "backend": "torch", "device": "cpu"},
                       {"image": "/pt/image", "__node": name}, name)  # fmt: skip
    try:
        t = Topics(harness, "/pt/image", node=name)
        t.wait_connected()
        frame = read_image_file(navcam_frames[2])
        # resent every 2 s until answered: a 1 MiB frame sent as discovery completes can be lost (seen in CI)
        assert t.send_until(array_to_image(frame, "mono8"), 12000,
                            lambda: any(m.header.stamp.sec == 12000 for m in t.masks), timeout=60)  # fmt: skip
        m = t.answer_for(12000, 1)
        assert m is not None and (m.width, m.height) == (1024, 1024)
        # the same mask as the ONNX Runtime backend on the same (closed-form) model
        assert (mask_array(m) == Segmenter(tiny_model, "cpu").segment(frame)).mean() >= 0.999
        assert t.diag_values()["provider"] == "torch-cpu"
    finally:
        assert node.stop() == 0, node.output()


def test_node_runs_the_shipped_model_on_the_pytorch_backend(tmp_path, harness, navcam_frames):
    """backend:=torch and no model_path: the node picks the shipped float model and converts it at load time (no
    TorchScript file ships). Its masks equal ONNX Runtime's wherever the class is clear (a top-2 margin above the
    logit tolerance; near-ties may flip with the CPU's rounding)."""
    pytest.importorskip("onnx2torch", reason="the PyTorch backend is optional (pip install .[torch])")
    name = "pt_shipped"
    params = {"backend": "torch", "device": "cpu", "use_geometry": True}  # the defaults: the top rows are beyond 30 m
    node = NodeProcess(tmp_path, params, {"image": "/pts/image", "__node": name}, name)
    try:
        t = Topics(harness, "/pts/image", node=name)
        t.wait_connected(timeout=180)  # importing torch and converting 31 M parameters, on a loaded machine too
        ort = Pipeline(PipelineConfig.from_values({"model_path": str(REPO / "models" / "ai4mars_unet_r18.onnx"),
                                                   "device": "cpu"}))  # fmt: skip
        for i, path in enumerate(navcam_frames[:2]):
            frame = read_image_file(path)
            stamp = 13000 + i
            answered = lambda s=stamp: any(m.header.stamp.sec == s for m in t.masks)  # noqa: E731
            assert t.send_until(array_to_image(frame, "mono8"), stamp, answered, timeout=90)
            got = mask_array(t.answer_for(stamp, 1))
            expected = ort.process(frame)
            want, logits = expected.mask, expected.logits
            clear = top2_margin(logits) > compare_logits(logits, logits)["tolerance"]
            clear = cv2.resize(clear.astype(np.uint8), frame.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
            assert got.shape == (1024, 1024) and (got[clear] == want[clear]).all(), path.name
        values = t.diag_values()
        assert values["provider"] == "torch-cpu" and values["model_version"] == ort.metadata.model_version
        assert (got[:8] == 255).all() and (got[-8:] != 255).all()  # beyond 30 m at the top, terrain at the bottom
        assert "ai4mars_unet_r18.onnx" in node.output()  # the float model, not the int8 one
    finally:
        assert node.stop() == 0, node.output()


def test_exclusion_masks_matched_by_stamp_over_dds(tmp_path, harness, tiny_model):
    """use_exclusion_mask: a mono8 mask published with a frame's stamp makes those pixels unknown (255) and the
    summary counts them as unknown; a frame whose mask never comes is processed after side_input_timeout (and
    diagnostics count it missing); a mask of the wrong size is reported and the frame processed without it."""
    name = "excl_seg"
    params = {"model_path": tiny_model, "use_exclusion_mask": True, "side_input_timeout": 1.0,
              "use_geometry": False}  # fmt: skip
    node = NodeProcess(tmp_path, params, {"image": "/ex/image", "exclusion_mask": "/ex/exclusion", "__node": name},
                       name)  # fmt: skip
    try:
        t = Topics(harness, "/ex/image", node=name)
        masks_pub = harness.node.create_publisher(Image, "/ex/exclusion", qos(True, 5))
        t.wait_connected()
        assert harness.spin_until(lambda: masks_pub.get_subscription_count() > 0, 20)
        frame = np.full((80, 100), 96, np.uint8)  # bedrock for the brightness model
        rover = np.zeros_like(frame)
        rover[50:, 30:70] = 1

        def send_mask(array, sec):
            m = array_to_image(array, "mono8")
            m.header.stamp.sec, m.header.frame_id = sec, "navcam_left"
            masks_pub.publish(m)

        mask = None
        for sec in range(14000, 14005):  # a new stamp until the pair arrives (discovery may lose the first mask)
            send_mask(rover, sec)
            harness.spin_until(lambda: False, 0.2)
            t.send(array_to_image(frame, "mono8"), sec)
            got = t.answer_for(sec, 5)
            if got is not None and (mask := mask_array(got))[60, 50] == 255:
                break
        assert mask is not None
        assert (mask[rover > 0] == 255).all() and (mask[rover == 0] == 1).all()
        assert harness.spin_until(lambda: any(s.header.stamp.sec == sec for s in t.summaries), 10)
        table = table_to_array(next(s for s in t.summaries if s.header.stamp.sec == sec))
        assert table["unknown"][0] == pytest.approx((rover > 0).mean(), abs=1e-4)
        # no mask for this frame: processed after the timeout, nothing excluded, counted as missing
        t.send(array_to_image(frame, "mono8"), 14100)
        assert (lone := t.answer_for(14100, 10)) is not None and (mask_array(lone) == 1).all()
        # a mask of the wrong size: one clear error, the frame still answered
        send_mask(np.ones((10, 10), np.uint8), 14200)
        harness.spin_until(lambda: False, 0.2)
        t.send(array_to_image(frame, "mono8"), 14200)
        assert (bad := t.answer_for(14200, 10)) is not None and (mask_array(bad) == 1).all()
        values = t.diag_values()
        assert int(values["exclusion_mask_missing"]) >= 1 and int(values["exclusion_mask_unusable"]) == 1
        assert "exclusion mask ignored: exclusion mask is 10x10, the frame 100x80" in values["last_error"]
    finally:
        assert node.stop() == 0, node.output()


def test_depth_matched_by_stamp_over_dds(tmp_path, harness, tiny_model):
    """use_depth: a 32FC1 depth image with the frame's stamp; pixels without depth (NaN, inf, 0) or beyond
    max_range are unknown (255), the others keep their class; the cloud is NaN exactly there."""
    from ai4mars_perception.ros.messages import cloud_from_msg

    name = "depth_seg"
    params = {"model_path": tiny_model, "use_depth": True, "side_input_timeout": 1.0, "max_range": 20.0,
              "cloud_decimation": 1}  # fmt: skip
    node = NodeProcess(tmp_path, params, {"image": "/dp/image", "depth": "/dp/depth", "__node": name}, name)
    try:
        t = Topics(harness, "/dp/image", node=name)
        clouds = harness.collect(PointCloud2, f"/{name}/ground_cloud")
        depth_pub = harness.node.create_publisher(Image, "/dp/depth", qos(True, 5))
        t.wait_connected()
        assert harness.spin_until(lambda: depth_pub.get_subscription_count() > 0, 20)
        frame = np.full((40, 50), 96, np.uint8)
        depth = np.full((40, 50), 5.0, np.float32)
        depth[:5], depth[5:10, :10], depth[10:15, :10], depth[15:20, :10] = np.nan, np.inf, 0.0, 25.0
        unknown = ~np.isfinite(depth) | (depth <= 0) | (depth > 20.0)
        got = None
        for sec in range(15000, 15005):
            d = Image(height=40, width=50, encoding="32FC1", is_bigendian=0, step=200)
            d.data = depth.tobytes()
            d.header.stamp.sec, d.header.frame_id = sec, "navcam_left"
            depth_pub.publish(d)
            harness.spin_until(lambda: False, 0.2)
            t.send(array_to_image(frame, "mono8"), sec)
            m = t.answer_for(sec, 5)
            # a new stamp until depth, frame and the lazy cloud all made it (discovery may lose the first ones)
            cloud_came = harness.spin_until(lambda s=sec: any(c.header.stamp.sec == s for c in clouds), 3)
            if m is not None and (got := mask_array(m))[0, 0] == 255 and cloud_came:
                break
        assert got is not None and (got[unknown] == 255).all() and (got[~unknown] == 1).all()
        cloud = cloud_from_msg(next(c for c in clouds if c.header.stamp.sec == sec))
        assert cloud.shape == (40, 50, 3) and np.isnan(cloud[unknown]).all()
        assert np.allclose(cloud[~unknown][:, 2], 5.0)  # z along the optical axis is the depth
    finally:
        assert node.stop() == 0, node.output()
