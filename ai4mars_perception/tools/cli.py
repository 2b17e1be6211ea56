"""``ai4mars-perception``: segment files, bag make | play | process, bench, bench-gpu, demo.

Only ``bag play``, ``bench`` and ``demo`` start DDS. ``segment``, ``bag process``, ``bench`` and ``demo`` read the
node's params YAML (``--params-file``) and take ``-p NAME:=VALUE`` overrides, so offline results equal the node's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai4mars_perception.core.image_codec import ImageDecodeError
from ai4mars_perception.core.params import NODE_NAME, ParamsError
from ai4mars_perception.core.segmenter import ModelLoadError
from ai4mars_perception.tools.errors import ToolError
from ai4mars_perception.tools.overrides import add_config_args, pipeline_from_args

USER_ERRORS = (ToolError, ParamsError, ModelLoadError, ImageDecodeError)


def cmd_segment(args: argparse.Namespace) -> int:
    from ai4mars_perception.tools.segment_files import segment_files

    failures = segment_files(pipeline_from_args(args), args.inputs, Path(args.out))
    for path, reason in failures:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    print(f"wrote masks and overlays to {args.out}; {len(failures)} file(s) failed")
    return 1 if failures else 0


def cmd_bag(args: argparse.Namespace) -> int:
    if args.bag_command == "make":
        from ai4mars_perception.tools.bag_make import make_bag

        n = make_bag(args.inputs, Path(args.out), args.topic, args.frame_id, args.compressed, args.rate, args.start,
                     args.storage, args.camera_info, args.fov, args.exclusion_masks)  # fmt: skip
        print(f"wrote {n} frames to {args.out}")
        return 0
    if args.bag_command == "play":
        from ai4mars_perception.ros.environment import prepare_ros_environment
        from ai4mars_perception.tools.bag_play import play_bag

        prepare_ros_environment()
        n = play_bag(Path(args.bag), args.rate, args.loop, args.topics, args.clock, not args.best_effort)
        print(f"published {n} messages")
        return 0
    from ai4mars_perception.tools.bag_process import process_bag

    pipeline = pipeline_from_args(args, args.node_name)
    out = Path(args.out)
    csv_path = Path(args.csv) if args.csv else out.with_name(out.name + ".csv")
    r = process_bag(Path(args.bag), out, pipeline, args.topics, args.node_name, not args.no_overlay, args.storage,
                    csv_path, Path(args.png_dir) if args.png_dir else None, args.overwrite)  # fmt: skip
    print(f"{r.processed}/{r.frames} frames processed, {r.failed} failed, "
          f"{r.frames / max(r.seconds, 1e-9):.2f} frames/s; wrote {out} and {csv_path}")  # fmt: skip
    return 1 if r.failed else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ai4mars_perception.tools import bench

    return bench.command(args)


def cmd_bench_validity(args: argparse.Namespace) -> int:
    from ai4mars_perception.tools.bench_validity import command

    return command(args)


def cmd_bench_gpu(args: argparse.Namespace) -> int:
    from ai4mars_perception.tools.bench_gpu import command

    return command(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from ai4mars_perception.tools.demo import command

    return command(args)


def _bag_parser(sub) -> None:
    parent = sub.add_parser("bag", help="rosbag2 tools: make, play, process")
    parent.set_defaults(func=cmd_bag)
    bag = parent.add_subparsers(dest="bag_command", required=True)
    p = bag.add_parser("make", help="image files or folders -> rosbag2")
    p.add_argument("inputs", nargs="+", metavar="IMAGES_OR_FOLDER")
    p.add_argument("-o", "--out", required=True, help="output bag folder (must not exist)")
    p.add_argument("--topic", default="/navcam/left/image_raw")
    p.add_argument("--frame-id", default="navcam_left")
    p.add_argument("--compressed", action="store_true", help="CompressedImage with the file bytes as they are")
    p.add_argument("--rate", type=float, default=1.0, help="frames per second of the recorded timing")
    p.add_argument("--start", type=float, default=None, help="first stamp, seconds since the epoch (default: now)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--camera-info", action="store_true", help="also write <topic namespace>/camera_info")
    p.add_argument("--fov", type=float, default=45.0, help="horizontal field of view for camera_info, degrees")
    p.add_argument("--exclusion-masks", action="store_true",
                   help="also each frame's exclusion mask (NAME_exclusion.png, AI4Mars mxy/ and rng-30m/) on "
                   "<topic namespace>/exclusion_mask")  # fmt: skip

    p = bag.add_parser("play", help="publish a bag's image topics over DDS with the recorded timing")
    p.add_argument("bag")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    p.add_argument("--loop", action="store_true")
    p.add_argument("--topics", nargs="+", help="image topics to play (default: all image topics)")
    p.add_argument("--clock", action="store_true", help="publish /clock from the bag stamps (use_sim_time)")
    p.add_argument("--best-effort", action="store_true", help="publish best-effort instead of reliable")

    p = bag.add_parser("process", help="segment every image of a bag offline into an output bag")
    p.add_argument("bag")
    add_config_args(p)
    p.add_argument("-o", "--out", required=True, help="output bag folder")
    p.add_argument("--topics", nargs="+", help="image topics to process (default: all image topics)")
    p.add_argument("--node-name", default=NODE_NAME, help="namespace of the output topics and params-file section")
    p.add_argument("--no-overlay", action="store_true")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--csv", help="per-frame summaries (default: <out>.csv)")
    p.add_argument("--png-dir", help="also write PNG masks and overlays here")
    p.add_argument("--overwrite", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ai4mars-perception", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("segment", help="segment image files or folders into mask and overlay PNGs")
    add_config_args(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("bench", help="forward time, core pipeline time and end-to-end node latency")
    add_config_args(p, overlay=False)
    p.add_argument("--image", help="frame to use (default: random 1024x1024 mono8)")
    p.add_argument("--size", type=int, default=1024, help="side of the random frame")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no-node", action="store_true", help="skip the end-to-end node measurement")
    p.add_argument("--json", help="also write the report as JSON")
    p.add_argument("--bags", metavar="FRAMES_DIR", help="also time bag process and bag play on these frames")
    p.add_argument("--transport", action="store_true", help="only: 1 MiB frame delivery with and without the profile")
    p.add_argument("--compare-notebook", action="store_true",
                   help="also time fastai learner.predict on --image, the AI4Mars reference notebook's inference path "
                   "(needs fastai)")  # fmt: skip
    p.add_argument("--profile", action="store_true", help="only: ONNX Runtime's kernel time per operator and node")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "bench-validity",
        help="rover and far/sky pixels reported as terrain, with and without "
        "geometry and exclusion masks (frames with AI4Mars MXY and RNG-30m masks)",
    )
    add_config_args(p, overlay=False)
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--json", help="also write the report as JSON")
    p.set_defaults(func=cmd_bench_validity)

    p = sub.add_parser("bench-gpu", help="PyTorch backend on the GPU: fp32, fp16, fp16 + CUDA graph (needs torch)")
    p.add_argument("models", nargs="+", metavar="MODEL.pt", help="TorchScript exports (e.g. at 256² and 1024²)")
    p.add_argument("--image", help="1024² frame to use (default: random mono8)")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--json", help="also write the rows as JSON")
    p.set_defaults(func=cmd_bench_gpu)

    p = sub.add_parser("demo", help="bundled Navcam bag → node over DDS → contact sheet, CSV, latency, output bag")
    p.add_argument("--model", help="ONNX model (default: model_path of the params file, else the shipped model)")
    p.add_argument("--params-file", help="the node's params YAML, given to the demo's node")
    p.add_argument("-p", "--param", action="append", metavar="NAME:=VALUE", help="a node parameter (repeatable)")
    p.add_argument("--frames", help="folder of frames (default: the bundled samples/navcam)")
    p.add_argument("--out", default="demo_output")
    p.add_argument("--rate", type=float, default=1.0, help="frames per second")
    p.set_defaults(func=cmd_demo)

    _bag_parser(sub)
    return parser


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None, user_errors: tuple[type[Exception], ...]) -> int:
    """Parse, run ``args.func``; a user-facing error becomes one sentence on stderr and exit status 2."""
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except user_errors as e:
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point ``ai4mars-perception``; returns the exit status."""
    return dispatch(build_parser(), argv, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
