"""``make demo``: replay the bundled Navcam sequence into the running node over DDS and show what it sees.

Steps: bundled frames → rosbag2 (mcap) → the node in its own process → a player and a recorder here →
contact sheet (input | overlay | mask), per-frame traversability CSV, latency JSON, recorded output bag.
"""

from __future__ import annotations

import csv
import json
import shutil
import statistics
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from ai4mars_perception.core.classes import CLASS_NAMES, UNKNOWN_COLOR
from ai4mars_perception.core.model.shipped import default_model_path, share_dir
from ai4mars_perception.core.overlay import colorize
from ai4mars_perception.core.params import NODE_NAME
from ai4mars_perception.core.segmenter import Segmenter
from ai4mars_perception.core.traversability import TABLE_FIELDS, Verdict
from ai4mars_perception.tools.bag_io import IMAGE, POINTCLOUD2, read_frames, typestore
from ai4mars_perception.tools.contact_sheet import contact_sheet, legend, save_rgb
from ai4mars_perception.tools.errors import ToolError

TOPIC = "/navcam/left/image_raw"
OUTPUTS = ("mask", "overlay", "traversability")


def run_demo(model: Path, frames_dir: Path, out: Path, rate: float = 1.0) -> dict:
    """Run the whole demo; returns the report that is also written to ``out/latency.json``."""
    from sensor_msgs.msg import Image, PointCloud2

    from ai4mars_perception.ros.environment import child_env
    from ai4mars_perception.ros.messages import stamp_ns
    from ai4mars_perception.tools.bag_make import make_bag
    from ai4mars_perception.tools.bag_play import BagPlayer
    from ai4mars_perception.tools.processes import RosSession, peak_rss_mb, start_node, stop

    meta = Segmenter(model, "cpu").metadata
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    bag = out / "navcam_input"
    n = make_bag([str(frames_dir)], bag, rate=rate)
    env = child_env()
    print(
        f"demo: {n} Navcam frames → {bag}; node with {model.name} ({meta.model_version}), "
        f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}"
    )
    proc = start_node({"model_path": str(model), "device": "cpu"}, {"image": TOPIC}, env, out / "node.log")
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
    return _write_outputs(out, meta, frames, published, received, rss)


def _write_outputs(out: Path, meta, frames: dict, published: dict, received: dict, rss: float) -> dict:
    """Contact sheet, traversability CSV, recorded output bag and latency report."""
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import Writer

    from ai4mars_perception.ros.messages import image_array, table_from_msg

    stamps = sorted(published)
    rows, caps, latencies = [], [], []
    with open(out / "traversability.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "stamp_ns", "region", "verdict", *TABLE_FIELDS[2:], "end_to_end_ms"])
        for i, stamp in enumerate(stamps):
            if stamp not in received["mask"] or stamp not in received["traversability"]:
                w.writerow([i, stamp, "frame", "no output"])
                continue
            t_mask, mask_msg = received["mask"][stamp]
            e2e = 1000.0 * (t_mask - published[stamp])
            latencies.append(e2e)
            mask = image_array(mask_msg)
            table = table_from_msg(received["traversability"][stamp][1])
            for row in table:
                region = ["frame", "left", "centre", "right"][row["region"]] if len(table) == 4 else int(row["region"])
                w.writerow([i, stamp, region, Verdict(int(row["verdict"])).name.lower(),
                            *[f"{float(row[k]):.4f}" for k in TABLE_FIELDS[2:]], f"{e2e:.1f}"])  # fmt: skip
            overlay = received["overlay"].get(stamp)
            ovl = image_array(overlay[1]) if overlay else mask
            verdicts = " ".join(Verdict(int(v)).name.lower() for v in table["verdict"][1:])
            rows.append([frames[stamp], ovl, colorize(mask, meta.class_colors)])
            caps.append(
                f"frame {i}: {Verdict(int(table['verdict'][0])).name}  traversable {table['traversable'][0]:.2f}"
                f"  near field L/C/R: {verdicts}  latency {e2e:.0f} ms"
            )
    if rows:
        sheet = contact_sheet(rows, caps, ["Navcam input", "overlay (~/overlay)", "mask (~/mask)"], tile=320)
        names = [*CLASS_NAMES, "unknown"]
        title = np.full((28, sheet.shape[1], 3), 48, np.uint8)
        cv2.putText(title, f"ai4mars_perception demo - model {meta.model_version}", (8, 19),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
        sheet = np.vstack([title, sheet, legend(names, [*meta.class_colors, UNKNOWN_COLOR], sheet.shape[1])])
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
        "model_version": meta.model_version,
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
    from ai4mars_perception.ros.environment import prepare_ros_environment

    prepare_ros_environment(loopback=True)
    out = Path(args.out).resolve()
    model = Path(args.model) if args.model else default_model_path()
    frames = Path(args.frames) if args.frames else share_dir() / "samples" / "navcam"
    report = run_demo(model, frames, out, args.rate)
    e2e = report["end_to_end_ms"]
    print(
        f"demo: {report['frames_answered']}/{report['frames_published']} frames answered; end-to-end latency "
        f"median {e2e['median']:.0f} ms, max {e2e['max']:.0f} ms; node peak RSS {report['node_peak_rss_mb']:.0f} MB"
    )
    for name in ("contact_sheet.png", "traversability.csv", "latency.json", "node_outputs", "navcam_input"):
        print(f"  {out / name}")
    return 0 if report["frames_answered"] == report["frames_published"] else 1
