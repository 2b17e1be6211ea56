"""``ai4mars-train fit`` and ``lr-find``: train the U-Net ResNet-18 with fastai."""

from __future__ import annotations

import contextlib
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from fastai.callback.progress import CSVLogger
from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback
from fastai.distributed import num_distrib, rank_distrib
from fastai.torch_core import set_seed

from ai4mars_training.data.dataset import file_sha256, scan, split
from ai4mars_training.errors import TrainingError
from ai4mars_training.fit.callbacks import BF16Autocast, SaveLast, Throughput, TimeBudget, explain_precision
from ai4mars_training.fit.distributed import data_parallel
from ai4mars_training.fit.ema import EMA
from ai4mars_training.fit.learner import (
    DataConfig,
    SegLoss,
    build_dls,
    build_learner,
    load_model_weights,
    median_frequency_weights,
)
from ai4mars_training.fit.onnx_weights import load_onnx_weights
from ai4mars_training.fit.profiling import StepProfiler
from ai4mars_training.plots import plot_history


@dataclass
class FitConfig:
    data: str
    out: str = "runs/latest"
    size: int = 256
    batch_size: int = 8
    epochs: int = 10
    lr: float = 1e-3
    freeze_epochs: int = 1
    valid_pct: float = 0.1
    seed: int = 42
    pretrained: bool = True
    pretrained_weights: str | None = None
    init_from: str | None = None
    null_class: bool = False
    ignore_rover: bool = False
    ignore_range: bool = False
    loss: str = "ce"
    focal_gamma: float = 2.0
    class_weights: str = "auto"
    augment: bool = True
    precision: str = "auto"
    crop: int = 0
    time_budget: float = 0.0
    patience: int = 0
    resume: bool = False
    num_workers: int = 0
    limit: int = 0
    profile_steps: int = 0
    save_last: bool = True
    optimizer: str = "adam"
    loader: str = "fastai"  # fastai (worker processes, host augmentation) | device (frames and augmentation on it)
    aug_strength: float = 1.0  # device loader: scales its augmentation ranges (0: none)
    ema: float = 0.0  # EMA decay of the weights per step (0: off); validation and export use the average


def _weights(cfg: FitConfig, train) -> torch.Tensor | None:
    if cfg.class_weights == "none":
        return None
    if cfg.class_weights == "auto":
        return median_frequency_weights(train, cfg.null_class)
    try:
        w = [float(v) for v in cfg.class_weights.split(",")]
    except ValueError:
        raise TrainingError("--class-weights takes auto, none, or comma-separated numbers") from None
    n = 5 if cfg.null_class else 4
    if len(w) != n or min(w) <= 0:
        raise TrainingError(f"--class-weights needs {n} positive numbers")
    return torch.tensor(w)


