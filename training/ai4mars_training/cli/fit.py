"""``ai4mars-train fit | lr-find | bench``: train, find a learning rate, measure training throughput."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ai4mars_training.cli.common import fit_args, fit_config


def cmd_fit(a: argparse.Namespace) -> int:
    from ai4mars_training.fit.train import fit

    run = fit(fit_config(a))
    if run:
        best = run["best_epoch"]
        print(f"best epoch {int(best.get('epoch', -1))}: mIoU {best.get('miou', float('nan')):.4f}; "
              f"wrote {a.out}/learner.pkl, {a.out}/run.json, {a.out}/history.csv")  # fmt: skip
    return 0


def cmd_lr_find(a: argparse.Namespace) -> int:
    from ai4mars_training.fit.train import lr_find

    plot = Path(a.out) / "lr_find.png"
    Path(a.out).mkdir(parents=True, exist_ok=True)
    print(f"suggested learning rate {lr_find(fit_config(a), plot):.2e}; plot in {plot}")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from ai4mars_perception.core.model.cpu_info import cpu_description
    from ai4mars_training.fit.bench import bench

    cpu = cpu_description()
    print(f"cpu: {cpu['summary']}, {__import__('os').cpu_count()} cores", flush=True)
    cfg = fit_config(a)
    cfg.pretrained, cfg.pretrained_weights = False, None  # throughput does not depend on the start weights
    loaders = tuple(a.loaders.split(","))
    rows = bench(cfg, a.precisions.split(","), [int(c) for c in a.crops.split(",")], a.steps, loaders=loaders)
    base = next((r for r in rows if r["precision"] == "fp32"), None)
    fp32 = {(r["loader"], r["crop"]): r["images_per_s"] for r in rows if r["precision"] == "fp32"}
    first = {(r["crop"], r["precision"]): r["images_per_s"] for r in rows if r["loader"] == loaders[0]}
    for r in rows:
        key = (r["loader"], r["crop"])
        r["speedup_vs_fp32_same_crop"] = round(r["images_per_s"] / fp32[key], 2) if key in fp32 else None
        r[f"speedup_vs_{loaders[0]}_loader"] = round(r["images_per_s"] / first[(r["crop"], r["precision"])], 2)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(
            json.dumps({"rows": rows, "cpu": cpu, "threads": __import__("torch").get_num_threads()}, indent=2)
        )
    if base:
        best = max(rows, key=lambda r: r["images_per_s"])
        print(f"fastest: {best['precision']} crop {best['crop']}², {best['images_per_s'] / base['images_per_s']:.2f}x "
              f"the fp32 crop-{base['crop']}² images/s")  # fmt: skip
    return 0


def add_commands(sub) -> None:
    """Register this group's subcommands on the ``ai4mars-train`` parser."""
    p = sub.add_parser("fit", help="train unet_learner(dls, resnet18)")
    fit_args(p)
    p.set_defaults(func=cmd_fit)
    p = sub.add_parser("lr-find", help="fastai learning-rate finder (plot + suggestion)")
    fit_args(p)
    p.set_defaults(func=cmd_lr_find)
    p = sub.add_parser("bench", help="training throughput (images/s) per precision and crop, on real frames")
    fit_args(p)
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16, fp16 (GPU)")
    p.add_argument("--loaders", default="fastai", help="comma-separated: fastai, device (see fit --loader)")
    p.add_argument("--crops", default="128", help="comma-separated crop sizes (0: whole frames)")
    p.add_argument("--steps", type=int, default=6, help="timed steps per configuration (after 2 warm-up steps)")
    p.add_argument("--json", help="also write the table to this JSON file")
    p.set_defaults(func=cmd_bench)
