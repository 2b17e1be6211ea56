"""Reliability: frames from real camera drivers (default Fast DDS transports, reliable QoS), a camera that
restarts, decompression bombs, decoder noise, a broken model, and a bounded fuzz run. Node over real DDS."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from ros_harness import NodeProcess, Topics, mask_array
from sensor_msgs.msg import CompressedImage, Image
from tiny_model import nan_model

from ai4mars_perception.core.image_codec import ImageDecodeError, decode_compressed
from ai4mars_perception.ros.environment import child_env
from ai4mars_perception.ros.messages import image_msg
from ai4mars_perception.tools.processes import peak_rss_mb

# A camera driver in its own process, with Fast DDS's default transports (no profile of ours).
CAMERA = """
import sys, time, numpy as np, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
topic, reliability, n, first = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rclpy.init()
node = rclpy.create_node("fake_navcam_driver")
rel = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
pub = node.create_publisher(Image, topic, QoSProfile(depth=1, reliability=rel))
frame = np.full((1024, 1024), 224, np.uint8)
end = time.time() + 30
while pub.get_subscription_count() == 0 and time.time() < end:
    time.sleep(0.05)
time.sleep(1.0)
for i in range(n):
    msg = Image(height=1024, width=1024, encoding="mono8", step=1024)
    msg.header.stamp.sec, msg.header.frame_id = first + i, "navcam_left"
    msg.data = frame.tobytes()
    pub.publish(msg)
    time.sleep(0.25)
