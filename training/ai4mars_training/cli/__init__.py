"""``ai4mars-train``: train, evaluate, export and ship the AI4Mars U-Net ResNet-18 (fastai).

Commands by group: fit, lr-find, bench (cli/fit.py); evaluate (cli/evaluate.py); export, quantize (cli/export.py);
pack, shot, receive, gpu-bench, carry-size (cli/remote.py: the release-model shot on a lent GPU).
"""

from __future__ import annotations

import argparse
import sys

from ai4mars_training.cli import evaluate, export, fit, remote
from ai4mars_training.errors import TrainingError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ai4mars-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (fit, evaluate, export, remote):
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    import warnings

    # torch/fastai/pandas deprecation notices are for library authors, not for users of this CLI
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*mode.chained_assignment.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TrainingError as e:
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