def prepare(cfg: FitConfig):
    """Scan, split, build loaders and learner. Returns (learn, info)."""
    cfg.out = str(Path(cfg.out).resolve())  # fastai joins learn.path with file names
    # bit-for-bit reproducible on the CPU; on a GPU cuDNN's autotuned (non-deterministic) kernels are worth more
    cuda = torch.cuda.is_available()
    set_seed(cfg.seed, reproducible=not cuda)
    torch.backends.cudnn.benchmark = cuda
    found = scan(cfg.data)
    samples = found.samples[: cfg.limit] if cfg.limit else found.samples
    train, valid = split(samples, cfg.valid_pct, cfg.seed)
    if cfg.crop and not 16 <= cfg.crop <= cfg.size:
        raise TrainingError(f"--crop must be between 16 and the training size {cfg.size}")
    dcfg = DataConfig(
        cfg.size,
        cfg.batch_size,
        cfg.null_class,
        cfg.ignore_rover,
        cfg.ignore_range,
        cfg.augment,
        cfg.num_workers,
        cfg.crop,
    )
    dls = build_dls(train, valid, dcfg, cfg.seed)
    weights = _weights(cfg, train)
    if cfg.loss not in ("ce", "focal", "dice"):
        raise TrainingError(f"--loss must be ce, focal or dice, not {cfg.loss!r}")
    loss = SegLoss(weights, cfg.focal_gamma if cfg.loss == "focal" else 0.0, dice=cfg.loss == "dice")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    init = Path(cfg.init_from) if cfg.init_from else None
    if init is not None and not init.is_file():
        raise TrainingError(f"--init-from: {init} does not exist")
    # with --init-from every weight comes from that file: no encoder weights to fetch, no frozen phase
    pretrained = init is None and (cfg.pretrained or cfg.pretrained_weights is not None)
    weights_path = Path(cfg.pretrained_weights) if cfg.pretrained_weights and init is None else None
    if weights_path is not None and not weights_path.is_file():
        raise TrainingError(f"pretrained weights file {weights_path} does not exist")
    learn = build_learner(dls, 5 if cfg.null_class else 4, pretrained, weights_path, loss, out, cfg.optimizer)
    if cfg.loader not in ("fastai", "device"):
        raise TrainingError(f"--loader must be fastai or device, not {cfg.loader!r}")
    if cfg.loader == "device":  # the learner was built on the fastai loaders; it trains on the device ones
        learn.export_dls = learn.dls
        learn.dls = device_loaders(train, valid, cfg, learn.dls.device)
    init_report = None
    if init is not None and init.suffix.lower() == ".onnx":  # a shipped model: rebuild its folded BatchNorms
        init_report = load_onnx_weights(learn.model, init, _calibration_batches(learn, 64))
    elif init is not None:
        load_model_weights(learn, init)
    info = {
        "scan": found.summary(),
        "train_pairs": len(train),
        "valid_pairs": len(valid),
        "valid_ids_sha1": _ids_digest([s.id for s in valid]),
        "class_weights": None if weights is None else [round(float(v), 4) for v in weights],
        "pretrained": "file" if weights_path else ("imagenet" if pretrained else "none"),
        "init_from": None if init is None else {"path": str(init.resolve()), "sha256": file_sha256(init)},
    }
    if init_report is not None:
        info["init_from"]["onnx"] = init_report
    return learn, info


def device_loaders(train, valid, cfg: FitConfig, device):
    """``--loader device``: the frames decoded once onto ``device``, augmented there a batch at a time."""
    from ai4mars_training.data.device_loader import DeviceAugment, device_dataloaders
    from ai4mars_training.fit.learner import ReadImage, ReadLabel

    aug = DeviceAugment().scaled(cfg.aug_strength) if cfg.augment else None
    crop = cfg.crop if cfg.crop and cfg.crop < cfg.size else 0
    return device_dataloaders(train, valid, ReadImage(cfg.size), ReadLabel(cfg.size, cfg.null_class, cfg.ignore_rover,
                              cfg.ignore_range), cfg.batch_size, crop, aug, cfg.seed, device)  # fmt: skip


def _calibration_batches(learn, frames: int) -> list:
    """Training batches (images only) holding at least ``frames`` frames: what rebuilds an ONNX model's folded
    BatchNorms."""
    out = []
    for xb, _ in learn.dls.train:
        out.append(xb)
        if sum(len(b) for b in out) >= frames:
            break
    return out


def with_precision(learn, choice: str):
    """Apply ``--precision`` to a learner: fastai's fp16 on a GPU, our bf16 autocast callback, or fp32.
    Says which precision it chose and why. Returns (learner, resolved precision, the reason)."""
    try:
        precision, reason = explain_precision(choice, torch.cuda.is_available())
    except ValueError as e:
        raise TrainingError(str(e)) from None
    print(f"precision: {precision} ({reason})", flush=True)
    if precision == "fp16":
        learn = learn.to_fp16()
    elif precision == "bf16":
        learn.add_cb(BF16Autocast())
    return learn, precision, reason


def _ids_digest(ids: list[str]) -> str:
    import hashlib

    return hashlib.sha1("\n".join(sorted(ids)).encode()).hexdigest()


