"""``ai4mars-perception bench``: model forward time, core pipeline time and end-to-end node latency, all through
the frame pipeline built from the same parameters as the node's (``--params-file``, ``-p``).

End-to-end latency = publish of a frame → its mask received, node in its own process, over DDS (bench_ros).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from ai4mars_perception.core.model.cpu_info import cpu_description
from ai4mars_perception.core.pipeline import Pipeline, PipelineConfig
from ai4mars_perception.core.traversability import summarize
from ai4mars_perception.tools.bench_reference import cpu_limits, notebook_predict_ms
from ai4mars_perception.tools.bench_ros import bench_bags, bench_node, stats
from ai4mars_perception.tools.errors import ToolError
from ai4mars_perception.tools.overrides import parse_overrides, values_from_args

GFLOP_PER_FRAME_256 = 58.0  # fastai DynamicUnet(resnet18), 256x256 input


def _time(fn, repeats: int) -> dict[str, float]:
    """Call ``fn`` once to warm up, then ``repeats`` times; timing statistics in ms."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return stats(times)


def bench_forward(pipeline: Pipeline, frame: np.ndarray, repeats: int) -> dict[str, float]:
    """Raw forward time of the pipeline's model on a preprocessed frame (no pre/post-processing)."""
    seg = pipeline.segmenter
    x = seg.preprocess(frame)
    return _time(lambda: seg.logits(x), repeats)


def bench_core(pipeline: Pipeline, frame: np.ndarray, repeats: int) -> dict[str, float]:
    """The pipeline's frame call: resize + normalise + forward + arg-max + resize back to the frame size."""
    return _time(lambda: pipeline.process(frame), repeats)


def bench_stages(pipeline: Pipeline, frame: np.ndarray, repeats: int) -> dict[str, float]:
    """Median ms of the work the node adds around the forward pass, per frame (the lazy outputs too), with the
    pipeline's own configuration (thresholds, camera parameters, grid)."""
    results = [pipeline.process(frame) for _ in range(repeats)]
    last = results[-1]
    t0 = time.perf_counter()
    projector = pipeline.projector(last.mask.shape)
    build = 1000 * (time.perf_counter() - t0)
    return {
        "preprocess_ms": statistics.median(1000 * r.timings.preprocess for r in results),
        "postprocess_ms": statistics.median(1000 * r.timings.postprocess for r in results),
        "traversability_summary_ms": _time(lambda: summarize(last.mask, last.config.traversability), repeats)[
            "median_ms"
        ],  # fmt: skip
        "confidence_ms": _time(lambda: pipeline.segmenter.confidence(last.logits, last.mask), repeats)["median_ms"],
        "costmap_ms": _time(lambda: projector.costmap(last.mask), repeats)["median_ms"],
        "costmap_lookup_build_ms": build,
    }


def run_benchmark(pipeline: Pipeline, frame: np.ndarray, repeats: int, node: bool, out: Path | None,
                  bags: Path | None = None, notebook_frame: Path | None = None,
                  node_params: dict | None = None) -> dict:  # fmt: skip
    """Run all benchmarks on ``pipeline``'s model and configuration; return (and optionally write) a JSON-able
    report. With ``notebook_frame`` (a frame file), also fastai ``learner.predict`` on it, the AI4Mars reference
    notebook's inference path, in the same run."""
    seg, config = pipeline.segmenter, pipeline.config
    model = str(seg.path)
    fwd = bench_forward(pipeline, frame, repeats)
    h, w = seg.input_size
    gflop = GFLOP_PER_FRAME_256 * (h * w) / (256 * 256)
    report = {
        "model": model,
        "model_version": seg.metadata.model_version,
        "provider": seg.provider,
        "frame": list(frame.shape),
        "model_input": [h, w],
        "cpu": cpu_description(),
        "cores": os.cpu_count(),
        "forward": fwd,
        "forward_gflops_per_s": gflop / (fwd["median_ms"] / 1000.0),
        "cpu_limits": cpu_limits(),
        "core_pipeline": bench_core(pipeline, frame, repeats),
        "stages": bench_stages(pipeline, frame, repeats),
    }
    if notebook_frame is not None:
        try:
            report["notebook_learner_predict"] = notebook_predict_ms(notebook_frame, h, max(3, repeats // 2))
        except ImportError:
            report["notebook_learner_predict"] = {"skipped": "fastai is not installed (make install-train)"}
    if node:
        report["node_end_to_end"] = bench_node(model, frame, repeats, config.device, backend=config.backend,
                                               params=node_params)  # fmt: skip
        notebook = report.get("notebook_learner_predict", {})
        if "median_ms" in notebook:
            report["notebook_over_node"] = notebook["median_ms"] / report["node_end_to_end"]["median_ms"]
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
    if "notebook_learner_predict" in r:
        nb = r["notebook_learner_predict"]
        lines.append(
            f"notebook learner.predict median {nb['median_ms']:.1f} ms; node end-to-end is "
            f"{r['notebook_over_node']:.2f}x faster"
            if "notebook_over_node" in r
            else f"notebook learner.predict {nb.get('skipped', nb)}"
        )
    if "bags" in r:
        b = r["bags"]
        lines += [
            f"bag process              {b['process_frames_per_s']:.2f} frames/s ({b['frames']} frames)",
            f"bag play (1 MiB raw)     {b['play_frames_per_s']:.1f} frames/s delivered "
            f"({b['play_frames_delivered']}/{b['frames']})",
        ]
    return "\n".join(lines)


def command(args) -> int:
    """``ai4mars-perception bench``: print (and optionally write) the report."""
    from ai4mars_perception.core.image_codec import read_image_file
    from ai4mars_perception.ros.environment import prepare_ros_environment

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
    values = values_from_args(args)
    pipeline = Pipeline(PipelineConfig.from_values(values))  # fails early with one sentence
    if args.profile:
        from ai4mars_perception.tools.bench_profile import format_profile, op_profile

        seg = pipeline.segmenter
        profile = op_profile(str(seg.path), seg.preprocess(frame), max(1, args.repeats // 2))
        print(format_profile(profile))
        if args.json:
            Path(args.json).write_text(json.dumps(profile, indent=2))
        return 0
    out = Path(args.json) if args.json else None
    bags = Path(args.bags) if args.bags else None
    if args.compare_notebook and not args.image:
        raise ToolError("--compare-notebook needs --image (learner.predict reads a frame file, as the notebook does)")
    notebook = Path(args.image) if args.compare_notebook else None
    node_params = {**({"params_file": Path(args.params_file).resolve()} if args.params_file else {}),
                   **parse_overrides(args.param or [])}  # fmt: skip
    report = run_benchmark(pipeline, frame, args.repeats, not args.no_node, out, bags, notebook, node_params)
    print(format_report(report))
    return 0
