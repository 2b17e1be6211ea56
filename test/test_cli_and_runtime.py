"""The ROS-free CLI, the node's import footprint, the shipped configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ai4mars_perception.core.params import PARAMETERS, defaults, load_params_file
from ai4mars_perception.tools.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_segment_files_and_folders(tmp_path, tiny_model, navcam_frames, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    code = main(
        ["segment", "--model", str(tiny_model), "--out", str(tmp_path / "out"), str(navcam_frames[0]), str(bad)]
    )
    assert code == 1
    assert "broken.jpg" in capsys.readouterr().err
    mask = cv2.imread(str(tmp_path / "out" / f"{navcam_frames[0].stem}_mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (1024, 1024) and set(np.unique(mask)) <= {0, 1, 2, 3, 255}
    overlay = cv2.imread(str(tmp_path / "out" / f"{navcam_frames[0].stem}_overlay.png"))
    assert overlay.shape == (1024, 1024, 3)
    assert (
        main(["segment", "--model", str(tiny_model), "--out", str(tmp_path / "o2"), str(navcam_frames[0].parent)]) == 0
    )
    assert len(list((tmp_path / "o2").glob("*_mask.png"))) == len(navcam_frames)


def test_segment_with_missing_model_is_one_sentence(tmp_path, capsys):
    assert main(["segment", "--model", str(tmp_path / "none.onnx"), "--out", str(tmp_path), "x.jpg"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"ai4mars-perception: model file not found: {tmp_path / 'none.onnx'}"


def test_node_runtime_needs_no_torch():
    code = (
        "import sys; import ai4mars_perception.node, ai4mars_perception.tools.bag_process; "
        "import ai4mars_perception.tools.cli; from ai4mars_perception.core.pipeline import PipelineConfig; "
        "PipelineConfig().resolved_model_path(); "  # choosing the shipped model for device auto needs no torch
        "bad = [m for m in ('torch', 'fastai', 'torchvision') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_params_file_matches_declared_parameters():
    params = yaml.safe_load((REPO / "config" / "perception.yaml").read_text())["/**"]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    # the shipped file holds the defaults, read by the same loader the tools use
    assert load_params_file(REPO / "config" / "perception.yaml") == defaults()


def test_transport_profile_is_valid_xml_with_large_segment():
    import xml.etree.ElementTree as ET

    root = ET.parse(REPO / "config" / "fastdds_large_shm.xml").getroot()
    ns = {"d": "http://www.eprosima.com"}
    sizes = [int(e.text) for e in root.iterfind(".//d:segment_size", ns)]
    assert sizes and min(sizes) >= 4 * 1024 * 1024


def test_tools_work_without_ament_prefix_path():
    """A fresh shell: no AMENT_PREFIX_PATH, no Fast DDS profile set; the tools find their own files."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH", "FASTDDS_DEFAULT_PROFILES_FILE")}
    code = (
        "from ai4mars_perception.ros.environment import child_env; import os; e = child_env(); "
        "assert os.path.isfile(e['FASTDDS_DEFAULT_PROFILES_FILE']), e; print('ok')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_bench_command_runs_end_to_end(tmp_path, tiny_model):
    """Functional check of the benchmark code path (node process included); no timing is asserted.
    Run as a user would, from a shell without a Fast DDS profile, with full-size 1 MiB best-effort frames."""
    import json
    import os

    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "FASTDDS_DEFAULT_PROFILES_FILE"}
    cmd = [sys.executable, "-m", "ai4mars_perception.tools.cli", "bench", "--model", str(tiny_model), "--size", "1024",
           "--repeats", "2", "--json", str(out)]  # fmt: skip
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["forward"]["n"] == 2 and report["node_end_to_end"]["n"] == 2
    assert report["node_end_to_end"]["node_peak_rss_mb"] > 0
    assert set(report["stages"]) == {"preprocess_ms", "postprocess_ms", "traversability_summary_ms", "confidence_ms",
                                     "costmap_ms", "costmap_lookup_build_ms"}  # fmt: skip


def test_readme_documents_every_parameter():
    readme = (REPO / "README.md").read_text()
    missing = [name for name in PARAMETERS if f"`{name}`" not in readme]
    assert not missing, f"README parameter table lacks {missing}"


