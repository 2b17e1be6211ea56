"""``ai4mars-perception bench``: model forward time, core pipeline time and end-to-end node latency.

End-to-end latency = publish of a frame → its mask received, node in its own process, over DDS.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from ai4mars_perception.core.model.cpu_info import cpu_description
from ai4mars_perception.core.pipeline import PipelineConfig
from ai4mars_perception.core.segmenter import Segmenter, Timings
from ai4mars_perception.core.traversability import summarize
from ai4mars_perception.tools.bench_reference import cpu_limits, seed_predict_ms

GFLOP_PER_FRAME_256 = 58.0  # fastai DynamicUnet(resnet18), 256x256 input


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = sorted(1000.0 * s for s in seconds)
    return {
        "mean_ms": statistics.fmean(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": ms[min(len(ms) - 1, int(0.9 * len(ms)))],
        "min_ms": ms[0],
        "n": len(ms),
    }


def _time(fn, repeats: int) -> dict[str, float]:
    """Call ``fn`` once to warm up, then ``repeats`` times; timing statistics in ms."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return _stats(times)


def bench_forward(seg: Segmenter, frame: np.ndarray, repeats: int) -> dict[str, float]:
    """Raw ONNX Runtime forward time on a preprocessed frame (no pre/post-processing)."""
    x = seg.preprocess(frame)
    return _time(lambda: seg.logits(x), repeats)


def bench_core(seg: Segmenter, frame: np.ndarray, repeats: int) -> dict[str, float]:
    """Full core call: resize + normalise + forward + arg-max + resize back to the frame size."""
    return _time(lambda: seg.segment(frame), repeats)


def bench_stages(seg: Segmenter, frame: np.ndarray, repeats: int) -> dict[str, float]:
    """Median ms of the work the node adds around the forward pass, per frame (the lazy outputs too)."""
    from ai4mars_perception.core.pipeline import GroundConfig
    from ai4mars_perception.core.projection import CameraModel, GroundProjector

    runs = [Timings() for _ in range(repeats)]
    outs = [seg.run(frame, t) for t in runs]
    mask, logits = outs[-1]
    h, w = mask.shape
    t0 = time.perf_counter()
    projector = GroundProjector(CameraModel.from_fov(w, h, 45.0), *GroundConfig().pose())
    build = 1000 * (time.perf_counter() - t0)
    return {
        "preprocess_ms": statistics.median(1000 * t.preprocess for t in runs),
        "postprocess_ms": statistics.median(1000 * t.postprocess for t in runs),
        "traversability_summary_ms": _time(lambda: summarize(mask), repeats)["median_ms"],
        "confidence_ms": _time(lambda: seg.confidence(logits, mask), repeats)["median_ms"],
        "costmap_ms": _time(lambda: projector.costmap(mask), repeats)["median_ms"],
        "costmap_lookup_build_ms": build,
    }


