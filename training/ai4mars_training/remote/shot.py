"""The release-model GPU shot (``training/gpu/shot.sh`` calls :func:`shot`): on the lent GPU machine, check the
packed data, train with a wall-clock budget, keep the best checkpoint by validation mIoU, and leave in the output
folder what may come back: the best weights as fp16 parts with checksums, ``history.csv``, ``run.json`` (the fit
record, the throughput, the GPU inference benchmark) and the log."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from ai4mars_training.data.pack import verify
from ai4mars_training.errors import TrainingError
from ai4mars_training.fit.train import FitConfig, fit
from ai4mars_training.remote.transfer import check_outgoing, split_state_dict


def untrained_unet(n_out: int = 4, size: int = 256) -> torch.nn.Module:
    """The recipe's network (``unet_learner(dls, resnet18)``'s model) with random weights: for timings, which do
    not depend on the weight values, where the trained weights cannot travel."""
    from fastai.vision.all import create_unet_model, resnet18

    return create_unet_model(resnet18, n_out, (size, size), pretrained=False)


BENCH_INPUTS = (256, 1024)


def gpu_bench(model: torch.nn.Module, repeats: int, inputs: tuple[int, ...] = BENCH_INPUTS) -> dict:
    """Inference through the core's device path: 1024² mono8 frame in, mask out, at each model input size (256² and
    1024² on the GPU; the CPU rehearsal uses small ones). The model is exported to TorchScript at each size and
    timed by ``ai4mars-perception bench-gpu``, run as a program (the training package imports the core only)."""
    from ai4mars_perception.core.model.metadata import InputSpec, ModelMetadata
    from ai4mars_training.export.export import export_torchscript

    model = model.eval().float().cpu()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for size in inputs:
            paths.append(Path(tmp) / f"model{size}.pt")
            meta = ModelMetadata(model_version=f"shot-{size}", input=InputSpec(height=size, width=size))
            export_torchscript(model, paths[-1], size, meta)
        report = Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "ai4mars_perception.tools.cli", "bench-gpu", *map(str, paths), "--repeats",
               str(repeats), "--json", str(report)]  # fmt: skip
        done = subprocess.run(cmd)  # its progress lines go to this process's output (the shot's train.log)
        if done.returncode != 0 or not report.is_file():
            raise TrainingError(f"the inference benchmark failed (exit {done.returncode}): {' '.join(cmd)}")
        return json.loads(report.read_text())


def shot(cfg: FitConfig, out: Path, bench_repeats: int = 200, bench_inputs: tuple[int, ...] = BENCH_INPUTS) -> dict:
    """The GPU half: ``cfg.data`` is a packed folder (its manifest's split is used), ``cfg.time_budget`` the
    training minutes; the run folder is a scratch one and ``out`` receives only what comes back."""
    t0 = time.monotonic()
    pack = Path(cfg.data)
    manifest = verify(pack)
    print(f"shot: packed data verified ({manifest['frames']} frames, {manifest['megabytes']} MiB)", flush=True)
    if not cfg.time_budget:
        raise TrainingError("the GPU shot needs --time-budget MINUTES")
    out.mkdir(parents=True, exist_ok=True)
    cfg = start_weights(cfg)
    with tempfile.TemporaryDirectory(prefix="ai4mars-shot-") as scratch:  # checkpoints, learner.pkl: ~0.6 GB
        work = Path(scratch)
        # last.pth (weights + optimizer, ~0.4 GB a save) is only for --resume: a shot's run folder is discarded
        cfg = replace(cfg, out=str(work / "run"), valid_pct=manifest["valid_pct"], seed=manifest["seed"],
                      save_last=False)  # fmt: skip
        run = fit(cfg)
        record = split_state_dict(torch.load(work / "run" / "models" / "best.pth", map_location="cpu"), out)
        shutil.copy(work / "run" / "history.csv", out / "history.csv")
        run["weights"] = record
        run["pack"] = {k: v for k, v in manifest.items() if k != "files"}
        run["gpu"] = _nvidia_smi()
        (out / "run.json").write_text(json.dumps(run, indent=2))  # written before the benchmark: the weights come first
        try:
            from ai4mars_training.export.export import load_learner_file

            run["inference_bench"] = gpu_bench(
                load_learner_file(work / "run" / "learner.pkl").model, bench_repeats, bench_inputs
            )
        except Exception as e:  # the trained weights matter more than the benchmark: record and go on
            run["inference_bench"] = {"error": f"{type(e).__name__}: {e}"}
        run["shot_seconds"] = round(time.monotonic() - t0, 1)
        (out / "run.json").write_text(json.dumps(run, indent=2))
    check_outgoing(out)
    return run


def start_weights(cfg: FitConfig) -> FitConfig:
    """Start weights that an earlier command was to leave on the GPU machine (``--init-from``): when they are
    not there (the machine was given back in between), the shot trains from scratch rather than failing."""
    if cfg.init_from and not Path(cfg.init_from).is_file():
        print(f"shot: start weights {cfg.init_from} are not on this machine: training from scratch", flush=True)
        return replace(cfg, init_from=None)
    return cfg


def _nvidia_smi() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