def test_demo_runs_as_make_demo_does(tmp_path, tiny_model):
    """``ai4mars-perception demo`` (what ``make demo`` runs): installed console script, bundled frames from the
    share folder, node over DDS, every frame answered, the contact sheet and the recorded outputs written."""
    import json

    exe = Path(sys.executable).parent / "ai4mars-perception"
    r = subprocess.run([str(exe), "demo", "--model", str(tiny_model), "--out", str(tmp_path / "demo"), "--rate", "2"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    report = json.loads((tmp_path / "demo" / "latency.json").read_text())
    assert report["frames_answered"] == report["frames_published"] == 8
    sheet = cv2.imread(str(tmp_path / "demo" / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 8 * 320
    rows = (tmp_path / "demo" / "traversability.csv").read_text().splitlines()
    assert len(rows) == 1 + 8 * 4  # header + frame and 3 sectors per frame
    # the bag carries the frames' AI4Mars rover and range masks, and the node reported those pixels unknown
    from rosbags.rosbag2 import Reader

    with Reader(tmp_path / "demo" / "navcam_input") as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts["/navcam/left/exclusion_mask"] == 8
    unknown = [float(r.split(",")[10]) for r in rows[1:] if ",frame," in r]
    assert len(unknown) == 8 and min(unknown) > 0.1  # rover body and beyond 30 m: 13-52 % of each frame


def test_bench_gpu_plumbing_on_the_cpu(tmp_path):
    """``bench-gpu`` is for a lent GPU; on the CPU its fp32 row checks the device-side path end to end."""
    pytest.importorskip("torch")
    import json

    from tiny_model import brightness_torchscript

    model = brightness_torchscript(tmp_path / "b.pt")
    out = tmp_path / "gpu.json"
    assert main(["bench-gpu", str(model), "--repeats", "5", "--device", "cpu", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["variant"] == "fp32" and row["mask_shape"] == [1024, 1024] and row["frames_per_s"] > 0


def test_bench_compares_with_the_notebook_learner_predict(tmp_path, tiny_model, navcam_frames):
    pytest.importorskip("fastai", reason="the notebook's learner.predict needs fastai (make install-train)")
    import json

    out = tmp_path / "bench.json"
    args = ["bench", "--model", str(tiny_model), "--image", str(navcam_frames[0]), "--repeats", "4",
            "--compare-notebook", "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    report = json.loads(out.read_text())
    notebook = report["notebook_learner_predict"]
    assert notebook["median_ms"] > 0 and notebook["mask_shape"] == [64, 64]  # its mask is at the model's size
    assert report["notebook_over_node"] > 0
    assert report["cpu_limits"]["fp32_gflops"] > 0 and report["cpu_limits"]["int8_gops"] > 0
    assert main(["bench", "--model", str(tiny_model), "--compare-notebook", "--no-node"]) == 2  # needs --image


SHIPPED_DIR = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.skipif(not (SHIPPED_DIR / "ai4mars_unet_r18_int8.onnx").is_file(), reason="no int8 model shipped")
def test_shipped_int8_is_the_cpu_default_and_agrees_with_the_float_model(navcam_frames):
    from ai4mars_perception.core.image_codec import read_image_file
    from ai4mars_perception.core.model.backends import wants_float_model
    from ai4mars_perception.core.pipeline import Pipeline, PipelineConfig

    assert not wants_float_model("cpu", "auto") and not wants_float_model("auto", "onnxruntime")  # no GPU here
    assert wants_float_model("cuda", "auto") and wants_float_model("auto", "torch")
    assert PipelineConfig(device="cuda").resolved_model_path().endswith("models/ai4mars_unet_r18.onnx")
    int8 = Pipeline(PipelineConfig(device="cpu"))
    assert int8.segmenter.path.name == "ai4mars_unet_r18_int8.onnx"
    assert int8.metadata.training["quantization"]["calibration"].startswith("training split")
    flt = Pipeline(PipelineConfig(model_path=str(SHIPPED_DIR / "ai4mars_unet_r18.onnx"), device="cpu"))
    agree = [np.mean(int8.process(g).mask == flt.process(g).mask) for g in map(read_image_file, navcam_frames)]
    assert min(agree) > 0.9 and np.mean(agree) > 0.95, agree


def test_bench_profile_breaks_the_forward_down_by_operator(tmp_path, tiny_model, capsys):
    import json

    out = tmp_path / "profile.json"
    assert main(["bench", "--model", str(tiny_model), "--size", "256", "--profile", "--repeats", "4", "--json",
                 str(out)]) == 0  # fmt: skip
    profile = json.loads(out.read_text())
    assert profile["runs"] == 3 and profile["total_ms"] >= 0
    assert abs(sum(r["share"] for r in profile["op_types"]) - 1) < 0.01
    assert profile["slowest_nodes"] and "ONNX Runtime kernel time" in capsys.readouterr().out