time.sleep(1.0)
"""


def _camera(topic: str, reliability: str, n: int, first: int, settle: float = 1.0) -> subprocess.Popen:
    """A camera driver process; it publishes ``settle`` seconds after its first subscriber matched."""
    env = child_env(profile=False)
    code = CAMERA.replace("time.sleep(1.0)\nfor i", f"time.sleep({settle})\nfor i")
    return subprocess.Popen([sys.executable, "-c", code, topic, reliability, str(n), str(first)], env=env)


@pytest.fixture(scope="module")
def node(tmp_path_factory, tiny_model):
    """The node as users start it: default parameters (input_reliability auto), stale after 1 s."""
    tmp = tmp_path_factory.mktemp("faults")
    p = NodeProcess(tmp, {"model_path": tiny_model, "stale_timeout": 1.0}, {"image": "/drv/image", "__node": "drv_seg"})
    yield p
    assert p.stop() == 0, p.output()


@pytest.fixture(scope="module")
def drv(harness, node):
    t = Topics(harness, "/drv/image", node="drv_seg")
    t.wait_connected()
    return t


def _answered(t: Topics, stamps: range, timeout: float = 30.0) -> set[int]:
    t.h.spin_until(lambda: {m.header.stamp.sec for m in t.masks} >= set(stamps), timeout)
    return {m.header.stamp.sec for m in t.masks} & set(stamps)


def test_reliable_camera_driver_without_our_profile_gets_every_frame_answered(drv):
    cam = _camera("/drv/image", "reliable", 6, 100)
    try:
        assert _answered(drv, range(100, 106)) == set(range(100, 106))
        assert drv.diag_values()["input_reliability"] == "reliable"
    finally:
        cam.wait(60)


def test_a_frame_published_the_moment_the_node_matches_is_answered(tmp_path, harness, tiny_model):
    """A rover takes a few Navcam frames per stop, so the first one matters: a reliable 1 MiB frame published by a
    driver without our profile the moment its publisher matches the node is answered; three drivers in a row,
    each the only publisher of the topic (the node subscribes reliable from the start: no QoS switch can lose
    it; a node that started best effort lost it)."""
    name = "first_seg"
    node = NodeProcess(tmp_path, {"model_path": tiny_model}, {"image": "/first/image", "__node": name}, name)
    try:
        masks = harness.collect(Image, f"/{name}/mask")  # no publisher of ours on the image topic
        assert harness.spin_until(lambda: masks.subscription.get_publisher_count() > 0, 60), node.output()
        harness.spin_until(lambda: False, 1.0)  # the node's side of the mask match, too
        for k in range(3):
            cam = _camera("/first/image", "reliable", 1, 500 + k, settle=0.0)
            try:
                assert harness.spin_until(lambda k=k: any(m.header.stamp.sec == 500 + k for m in masks), 30), (
                    f"driver {k}: its first frame was lost\n{node.output()[-2000:]}"
                )
            finally:
                cam.wait(60)
    finally:
        assert node.stop() == 0, node.output()


def test_camera_restart_with_the_other_reliability_and_stale_diagnostics(drv):
    # the camera is gone: the input goes stale
    assert drv.h.spin_until(lambda: drv.diags and "stale" in drv.diags[-1].status[0].message, 10)
    assert int(drv.diag_values()["stale_episodes"]) >= 1
    # a best-effort camera (with our profile, which best effort needs for 1 MiB frames) starts on the same topic
    t = Topics(drv.h, "/drv/image", reliable=False, node="drv_seg")
    assert drv.h.spin_until(lambda: drv.diag_values()["input_reliability"] == "best_effort", 10)
    time.sleep(0.5)
    frame = image_msg(np.full((1024, 1024), 96, np.uint8), "mono8")
    for i in range(3):
        t.send(frame, 200 + i)
        assert t.answer_for(200 + i) is not None
    drv.diag_values()
    assert drv.diags[-1].status[0].message == "running"  # and back
    drv.h.node.destroy_publisher(t.pub)
    # and a reliable driver again, without the profile
    cam = _camera("/drv/image", "reliable", 4, 300)
    try:
        assert _answered(drv, range(300, 304)) == set(range(300, 304))
    finally:
        cam.wait(60)


def _png_bomb(width: int, height: int, channels: int) -> bytes:
    """A valid PNG of zeros: a few hundred KB that decode to width x height x channels bytes."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    comp, block = zlib.compressobj(9), bytes(1 + width * channels) * 100
    idat = b"".join(comp.compress(block) for _ in range(height // 100)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, {1: 0, 3: 2}[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bombs() -> list[bytes]:
    return [_png_bomb(20000, 20000, 1), _png_bomb(12000, 12000, 3)]


def test_bombs_are_refused_from_the_header(bombs):
    for data in bombs:
        t = time.perf_counter()
        with pytest.raises(ImageDecodeError, match="over the limit.*not decoded"):
            decode_compressed(data)
        assert time.perf_counter() - t < 0.1  # nothing was decoded


def test_compressed_bombs_and_corrupt_frames_in_the_node(tmp_path, harness, tiny_model, bombs, navcam_frames):
    node = NodeProcess(tmp_path, {"model_path": tiny_model, "transport": "compressed"},
                       {"image/compressed": "/bomb/image/compressed", "__node": "bomb_seg"}, "bomb")  # fmt: skip
    try:
        t = Topics(harness, "/bomb/image/compressed", CompressedImage, node="bomb_seg")
        t.wait_connected()
        jpeg = navcam_frames[0].read_bytes()
        t.send(CompressedImage(format="jpeg", data=jpeg), 1)
        assert t.answer_for(1) is not None
        before = peak_rss_mb(node.proc.pid)
        for i, data in enumerate(bombs * 2):
            t.send(CompressedImage(format="png", data=data), 10 + i)
            time.sleep(0.3)
        corrupt = [jpeg[:3000], jpeg[:2000] + bytes(1000) + jpeg[3000:], b"\x89PNG\r\n\x1a\n" + bytes(60)]
        for i in range(60):
            t.send(CompressedImage(format="jpeg", data=corrupt[i % 3]), 100 + i)
            time.sleep(0.01)
        t.send(CompressedImage(format="jpeg", data=jpeg), 500)
        assert t.answer_for(500) is not None
        assert peak_rss_mb(node.proc.pid) - before < 50
        values = t.diag_values()
        assert int(values["errors"]) >= 4
        log = node.output()
        assert "over the limit" in log
        for noise in ("libpng", "Corrupt JPEG", "libjpeg", "Premature end"):
            assert noise not in log, log[-3000:]
    finally:
        assert node.stop() == 0, node.output()


def test_a_model_that_outputs_nan_gives_errors_not_masks(tmp_path, harness):
    model = nan_model(tmp_path / "nan.onnx")
    node = NodeProcess(tmp_path, {"model_path": model}, {"image": "/nan/image", "__node": "nan_seg"}, "nan")
    try:
        t = Topics(harness, "/nan/image", node="nan_seg")
        t.wait_connected()
        for i, level in enumerate((10, 200)):  # NaN logits, then Inf logits
            t.send(image_msg(np.full((32, 32), level, np.uint8), "mono8"), i)
            time.sleep(0.5)
        assert t.answer_for(1, timeout=2.0) is None and not t.masks
        # diagnostics come once a second: wait for the report that counts both frames
        assert harness.spin_until(lambda: int(t.diag_values().get("errors", 0)) >= 2, 10)
        values = t.diag_values()
        assert int(values["errors"]) == 2 and "NaN or Inf" in values["last_error"]
    finally:
        assert node.stop() == 0, node.output()


def _fuzz_raw(rng: np.random.Generator) -> Image:
    encodings = ["mono8", "mono16", "rgb8", "bgr8", "rgba8", "bgra8", "yuv422", "", "32FC1", "bayer_rggb8"]
    h, w = (int(v) for v in rng.integers(0, 300, 2))
    msg = Image(height=h, width=w, encoding=str(rng.choice(encodings)), is_bigendian=int(rng.integers(0, 2)))
    msg.step = int(max(0, w * rng.integers(0, 5) + rng.integers(-3, 4)))
    msg.data = rng.integers(0, 256, int(rng.integers(0, max(1, msg.step * h + 10))), np.uint8).tobytes()
    return msg


def test_bounded_fuzz(tmp_path, harness, tiny_model, navcam_frames):
    """2000 malformed raw and 500 corrupt compressed frames in well under 30 s: alive, the next good frame is
    answered, and every frame the node took is accounted for (processed + errors + dropped = received)."""
    rng = np.random.default_rng(7)
    jpeg = navcam_frames[1].read_bytes()
    for transport, count in (("raw", 2000), ("compressed", 500)):
        name = f"fuzz_{transport}"
        params = {"model_path": tiny_model, "transport": transport, "input_depth": 100}
        topic = "/fuzz/image" + ("/compressed" if transport == "compressed" else "")
        node = NodeProcess(tmp_path, params, {topic.removeprefix("/fuzz/"): topic, "__node": name}, name)
        try:
            kind = CompressedImage if transport == "compressed" else Image
            t = Topics(harness, topic, kind, node=name)
            t.wait_connected()
            start = time.monotonic()
            for i in range(count):
                if transport == "raw":
                    msg = _fuzz_raw(rng)
                else:
                    cut = int(rng.integers(0, len(jpeg)))
                    data = bytearray(jpeg[:cut]) if i % 2 else bytearray(jpeg)
                    if i % 2 == 0:
                        pos = rng.integers(0, len(data), 50)
                        data[pos[0] : pos[0] + 1] = b""
                        for p in pos[1:]:
                            data[int(p) % len(data)] = int(rng.integers(0, 256))
                    msg = CompressedImage(format="jpeg", data=bytes(data))
                t.send(msg, 10_000 + i)
                if i % 20 == 0:
                    harness.spin_until(lambda: False, 0.001)
            assert time.monotonic() - start < 30
            good = CompressedImage(format="jpeg", data=jpeg) if transport == "compressed" else image_msg(
                np.full((64, 64), 160, np.uint8), "mono8")  # fmt: skip
            t.send(good, 99_999)
            answer = t.answer_for(99_999, 30)
            assert answer is not None and node.alive()
            if transport == "raw":
                assert (mask_array(answer) == 2).all()

            def settled(t=t):
                v = t.diag_values()
                took = int(v["frames_processed"]) + int(v["errors"]) + int(v["frames_dropped"])
                return took == int(v["frames_received"]) and int(v["errors"]) > 0

            assert harness.spin_until(settled, 10), t.diag_values()
        finally:
            assert node.stop() == 0, node.output()