def bench_node(
    model: str, frame: np.ndarray, repeats: int, device: str = "cpu", reliable: bool = False, backend: str = "auto"
) -> dict[str, float]:
    """Publish ``repeats`` frames one at a time to a node process and time each mask's return."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from ai4mars_perception.ros.environment import child_env
    from ai4mars_perception.ros.messages import image_msg
    from ai4mars_perception.tools.processes import RosSession, peak_rss_mb, start_node, stop

    env = child_env()  # this process publishes 1 MiB frames best-effort: it has the large-SHM profile too
    name = "ai4mars_bench_segmentation"
    params = {"model_path": model, "device": device, "backend": backend,
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
                    raise RuntimeError(f"the node did not come up (exit code {proc.poll()})")
                ros.spin_once(0.1)
            time.sleep(0.5)  # let the node's reader match the publisher too (best effort drops otherwise)
            latencies = []
            for i in range(repeats + 3):
                n0, deadline = len(got), time.perf_counter() + 30
                while len(got) == n0:
                    if time.perf_counter() > deadline:
                        raise RuntimeError("no mask came back within 30 s")
                    t0 = time.perf_counter()  # (re)send: a best-effort frame can be lost
                    pub.publish(msg)
                    while len(got) == n0 and time.perf_counter() - t0 < 3.0:
                        ros.spin_once(0.5)  # blocks until the mask arrives: the bench takes no CPU meanwhile
                if i >= 3:
                    latencies.append(got[-1] - t0)
                time.sleep(0.05)
            result = _stats(latencies)
            result["node_peak_rss_mb"] = peak_rss_mb(proc.pid)
            return result
    finally:
        stop(proc)


def run_benchmark(
    model: str,
    frame: np.ndarray,
    repeats: int,
    device: str,
    node: bool,
    out: Path | None,
    bags: Path | None = None,
    backend: str = "auto",
    seed_frame: Path | None = None,
) -> dict:
    """Run all benchmarks and return (and optionally write) a JSON-able report. With ``seed_frame`` (a frame
    file), also fastai ``learner.predict`` on it, the seed's path, in the same run."""
    seg = Segmenter(model, device, backend=backend)
    fwd = bench_forward(seg, frame, repeats)
    h, w = seg.input_size
    gflop = GFLOP_PER_FRAME_256 * (h * w) / (256 * 256)
    report = {
        "model": str(model),
        "model_version": seg.metadata.model_version,
        "provider": seg.provider,
        "frame": list(frame.shape),
        "model_input": [h, w],
        "cpu": cpu_description(),
        "cores": os.cpu_count(),
        "forward": fwd,
        "forward_gflops_per_s": gflop / (fwd["median_ms"] / 1000.0),
        "cpu_limits": cpu_limits(),
        "core_pipeline": bench_core(seg, frame, repeats),
        "stages": bench_stages(seg, frame, repeats),
    }
    del seg
    if seed_frame is not None:
        try:
            report["seed_learner_predict"] = seed_predict_ms(seed_frame, h, max(3, repeats // 2))
        except ImportError:
            report["seed_learner_predict"] = {"skipped": "fastai is not installed (make install-train)"}
    if node:
        report["node_end_to_end"] = bench_node(model, frame, repeats, device, backend=backend)
        seed = report.get("seed_learner_predict", {})
        if "median_ms" in seed:
            report["seed_over_node"] = seed["median_ms"] / report["node_end_to_end"]["median_ms"]
        report["node_latency_over_forward"] = report["node_end_to_end"]["median_ms"] / fwd["median_ms"]
    if bags is not None:
        report["bags"] = bench_bags(model, bags)
    if out:
        out.write_text(json.dumps(report, indent=2))
    return report


def _of_limit(r: dict, key: str) -> str:
    return f"{100 * r['forward_gflops_per_s'] / r['cpu_limits'][key]:.0f} %"


def format_report(r: dict) -> str:
    """Human-readable summary."""
    lines = [
        f"model {r['model']} ({r['model_version']}) on {r['provider']}",
        f"cpu {r['cpu']['summary']}, {r['cores']} cores",
        f"frame {r['frame']} -> model input {r['model_input']}",
        f"forward ({r['provider']})   median {r['forward']['median_ms']:.1f} ms  p90 {r['forward']['p90_ms']:.1f} ms"
        f"  = {r['forward_gflops_per_s']:.0f} G(FL)OP/s: {_of_limit(r, 'int8_gops')} of this CPU's int8 GEMM limit "
        f"({r['cpu_limits']['int8_gops']:.0f} GOP/s), {_of_limit(r, 'fp32_gflops')} of its fp32 one "
        f"({r['cpu_limits']['fp32_gflops']:.0f} GFLOP/s; both ONNX Runtime, measured now)",
        f"added per frame          preprocess {r['stages']['preprocess_ms']:.1f} ms, postprocess "
        f"{r['stages']['postprocess_ms']:.1f} ms, traversability {r['stages']['traversability_summary_ms']:.1f} ms",
        f"lazy outputs             confidence {r['stages']['confidence_ms']:.1f} ms, costmap "
        f"{r['stages']['costmap_ms']:.1f} ms (lookup built once: {r['stages']['costmap_lookup_build_ms']:.0f} ms)",
        f"core pipeline            median {r['core_pipeline']['median_ms']:.1f} ms"
        f"  p90 {r['core_pipeline']['p90_ms']:.1f} ms",
    ]
    if "node_end_to_end" in r:
        e = r["node_end_to_end"]
        lines += [
            f"node end-to-end          median {e['median_ms']:.1f} ms  p90 {e['p90_ms']:.1f} ms"
            f"  ({r['node_latency_over_forward']:.3f} x forward)",
            f"node peak RSS            {e['node_peak_rss_mb']:.0f} MB",
        ]
    if "seed_learner_predict" in r:
        seed = r["seed_learner_predict"]
        lines.append(
            f"seed learner.predict     median {seed['median_ms']:.1f} ms; node end-to-end is "
            f"{r['seed_over_node']:.2f}x faster"
            if "seed_over_node" in r
            else f"seed learner.predict     {seed.get('skipped', seed)}"
        )
    if "bags" in r:
        b = r["bags"]
        lines += [
            f"bag process              {b['process_frames_per_s']:.2f} frames/s ({b['frames']} frames)",
            f"bag play (1 MiB raw)     {b['play_frames_per_s']:.1f} frames/s delivered "
            f"({b['play_frames_delivered']}/{b['frames']})",
        ]
    return "\n".join(lines)


def bench_bags(model: str, frames_dir: Path, copies: int = 5) -> dict:
    """frames/s of ``bag process`` (no ROS graph) and of ``bag play`` delivered to a subscriber process-side."""
    import subprocess
    import sys
    import tempfile

    from ai4mars_perception.core.pipeline import Pipeline
    from ai4mars_perception.ros.environment import child_env
    from ai4mars_perception.tools.bag_make import make_bag
    from ai4mars_perception.tools.bag_process import process_bag

    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "frames"
        n = make_bag([str(frames_dir)] * copies, bag, rate=10.0)
        pipeline = Pipeline(PipelineConfig(model_path=model, device="cpu"))
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


def command(args) -> int:
    """``ai4mars-perception bench``: print (and optionally write) the report."""
    from ai4mars_perception.core.image_codec import read_image_file
    from ai4mars_perception.ros.environment import prepare_ros_environment
    from ai4mars_perception.tools.errors import ToolError

    prepare_ros_environment(loopback=True)
    if args.transport:
        from ai4mars_perception.tools.bench_transport import bench_transport

        print("publisher (profile, QoS)      subscriber (profile, QoS)       received (1 MiB frames at 10 Hz)")
        rows = bench_transport()
        for r in rows:
            pub, sub = (
                f"{r['publisher_profile']}, {r['publisher_qos']}",
                f"{r['subscriber_profile']}, {r['subscriber_qos']}",
            )
            print(f"{pub:<29} {sub:<31} {r['received']}/{r['sent']}")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
        return 0
    if args.image:
        frame = read_image_file(args.image)
    else:
        frame = np.random.default_rng(0).integers(0, 256, (args.size, args.size), np.uint8)
    model = PipelineConfig(model_path=args.model or "", device=args.device, backend=args.backend).resolved_model_path()
    seg = Segmenter(model, args.device, backend=args.backend)  # fail early with a clear message
    if args.profile:
        from ai4mars_perception.tools.bench_profile import format_profile, op_profile

        profile = op_profile(model, seg.preprocess(frame), max(1, args.repeats // 2))
        print(format_profile(profile))
        if args.json:
            Path(args.json).write_text(json.dumps(profile, indent=2))
        return 0
    out = Path(args.json) if args.json else None
    bags = Path(args.bags) if args.bags else None
    if args.compare_seed and not args.image:
        raise ToolError("--compare-seed needs --image (learner.predict reads a frame file, as the seed does)")
    seed = Path(args.image) if args.compare_seed else None
    report = run_benchmark(model, frame, args.repeats, args.device, not args.no_node, out, bags, args.backend, seed)
    print(format_report(report))
    return 0
