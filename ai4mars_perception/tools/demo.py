"""``make demo``: replay the bundled Navcam sequence into the running node over DDS and show what it sees.

Steps: bundled frames → rosbag2 (mcap) → the node in its own process → a player and a recorder here →
contact sheet (input | overlay | mask), per-frame traversability CSV, latency JSON, recorded output bag.
"""

from __future__ import annotations

import json
import shutil
import statistics
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from ai4mars_perception.core.classes import CLASS_NAMES, TERRAIN_CLASSES, UNKNOWN_COLOR
from ai4mars_perception.core.model.shipped import default_model_path, share_dir
from ai4mars_perception.core.overlay import colorize
from ai4mars_perception.core.params import NODE_NAME
from ai4mars_perception.core.traversability import Verdict
from ai4mars_perception.tools.bag_io import IMAGE, POINTCLOUD2, read_frames, typestore
from ai4mars_perception.tools.contact_sheet import contact_sheet, legend, save_rgb
from ai4mars_perception.tools.errors import ToolError
from ai4mars_perception.tools.overrides import parse_overrides
from ai4mars_perception.tools.side_files import side_topics
from ai4mars_perception.tools.writers import TraversabilityCsv

TOPIC = "/navcam/left/image_raw"
OUTPUTS = ("mask", "overlay", "traversability")


