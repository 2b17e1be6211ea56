"""``ai4mars-perception``: segment files, benchmark, and rosbag tools — no ROS graph needed except for ``bag play``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai4mars_perception.runtime_env import default_model_path, prepare_ros_environment


class CliError(Exception):
    """A user-facing error: printed as one sentence, exit status 2."""


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="ONNX model (default: the shipped models/ai4mars_unet_r18.onnx)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def _segmenter(args: argparse.Namespace):
    from ai4mars_perception.segmenter import ModelLoadError, Segmenter

    try:
        seg = Segmenter(args.model or default_model_path(), args.device)
    except ModelLoadError as e:
        raise CliError(str(e)) from None
    if getattr(args, "rover_mask", None):
        import cv2

        rover = cv2.imread(args.rover_mask, cv2.IMREAD_GRAYSCALE)
        if rover is None:
            raise CliError(f"rover mask {args.rover_mask} is not a readable image")
        seg.set_rover_mask(rover)
    return seg


def cmd_segment(args: argparse.Namespace) -> int:
    from ai4mars_perception.segment_files import segment_files

    failures = segment_files(_segmenter(args), args.inputs, Path(args.out), args.alpha)
    for path, reason in failures:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    print(f"wrote masks and overlays to {args.out}; {len(failures)} file(s) failed")
    return 1 if failures else 0


def cmd_bench(args: argparse.Namespace) -> int:
    import numpy as np

    from ai4mars_perception.benchmark import format_report, run_benchmark
    from ai4mars_perception.image_codec import ImageDecodeError, read_image_file

    if args.transport:
        from ai4mars_perception.benchmark import bench_transport

        print("publisher profile  publisher QoS   received by a best-effort subscriber (1 MiB frames, 10 Hz)")
        for r in bench_transport():
            print(f"{r['publisher_profile']:<18} {r['publisher_qos']:<15} {r['received']}/{r['sent']}")
        return 0
    if args.image:
        try:
            frame = read_image_file(args.image)
        except ImageDecodeError as e:
            raise CliError(str(e)) from None
    else:
        frame = np.random.default_rng(0).integers(0, 256, (args.size, args.size), np.uint8)
    model = args.model or str(default_model_path())
    _segmenter(args)  # fail early with a clear message
    out = Path(args.json) if args.json else None
    bags = Path(args.bags) if args.bags else None
    report = run_benchmark(model, frame, args.repeats, args.device, not args.no_node, out, bags)
    print(format_report(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ai4mars-perception", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("segment", help="segment image files or folders into mask and overlay PNGs")
    _model_arg(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    p.add_argument("--rover-mask", help="rover mask image (non-zero = rover), reported as unknown")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("bench", help="forward time, core pipeline time and end-to-end node latency")
    _model_arg(p)
    p.add_argument("--image", help="frame to use (default: random 1024x1024 mono8)")
    p.add_argument("--size", type=int, default=1024, help="side of the random frame")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no-node", action="store_true", help="skip the end-to-end node measurement")
    p.add_argument("--json", help="also write the report as JSON")
    p.add_argument("--bags", metavar="FRAMES_DIR", help="also time bag process and bag play on these frames")
    p.add_argument("--transport", action="store_true", help="only: 1 MiB frame delivery with and without the profile")
    p.set_defaults(func=cmd_bench)

    from ai4mars_perception.bag_tools import add_parser as add_bag_parser

    add_bag_parser(sub, _model_arg, _segmenter)
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
    """Entry point; returns the exit status."""
    prepare_ros_environment()  # before any sub-command starts DDS (bench, bag play)
    return dispatch(build_parser(), argv, (CliError,))


if __name__ == "__main__":
    sys.exit(main())
