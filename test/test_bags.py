"""Bag tools: make → read back (rosbags and mcap), make → process, make → play → node over DDS, bad bags."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ros_harness import Harness, NodeProcess
from rosbags.rosbag2 import Reader, Writer
from sensor_msgs.msg import Image

from ai4mars_perception.core.image_codec import read_image_file
from ai4mars_perception.core.pipeline import Pipeline, PipelineConfig
from ai4mars_perception.ros.environment import child_env
from ai4mars_perception.tools.bag_io import typestore
from ai4mars_perception.tools.bag_make import make_bag
from ai4mars_perception.tools.bag_process import process_bag
from ai4mars_perception.tools.cli import main

START = 1_000_000.0  # seconds: bag time far from wall time, to prove use_sim_time


def _messages(bag: Path) -> dict[str, list]:
    ts = typestore()
    out: dict[str, list] = {}
    with Reader(bag) as r:
        for c, stamp, data in r.messages():
            out.setdefault(c.topic, []).append((stamp, ts.deserialize_cdr(data, c.msgtype)))
    return out


def _mcap_summary(bag: Path) -> dict[str, tuple[str, int]]:
    from mcap.reader import make_reader

    (file,) = bag.glob("*.mcap")
    with file.open("rb") as f:
        s = make_reader(f).get_summary()
    counts = s.statistics.channel_message_counts
    return {c.topic: (s.schemas[c.schema_id].name, counts.get(c.id, 0)) for c in s.channels.values()}


@pytest.fixture(scope="module")
def raw_bag(tmp_path_factory, navcam_frames) -> Path:
    bag = tmp_path_factory.mktemp("bags") / "navcam"
    assert make_bag([str(p) for p in navcam_frames[:4]], bag, rate=2.0, start=START, camera_info=True) == 4
    return bag


def test_make_raw_reads_back_in_rosbags_and_mcap(raw_bag, navcam_frames):
    msgs = _messages(raw_bag)
    images = msgs["/navcam/left/image_raw"]
    assert [s for s, _ in images] == [int(START * 1e9) + i * 500_000_000 for i in range(4)]
    first = images[0][1]
    assert (first.width, first.height, first.encoding, first.header.frame_id) == (1024, 1024, "mono8", "navcam_left")
    assert np.array_equal(first.data.reshape(1024, 1024), read_image_file(navcam_frames[0]))
    info = msgs["/navcam/left/camera_info"][0][1]
    assert info.width == 1024 and info.k[0] == pytest.approx(512 / np.tan(np.radians(22.5)))
    assert _mcap_summary(raw_bag) == {
        "/navcam/left/image_raw": ("sensor_msgs/msg/Image", 4),
        "/navcam/left/camera_info": ("sensor_msgs/msg/CameraInfo", 4),
    }
    assert not list(raw_bag.parent.glob(".*partial*"))


def test_make_compressed_sqlite3(tmp_path, navcam_frames):
    bag = tmp_path / "c"
    assert main(["bag", "make", str(navcam_frames[0]), str(navcam_frames[1]), "-o", str(bag), "--compressed",
                 "--storage", "sqlite3", "--topic", "/cam/image", "--frame-id", "cam"]) == 0  # fmt: skip
    assert list(bag.glob("*.db3"))
    msgs = _messages(bag)["/cam/image/compressed"]
    assert msgs[0][1].format == "jpeg" and msgs[0][1].data.tobytes() == navcam_frames[0].read_bytes()
    assert msgs[1][1].header.frame_id == "cam"


def test_make_errors(tmp_path, raw_bag, capsys):
    assert main(["bag", "make", str(tmp_path / "empty_dir_missing"), "-o", str(tmp_path / "x")]) == 2
    assert main(["bag", "make", str(raw_bag.parent), "-o", str(raw_bag)]) == 2
    assert main(["bag", "make", str(raw_bag.parent), "-o", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "already exists" in err and "no image files" in err


def test_process_writes_inputs_and_node_outputs(tmp_path, raw_bag, tiny_model):
    out = tmp_path / "processed"
    pipeline = Pipeline(PipelineConfig(model_path=str(tiny_model), device="cpu"))
    r = process_bag(raw_bag, out, pipeline, csv_path=tmp_path / "s.csv", png_dir=tmp_path / "png")
    assert (r.frames, r.processed, r.failed) == (4, 4, 0)
    summary = _mcap_summary(out)
    assert summary["/terrain_segmentation/mask"] == ("sensor_msgs/msg/Image", 4)
    assert summary["/terrain_segmentation/overlay"] == ("sensor_msgs/msg/Image", 4)
    assert summary["/terrain_segmentation/traversability"] == ("sensor_msgs/msg/PointCloud2", 4)
    assert summary["/navcam/left/image_raw"] == ("sensor_msgs/msg/Image", 4)
    msgs = _messages(out)
    inputs, masks = msgs["/navcam/left/image_raw"], msgs["/terrain_segmentation/mask"]
    for (s_in, m_in), (s_out, m_out) in zip(inputs, masks):
        assert s_in == s_out and m_in.header.stamp == m_out.header.stamp and m_out.header.frame_id == "navcam_left"
        frame = m_in.data.reshape(1024, 1024)
        assert np.array_equal(m_out.data.reshape(1024, 1024), pipeline.process(frame).mask)
    table = msgs["/terrain_segmentation/traversability"][0][1]
    assert [f.name for f in table.fields][:3] == ["region", "verdict", "soil"] and table.width == 4
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert len(list((tmp_path / "png").glob("*_mask.png"))) == 4


def _bag_with(path: Path, frames: list[tuple[str, object]]) -> Path:
    """A bag with hand-made messages (topic, message) on sensor_msgs types."""
    ts = typestore()
    with Writer(path, version=9) as w:
        conns = {}
        for i, (topic, msg) in enumerate(frames):
            t = type(msg).__msgtype__
            if topic not in conns:
                conns[topic] = w.add_connection(topic, t, typestore=ts)
            w.write(conns[topic], i * 100_000_000, ts.serialize_cdr(msg, t))
    return path


def _rosbags_image(stamp_s: int, value: int = 96, size: int = 32):
    """A sensor_msgs/Image built with rosbags' own types (independent of the package's message code)."""
    ts = typestore()
    T = ts.types
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp_s, nanosec=0), frame_id="cam")
    data = np.full(size * size, value, np.uint8)
    return T["sensor_msgs/msg/Image"](header=header, height=size, width=size, encoding="mono8", is_bigendian=0,
                                      step=size, data=data)  # fmt: skip


def test_process_counts_bad_frames_and_goes_on(tmp_path, tiny_model):
    good, bad = _rosbags_image(1), _rosbags_image(2)
    bad.encoding = "yuv422"
    bag = _bag_with(tmp_path / "in", [("/img", good), ("/img", bad), ("/img", good)])
    out = tmp_path / "out"
    assert (
        main(["bag", "process", str(bag), "-o", str(out), "--model", str(tiny_model), "--csv", str(tmp_path / "s.csv")])
        == 1
    )
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [r["status"] for r in rows] == ["ok", "error", "ok"] and "unsupported encoding" in rows[1]["error"]
    assert _mcap_summary(out)["/terrain_segmentation/mask"][1] == 2


def test_bad_bags_give_clear_errors(tmp_path, raw_bag, tiny_model, capsys):
    # truncated
    trunc = tmp_path / "trunc"
    trunc.mkdir()
    for f in raw_bag.iterdir():
        data = f.read_bytes()
        (trunc / f.name).write_bytes(data[: len(data) // 3] if f.suffix == ".mcap" else data)
    # corrupt
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "metadata.yaml").write_text("rosbag2_bagfile_information: [not, valid")
    # empty: a topic, no messages
    empty = tmp_path / "empty"
    with Writer(empty, version=9) as w:
        w.add_connection("/navcam/left/image_raw", "sensor_msgs/msg/Image", typestore=typestore())
    cases = {
        "trunc": ([str(trunc)], "corrupt or truncated|not a readable"),
        "corrupt": ([str(corrupt)], "not a readable rosbag2 bag"),
        "empty": ([str(empty)], "has no image messages"),
        "missing": ([str(tmp_path / "nope")], "does not exist"),
        "wrong type": ([str(raw_bag), "--topics", "/navcam/left/camera_info"], "not sensor_msgs Image"),
        "unknown topic": ([str(raw_bag), "--topics", "/nope"], "not in the bag"),
    }
    for name, (args, pattern) in cases.items():
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        code = main(["bag", "process", *args, "-o", str(out), "--model", str(tiny_model)])
        err = capsys.readouterr().err
        assert code == 2, name
        assert err.startswith("ai4mars-perception: ") and "Traceback" not in err, name
        import re

        assert re.search(pattern, err), (name, err)
        assert not out.exists()


def test_play_into_node_with_sim_time(tmp_path, raw_bag, tiny_model):
    env = child_env()
    remaps = {"image": "/navcam/left/image_raw", "__node": "play_seg"}
    node = NodeProcess(tmp_path, {"model_path": tiny_model, "use_sim_time": True}, remaps)
    h = Harness("bag_play_recorder")
    masks = h.collect(Image, "/play_seg/mask")
    from diagnostic_msgs.msg import DiagnosticArray

    diags = h.collect(DiagnosticArray, "/diagnostics")
    try:
        assert h.spin_until(lambda: h.node.count_publishers("/play_seg/mask") > 0, 30)
        cli = [
            sys.executable,
            "-m",
            "ai4mars_perception.tools.cli",
            "bag",
            "play",
            str(raw_bag),
            "--clock",
            "--rate",
            "2",
        ]
        player = subprocess.Popen(cli, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert h.spin_until(lambda: len(masks) >= 4 or player.poll() is not None and len(masks) >= 4, 60)
        assert player.wait(30) == 0
        h.spin_until(lambda: False, 1.0)
        stamps = sorted({(m.header.stamp.sec, m.header.stamp.nanosec) for m in masks})
        assert stamps == [(int(START) + i // 2, (i % 2) * 500_000_000) for i in range(4)]
        assert all((m.width, m.height) == (1024, 1024) for m in masks)
        # the node runs on the bag's clock: its diagnostics are stamped in bag time
        ours = lambda: [d for d in diags if d.status and d.status[0].name.startswith("play_seg:")]  # noqa: E731
        assert h.spin_until(lambda: any(abs(d.header.stamp.sec - START) < 30 for d in ours()), 10)
    finally:
        h.close()
        assert node.stop() == 0, node.output()