def fit(cfg: FitConfig) -> dict:
    """Train; on rank 0 write models/best.pth, learner.pkl, history.csv and run.json into ``cfg.out``."""
    t0, start = time.time(), time.monotonic()
    learn, info = prepare(cfg)
    out = Path(cfg.out)  # absolute since prepare()
    rank0 = rank_distrib() == 0
    distributed = num_distrib() > 1
    # fastai saves only on rank 0 but loads (with a barrier) on every rank: checkpoints on all ranks.
    throughput = Throughput()
    profiler = StepProfiler(cfg.profile_steps) if cfg.profile_steps else None
    cbs = [throughput, SaveModelCallback(monitor="miou", comp=np.greater, fname="best", with_opt=False)]
    cbs += [SaveLast()] if cfg.save_last else []
    cbs += [profiler] if profiler else []
    if rank0:
        cbs.append(CSVLogger(fname="history.csv", append=cfg.resume))  # relative to learn.path = out
    if cfg.patience and not distributed:
        cbs.append(EarlyStoppingCallback(monitor="miou", comp=np.greater, patience=cfg.patience))
    learn, precision, info["precision_reason"] = with_precision(learn, cfg.precision)
    info["precision"] = precision
    # the budget counts from the start of fit(); it shapes the (unfrozen) one-cycle phase
    budget = TimeBudget(cfg.time_budget, start=start) if cfg.time_budget else None
    if cfg.ema:
        cbs.append(EMA(cfg.ema))
    if cfg.resume:
        last = out / "models" / "last.pth"
        if not last.is_file():
            raise TrainingError(f"--resume: no checkpoint {last} from an earlier run")
        learn.load("last", with_opt=True)
    ctx = data_parallel(learn) if distributed else contextlib.nullcontext()
    with ctx:
        main_cbs = cbs + ([budget] if budget else [])
        if info["pretrained"] != "none" and cfg.freeze_epochs and not cfg.resume:
            # fastai's fine_tune, spelled out so that the time budget shapes only the unfrozen phase
            learn.freeze()
            learn.fit_one_cycle(cfg.freeze_epochs, slice(cfg.lr), pct_start=0.99, cbs=cbs)
            learn.unfreeze()
            learn.fit_one_cycle(cfg.epochs, slice(cfg.lr / 200, cfg.lr / 2), pct_start=0.3, div=5.0, cbs=main_cbs)
        else:
            learn.unfreeze()
            learn.fit_one_cycle(cfg.epochs, cfg.lr, cbs=main_cbs)
    if not rank0:
        return {}
    # SaveModelCallback has loaded the best weights at the end of fit
    if precision == "fp16":
        learn = learn.to_fp32()
    learn.remove_cb(BF16Autocast)
    learn.dls = getattr(learn, "export_dls", learn.dls)  # a device loader's frames do not belong in the pickle
    learn.export("learner.pkl")  # relative to learn.path = out
    history = _read_history(out / "history.csv")
    best = max(history, key=lambda r: r.get("miou", -1)) if history else {}
    run = {
        "config": asdict(cfg),
        "data": info,
        "best_epoch": best,
        "history": history,
        "seconds": round(time.time() - t0, 1),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.machine()})",
        "world_size": max(1, num_distrib()),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "torch": torch.__version__,
        "precision": precision,
        "time_budget": None if budget is None else {"minutes": cfg.time_budget, "epochs_decided": budget.decided},
        "throughput": throughput.epochs,
        "profile": profiler.summary if profiler else None,
    }
    (out / "run.json").write_text(json.dumps(run, indent=2))
    plot_history(out / "history.csv", out / "history.png", f"{run['device']}, {precision}")
    return run


def _read_history(path: Path) -> list[dict]:
    import csv

    if not path.is_file():
        return []
    rows = []
    for r in csv.DictReader(path.open()):
        row = {}
        for k, v in r.items():
            try:
                row[k] = float(v) if k != "time" else v
            except (TypeError, ValueError):
                row[k] = v
        if isinstance(row.get("epoch"), float):
            rows.append(row)
    return rows


def lr_find(cfg: FitConfig, plot: Path) -> float:
    """fastai's learning-rate finder; saves the loss/lr plot and returns the suggested rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learn, _ = prepare(cfg)
    learn, *_ = with_precision(learn, cfg.precision)
    if not cfg.pretrained and cfg.pretrained_weights is None:
        learn.unfreeze()
    suggestion = learn.lr_find(show_plot=True)
    plt.savefig(plot, dpi=100)
    plt.close("all")
    return float(suggestion.valley)
