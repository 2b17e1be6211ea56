"""The DDS half of ``ai4mars-perception bench``: end-to-end latency through a node process, and bag play / bag
process throughput."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from ai4mars_perception.tools.errors import ToolError


def stats(seconds: list[float]) -> dict[str, float]:
    """mean, median, p90 and min in ms, and the count."""
    ms = sorted(1000.0 * s for s in seconds)
    return {
        "mean_ms": statistics.fmean(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": ms[min(len(ms) - 1, int(0.9 * len(ms)))],
        "min_ms": ms[0],
        "n": len(ms),
    }


def bench_node(model: str, frame: np.ndarray, repeats: int, device: str = "cpu", reliable: bool = False,
               backend: str = "auto", params: dict | None = None) -> dict[str, float]:  # fmt: skip
    """Publish ``repeats`` frames one at a time to a node process and time each mask's return. ``params``: more
    node parameters (``params_file`` too), as the bench's own pipeline has them."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from ai4mars_perception.ros.environment import child_env
    from ai4mars_perception.ros.messages import image_msg
    from ai4mars_perception.tools.processes import RosSession, peak_rss_mb, start_node, stop

    env = child_env()  # this process publishes 1 MiB frames best-effort: it has the large-SHM profile too
    name = "ai4mars_bench_segmentation"
    params = {**(params or {}), "model_path": model, "device": device, "backend": backend,
              "input_reliability": "reliable" if reliable else "best_effort"}  # fmt: skip
    proc = start_node(params, {"image": "/bench/image", "__node": name}, env)
    try:
        with RosSession("ai4mars_bench") as ros:
            rel = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
            pub = ros.node.create_publisher(Image, "/bench/image", QoSProfile(depth=1, reliability=rel))
            got: list[float] = []
            ros.node.create_subscription(Image, f"/{name}/mask", lambda m: got.append(time.perf_counter()), 10)
            msg = image_msg(frame, "mono8")
            msg.header.frame_id = "navcam_left"
            deadline = time.time() + 60
            while pub.get_subscription_count() == 0 or ros.node.count_publishers(f"/{name}/mask") == 0:
                if proc.poll() is not None or time.time() > deadline:
                    raise ToolError(
                        f"the node did not come up (exit code {proc.poll()}); run terrain_segmentation with the same "
                        "parameters to see why"
                    )
                ros.spin_once(0.1)
            time.sleep(0.5)  # let the node's reader match the publisher too (best effort drops otherwise)
            latencies = []
            for i in range(repeats + 3):
                n0, deadline = len(got), time.perf_counter() + 30
                while len(got) == n0:
                    if time.perf_counter() > deadline:
                        raise ToolError("the node sent no mask within 30 s of a frame")
                    t0 = time.perf_counter()  # (re)send: a best-effort frame can be lost
                    pub.publish(msg)
                    while len(got) == n0 and time.perf_counter() - t0 < 3.0:
                        ros.spin_once(0.5)  # blocks until the mask arrives: the bench takes no CPU meanwhile
                if i >= 3:
                    latencies.append(got[-1] - t0)
                time.sleep(0.05)
            result = stats(latencies)
            result["node_peak_rss_mb"] = peak_rss_mb(proc.pid)
            return result
    finally:
        stop(proc)


def bench_bags(model: str, frames_dir: Path, copies: int = 5) -> dict:
    """frames/s of ``bag process`` (no ROS graph) and of ``bag play`` delivered to a subscriber process-side."""
    import subprocess
    import sys
    import tempfile

    from ai4mars_perception.core.pipeline import Pipeline, PipelineConfig
    from ai4mars_perception.ros.environment import child_env
    from ai4mars_perception.tools.bag_make import make_bag
    from ai4mars_perception.tools.bag_process import process_bag

    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "frames"
        n = make_bag([str(frames_dir)] * copies, bag, rate=10.0)
        pipeline = Pipeline(PipelineConfig.from_values({"model_path": model, "device": "cpu"}))
        t = time.perf_counter()
        r = process_bag(bag, Path(tmp) / "out", pipeline, csv_path=None)
        process_s = time.perf_counter() - t
        env = child_env()
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from ai4mars_perception.tools.processes import RosSession

        got: list[float] = []
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        cmd = [sys.executable, "-m", "ai4mars_perception.tools.cli", "bag", "play", str(bag), "--rate", "1000"]
        with RosSession("ai4mars_play_bench") as ros:
            ros.node.create_subscription(
                Image, "/navcam/left/image_raw", lambda m: got.append(time.perf_counter()), qos
            )
            player = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                end = time.time() + 60
                while player.poll() is None and time.time() < end:
                    ros.spin_once(0.01)
                for _ in range(100):
                    ros.spin_once(0.01)
            finally:
                player.kill()
        play_fps = (len(got) - 1) / (got[-1] - got[0]) if len(got) > 1 else 0.0
    return {
        "frames": n,
        "process_frames_per_s": r.processed / process_s,
        "play_frames_delivered": len(got),
        "play_frames_per_s": play_fps,
    }
