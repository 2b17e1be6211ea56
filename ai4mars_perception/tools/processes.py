"""Start the node as a separate process (bench, demo, tests); an rclpy context of a tool's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ai4mars_perception.ros.environment import child_env


def node_command() -> list[str]:
    """The installed console script, or ``python -m`` when it is not on PATH."""
    exe = Path(sys.executable).parent / "terrain_segmentation"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("terrain_segmentation")
    return [found] if found else [sys.executable, "-m", "ai4mars_perception.node"]


def start_node(
    params: dict[str, object],
    remaps: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    log_path: str | os.PathLike | None = None,
) -> subprocess.Popen:
    """Start ``terrain_segmentation`` with ``-p name:=value`` parameters (``params_file``: ``--params-file``)
    and ``-r from:=to`` remappings, in :func:`child_env` unless ``env`` is given."""
    cmd = [*node_command(), "--ros-args"]
    for k, v in params.items():
        if k == "params_file":
            cmd += ["--params-file", str(v)]
            continue
        cmd += ["-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}"]
    for k, v in (remaps or {}).items():
        cmd += ["-r", f"{k}:={v}"]
    out = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(cmd, env=env or child_env(), stdout=out, stderr=subprocess.STDOUT)


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGINT, then SIGKILL if it does not exit in time; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class RosSession:
    """An rclpy context of its own, one node and one executor: safe where rclpy is already initialised
    (tests, notebooks), and shut down completely on exit."""

    def __init__(self, node_name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(node_name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_once(self, timeout_sec: float = 0.05) -> None:
        """Handle at most one callback, waiting up to ``timeout_sec``."""
        self.executor.spin_once(timeout_sec=timeout_sec)

    def close(self) -> None:
        """Destroy the node and shut the context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()

    def __enter__(self) -> RosSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
