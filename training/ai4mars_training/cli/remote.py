"""``ai4mars-train pack | shot | receive | gpu-bench | carry-size``: the release-model shot on a lent GPU
(docs/TRAINING.md, "The GPU shot")."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ai4mars_training.cli.common import data_args, fit_args, fit_config
from ai4mars_training.errors import TrainingError


def cmd_pack(a: argparse.Namespace) -> int:
    from ai4mars_training.data.pack import archive, pack

    m = pack(Path(a.data), Path(a.out), a.quality, a.valid_pct, a.seed, a.limit)
    print(f"packed {m['frames']} frames ({m['train']} train, {m['valid']} valid) into {a.out}: {m['megabytes']} MiB, "
          f"JPEG quality {m['quality']}, mean error {m['mean_abs_error_gray_levels']} gray levels")  # fmt: skip
    if a.archive:
        tgz = archive(Path(a.out))
        print(f"archived as {tgz}: {tgz.stat().st_size / 2**20:.1f} MiB (carry this file)")
    return 0


def cmd_shot(a: argparse.Namespace) -> int:
    from ai4mars_training.remote.shot import shot

    run = shot(fit_config(a), Path(a.shot_out), a.bench_repeats, _sizes(a.bench_inputs))
    best = run["best_epoch"]
    print(
        f"shot: best epoch {int(best.get('epoch', -1))} mIoU {best.get('miou', float('nan')):.4f}; "
        f"{len(run['weights']['parts'])} weight parts; {run['shot_seconds']:.0f} s in all; wrote {a.shot_out}"
    )
    return 0


def cmd_receive(a: argparse.Namespace) -> int:
    from ai4mars_training.remote.receive import receive

    run = receive(Path(a.shot), Path(a.data), Path(a.out))
    print(
        f"received the GPU run ({run.get('device')}): wrote {a.out}/learner.pkl and run.json; "
        f"next: ai4mars-train export --run {a.out} --out models/... --fp16-weights"
    )
    return 0


def cmd_gpu_bench(a: argparse.Namespace) -> int:
    from ai4mars_training.remote.shot import gpu_bench, untrained_unet

    what = "the recipe's U-Net with random weights (timings do not depend on them)"
    result = {"model": what, **gpu_bench(untrained_unet(), a.repeats, _sizes(a.inputs))}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2))
    print(f"gpu-bench: {len(result['rows'])} rows on {result['device']} -> {a.out}")
    return 0


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise TrainingError(f"model input sizes are comma-separated whole numbers, not {text!r}") from None
    if not sizes or min(sizes) < 32 or any(s % 32 for s in sizes):
        raise TrainingError(f"model input sizes must be multiples of 32 (the U-Net downsamples 32x), not {text!r}")
    return sizes


def cmd_carry_size(a: argparse.Namespace) -> int:
    from ai4mars_training.remote.transfer import MAX_TREE_BYTES, tree_bytes

    n = tree_bytes(Path(a.root).resolve(), a.carry)
    print(json.dumps({"mib": round(n / 2**20, 2), "limit_mib": MAX_TREE_BYTES // 2**20, "carry": a.carry}))
    if n > MAX_TREE_BYTES:
        raise TrainingError(f"a device call would send {n / 2**20:.1f} MiB (limit 64 MiB): "
                            "hold the shipped models out of the tree (training/gpu/tree.sh hold) and carry the "
                            "pack as one archive (make gpu-pack writes .data/pack.tgz)")  # fmt: skip
    return 0


def add_commands(sub) -> None:
    """Register the subcommands on the ``ai4mars-train`` parser."""
    p = sub.add_parser("pack", help="training data in the compact form carried to the GPU machine")
    data_args(p)
    p.add_argument("--out", required=True, help="new folder to write (AI4Mars layout + manifest.json)")
    p.add_argument("--quality", type=int, default=75, help="JPEG quality of the single-channel frames")
    p.add_argument("--limit", type=int, default=0, help="only the first N labelled pairs (rehearsals)")
    p.add_argument("--archive", action="store_true", help="also write OUT.tgz, the one file a device call carries")
    p.set_defaults(func=cmd_pack)
    p = sub.add_parser("shot", help="the GPU half: train within --time-budget on packed data, write what returns")
    fit_args(p)
    p.add_argument("--shot-out", required=True, help="the folder that comes back (the device's $OUT)")
    p.add_argument("--bench-repeats", type=int, default=200, help="frames per inference benchmark variant")
    p.add_argument("--bench-inputs", default="256,1024", help="model input sizes the inference benchmark times")
    p.set_defaults(func=cmd_shot)
    p = sub.add_parser("receive", help="the local half: verify, reassemble and rebuild the learner of a GPU shot")
    p.add_argument("--shot", required=True, help="the folder that came back from the GPU machine")
    p.add_argument("--data", required=True, help="the original AI4Mars data (same split as the packed data)")
    p.add_argument("--out", required=True, help="run folder to write (learner.pkl, run.json, history.csv)")
    p.set_defaults(func=cmd_receive)
    p = sub.add_parser(
        "gpu-bench",
        help="the GPU shot's inference benchmark alone (core device path, batch 1; "
        "the recipe's U-Net with random weights: trained models via ai4mars-perception bench-gpu)",
    )
    p.add_argument("--repeats", type=int, default=200, help="frames per variant")
    p.add_argument("--inputs", default="256,1024", help="model input sizes to time (comma-separated)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.set_defaults(func=cmd_gpu_bench)
    p = sub.add_parser("carry-size", help="MiB a device call would send from this checkout (limit 64 MiB)")
    p.add_argument("--root", default=".", help="the checkout")
    p.add_argument("carry", nargs="*", help="ignored paths the call would carry (e.g. .whl .data)")
    p.set_defaults(func=cmd_carry_size)
