"""Shared fixtures: loopback DDS environment, tiny models, real Navcam frames."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ai4mars_perception.ros.environment import prepare_ros_environment

# Every test process: DDS stays on loopback, in a domain of its own (kept when the Makefile chose one).
prepare_ros_environment(loopback=True)

from tiny_model import brightness_model  # noqa: E402  (after the ROS environment is set)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SAMPLES = REPO / "samples" / "navcam"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return brightness_model(tmp_path_factory.mktemp("models") / "brightness.onnx")


@pytest.fixture(scope="session")
def null_model(tmp_path_factory) -> Path:
    return brightness_model(tmp_path_factory.mktemp("models") / "brightness_null.onnx", null_class=True)


@pytest.fixture(scope="session")
def navcam_frames() -> list[Path]:
    """Real 1024x1024 Navcam EDR frames: the bundled samples (always present in the repo)."""
    frames = sorted(SAMPLES.glob("*.JPG"))
    assert frames, f"bundled sample frames missing in {SAMPLES}"
    return frames


@pytest.fixture(scope="module")
def harness(request):
    """One rclpy node in the test process per test module (``test_<module>_client``), closed after it."""
    from ros_harness import Harness

    h = Harness(f"{request.module.__name__.rsplit('.', 1)[-1]}_client")
    yield h
    h.close()


@pytest.fixture(scope="session", autouse=True)
def no_leftover_processes():
    """After the session, stop any child process a failed test may have left running (node processes
    would otherwise keep publishing into later runs in the same ROS domain)."""
    import signal
    import subprocess

    yield
    out = subprocess.run(["pgrep", "-P", str(os.getpid())], capture_output=True, text=True).stdout.split()
    for pid in map(int, out):
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass


collect_ignore = ["launch"]  # launch_testing modules, run by test_launch.py
