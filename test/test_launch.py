"""The launch file: the precedence rule (everywhere) and the whole launch under launch_testing (where ROS 2
launch is installed; it is not on PyPI). launch_testing's pytest plugin is disabled in setup.cfg, since it does
not load under pytest 9; its own runner (``launch_test``) runs test/launch/perception_launch_test.py instead."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from ai4mars_perception.core.params import ParamsError, launch_overrides
from ai4mars_perception.ros.environment import child_env

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "perception.launch.py"
LAUNCH_TEST = REPO / "test" / "launch" / "perception_launch_test.py"


def _launch_missing() -> str:
    """Why ROS 2 launch cannot run here ("" when it can)."""
    try:
        importlib.import_module("launch_ros.actions")
        importlib.import_module("launch_testing.launch_test")
    except ImportError as e:
        return f"ROS 2 launch is not installed (not on PyPI): {e}"
    return ""


def test_a_launch_argument_overrides_only_when_given():
    assert launch_overrides({"model_path": "", "device": "", "use_sim_time": ""}) == {}
    assert launch_overrides({"model_path": "/m.onnx", "device": "", "use_sim_time": "true"}) == {
        "model_path": "/m.onnx",
        "use_sim_time": True,
    }
    assert launch_overrides({"device": "cpu"}) == {"device": "cpu"}
    with pytest.raises(ParamsError, match="device must be one of"):
        launch_overrides({"device": "tpu"})
    with pytest.raises(ParamsError, match="true or false"):
        launch_overrides({"use_sim_time": "yes"})


def test_launch_file_source_applies_the_rule_and_declares_its_arguments():
    """Read from the launch file's source (AST), so that it runs everywhere; the launch itself runs in
    test_launch_under_launch_testing where ROS 2 launch is installed."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    declared = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"
    }
    assert declared == {"image_topic", "namespace", "params_file", "model_path", "device", "use_sim_time", "use_rviz"}
    calls = {getattr(n.func, "id", "") for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert "launch_overrides" in calls  # the one precedence rule, tested above


@pytest.mark.skipif(bool(_launch_missing()), reason=_launch_missing() or "-")
def test_launch_under_launch_testing(tiny_model, tmp_path):
    """The whole launch: a params file whose values must survive (device, a threshold), a model_path argument
    that must override the file's, a mask for a published frame, a clean exit."""
    params = tmp_path / "params.yaml"
    params.write_text(
        "/**:\n  ros__parameters:\n    device: cpu\n    go_min_traversable: 0.9\n    model_path: /nowhere.onnx\n"
    )
    cmd = [sys.executable, "-m", "launch_testing.launch_test", str(LAUNCH_TEST), f"model_path:={tiny_model}",
           f"params_file:={params}"]  # fmt: skip
    r = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "Ran 2 tests" in r.stderr and "FAILED" not in r.stderr


def test_rviz_config_shows_every_output_of_the_node():
    import yaml

    from ai4mars_perception.core.params import NODE_NAME
    from ai4mars_perception.ros.messages import OUTPUTS

    config = yaml.safe_load((REPO / "config" / "ai4mars.rviz").read_text())
    topics = {d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"] if "Topic" in d}
    assert {f"/{NODE_NAME}/{name}" for name in OUTPUTS if name != "traversability"} <= topics
    assert "/navcam/left/image_raw" in topics  # replaced by the launch's image_topic