def run_demo(model: Path | None, frames_dir: Path, out: Path, rate: float = 1.0, params_file: Path | None = None,
             overrides: dict | None = None) -> dict:  # fmt: skip
    """Run the whole demo; returns the report that is also written to ``out/latency.json``. The node gets the
    params file and the overrides as ``ros2 run`` would (``--params-file``, ``-p``); ``model`` overrides its
    model_path (None: the params file's, else the shipped CPU model). The model is loaded once, by the node."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image, PointCloud2

    from ai4mars_perception.core.stamps import stamp_ns
    from ai4mars_perception.ros.environment import child_env
    from ai4mars_perception.tools.bag_make import make_bag
    from ai4mars_perception.tools.bag_play import BagPlayer
    from ai4mars_perception.tools.processes import RosSession, peak_rss_mb, start_node, stop

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    bag = out / "navcam_input"
    n = make_bag([str(frames_dir)], bag, rate=rate, exclusion_masks=True)  # AI4Mars MXY ∪ RNG-30m, when there
    env = child_env()
    params = {**({"params_file": params_file} if params_file else {}), "device": "cpu", "use_exclusion_mask": True,
              **(overrides or {})}  # fmt: skip
    if model is not None:
        params["model_path"] = str(model)
    print(f"demo: {n} Navcam frames → {bag}; node with {model.name if model else 'its params'}, "
          f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}")  # fmt: skip
    remaps = {"image": TOPIC, "exclusion_mask": side_topics(TOPIC)["exclusion_mask"]}
    proc = start_node(params, remaps, env, out / "node.log")
    ros = RosSession("ai4mars_demo")
    node = ros.node
    received: dict[str, dict[int, tuple[float, object]]] = {k: {} for k in OUTPUTS}
    lock = threading.Lock()

    def keep(kind: str):
        def cb(msg) -> None:
            with lock:
                received[kind][stamp_ns(msg.header)] = (time.perf_counter(), msg)

        return cb

    for kind, typ in (("mask", Image), ("overlay", Image), ("traversability", PointCloud2)):
        node.create_subscription(typ, f"/{NODE_NAME}/{kind}", keep(kind), 10)
    version: list[str] = []  # the node reports its model's version in /diagnostics

    def on_diagnostics(msg) -> None:
        values = {kv.key: kv.value for s in msg.status for kv in s.values}
        if values.get("model_version"):
            version[:] = [values["model_version"]]

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    spinner = threading.Thread(target=ros.executor.spin, daemon=True)
    spinner.start()
    published: dict[int, float] = {}
    try:
        player = BagPlayer(node, bag)
        deadline = time.monotonic() + 60
        while node.count_publishers(f"/{NODE_NAME}/mask") == 0 or not player.wait_for_subscribers(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ToolError(f"the node did not start; see {out / 'node.log'}")
        time.sleep(1.0)  # let discovery settle for the output topics too
        player.play(rate, lambda conn, stamp: published.__setitem__(stamp, time.perf_counter()))
        end = time.monotonic() + 30
        while time.monotonic() < end and len(received["traversability"]) < len(published):
            time.sleep(0.1)
        rss = peak_rss_mb(proc.pid)
        player.close()
    finally:
        ros.close()
        stop(proc)
    frames = read_frames(bag)
    return _write_outputs(out, version[0] if version else "unknown", frames, published, received, rss)


def _write_outputs(out: Path, model_version: str, frames: dict, published: dict, received: dict, rss: float) -> dict:
    """Contact sheet, traversability CSV, recorded output bag and latency report."""
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import Writer

    from ai4mars_perception.ros.messages import image_array, table_from_msg

    stamps = sorted(published)
    rows, caps, latencies = [], [], []
    with open(out / "traversability.csv", "w", newline="") as f:
        csv_rows = TraversabilityCsv(f)
        for i, stamp in enumerate(stamps):
            if stamp not in received["mask"] or stamp not in received["traversability"]:
                csv_rows.failure(i, TOPIC, stamp, "no output from the node")
                continue
            t_mask, mask_msg = received["mask"][stamp]
            e2e = 1000.0 * (t_mask - published[stamp])
            latencies.append(e2e)
            mask = image_array(mask_msg)
            table = table_from_msg(received["traversability"][stamp][1])
            csv_rows.frame(i, TOPIC, stamp, table, end_to_end_ms=e2e)
            overlay = received["overlay"].get(stamp)
            ovl = image_array(overlay[1]) if overlay else mask
            verdicts = " ".join(Verdict(int(v)).name.lower() for v in table["verdict"][1:])
            rows.append([frames[stamp], ovl, colorize(mask)])
            caps.append(
                f"frame {i}: {Verdict(int(table['verdict'][0])).name}  traversable {table['traversable'][0]:.2f}"
                f"  near field L/C/R: {verdicts}  latency {e2e:.0f} ms"
            )
    if rows:
        sheet = contact_sheet(rows, caps, ["Navcam input", "overlay (~/overlay)", "mask (~/mask)"], tile=320)
        names = [*CLASS_NAMES, "unknown"]
        title = np.full((28, sheet.shape[1], 3), 48, np.uint8)
        cv2.putText(title, f"ai4mars_perception demo - model {model_version}", (8, 19),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
        colors = [c.color for c in TERRAIN_CLASSES]
        sheet = np.vstack([title, sheet, legend(names, [*colors, UNKNOWN_COLOR], sheet.shape[1])])
        save_rgb(out / "contact_sheet.png", sheet)
    ts = typestore()
    with Writer(out / "node_outputs", version=9) as writer:
        conns = {
            kind: writer.add_connection(
                f"/{NODE_NAME}/{kind}", POINTCLOUD2 if kind == "traversability" else IMAGE, typestore=ts
            )
            for kind in OUTPUTS
        }
        for kind, by_stamp in received.items():
            for stamp in sorted(by_stamp):
                writer.write(conns[kind], stamp, serialize_message(by_stamp[stamp][1]))
    report = {
        "model_version": model_version,
        "frames_published": len(stamps),
        "frames_answered": len(latencies),
        "end_to_end_ms": {
            "median": statistics.median(latencies) if latencies else None,
            "max": max(latencies) if latencies else None,
            "all": [round(v, 1) for v in latencies],
        },
        "node_peak_rss_mb": round(rss, 1),
    }
    (out / "latency.json").write_text(json.dumps(report, indent=2))
    return report


def command(args) -> int:
    """``ai4mars-perception demo`` (and ``make demo``): run it and print where the results are."""
    from ai4mars_perception.core.params import load_params_file
    from ai4mars_perception.ros.environment import prepare_ros_environment

    prepare_ros_environment(loopback=True)
    out = Path(args.out).resolve()
    if args.params_file:
        load_params_file(args.params_file)  # a bad file: one sentence here rather than a node that never starts
    overrides = parse_overrides(args.param or [])
    model = Path(args.model) if args.model else None
    if model is None and not args.params_file and "model_path" not in overrides:
        model = default_model_path()
    frames = Path(args.frames) if args.frames else share_dir() / "samples" / "navcam"
    params_file = Path(args.params_file).resolve() if args.params_file else None
    report = run_demo(model, frames, out, args.rate, params_file, overrides)
    e2e = report["end_to_end_ms"]
    if report["frames_answered"]:
        print(f"demo: {report['frames_answered']}/{report['frames_published']} frames answered; end-to-end latency "
              f"median {e2e['median']:.0f} ms, max {e2e['max']:.0f} ms; node peak RSS "
              f"{report['node_peak_rss_mb']:.0f} MB")  # fmt: skip
    else:
        print(f"demo: none of {report['frames_published']} frames was answered; see {out / 'node.log'}")
    for name in ("contact_sheet.png", "traversability.csv", "latency.json", "node_outputs", "navcam_input"):
        print(f"  {out / name}")
    return 0 if report["frames_answered"] == report["frames_published"] else 1
