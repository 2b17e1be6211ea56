"""What several ``ai4mars-train`` commands share: the data and fit options and the FitConfig they make."""

from __future__ import annotations

import argparse


def data_args(p: argparse.ArgumentParser) -> None:
    """Where the labelled frames are and how they split."""
    p.add_argument("--data", required=True, help="AI4Mars root (with msl/images/edr and msl/labels)")
    p.add_argument("--valid-pct", type=float, default=0.1, help="validation fraction of the training labels")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--ignore-rover", action="store_true", help="treat rover pixels (MXY masks) as no label")
    p.add_argument("--ignore-range", action="store_true", help="treat pixels beyond 30 m (RNG masks) as no label")


def fit_args(p: argparse.ArgumentParser) -> None:
    """Every ``fit`` option (also taken by lr-find, bench and shot)."""
    data_args(p)
    p.add_argument("--out", default="runs/latest", help="run folder (checkpoints, logs, learner.pkl, run.json)")
    p.add_argument("--size", type=int, default=256, help="training image size (square)")
    p.add_argument("--bs", type=int, default=8, help="batch size (per process)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (see lr-find)")
    p.add_argument("--freeze-epochs", type=int, default=1, help="epochs with a frozen encoder first (pretrained only)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--pretrained", dest="pretrained", action="store_true", default=True,
                   help="ImageNet encoder weights via fastai/torchvision (needs internet), the default")  # fmt: skip
    g.add_argument("--no-pretrained", dest="pretrained", action="store_false", help="train from scratch")
    p.add_argument("--pretrained-weights", help="local torchvision resnet18 ImageNet state dict (.pth)")
    p.add_argument("--init-from", metavar="PTH|ONNX",
                   help="start from an earlier run's whole-model weights (models/best.pth) or an exported model "
                   "(models/ai4mars_unet_r18.onnx: fine-tune the shipped model); a new one-cycle schedule")  # fmt: skip
    p.add_argument("--null-class", action="store_true", help="reference notebook set-up: label 255 as a 5th class")
    p.add_argument("--loss", choices=("ce", "focal", "dice"), default="ce",
                   help="cross-entropy; focal; dice = cross-entropy + soft Dice over the classes present")  # fmt: skip
    p.add_argument("--focal-gamma", type=float, default=2.0)
    p.add_argument("--class-weights", default="auto", help="auto (median frequency), none, or w0,w1,w2,w3")
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="auto: fp16 on a GPU, bf16 autocast + channels_last on a CPU with AVX512-BF16/AMX, "
                   "else fp32")  # fmt: skip
    p.add_argument("--crop", type=int, default=0, help="train on random N x N windows of the frames (no rescaling); "
                   "validation uses whole frames")  # fmt: skip
    p.add_argument("--time-budget", type=float, default=0.0, metavar="MINUTES",
                   help="fit the one-cycle schedule into this wall-clock time; --epochs is then the upper "
                   "bound")  # fmt: skip
    p.add_argument("--patience", type=int, default=0, help="early stopping patience in epochs (0: off)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/models/last.pth")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--limit", type=int, default=0, help="use only the first N labelled pairs (smoke tests)")
    p.add_argument("--loader", choices=("fastai", "device"), default="fastai",
                   help="fastai: worker processes augment on the host; device: frames decoded once onto the "
                   "training device and augmented there a batch at a time (no per-batch copy)")  # fmt: skip
    p.add_argument("--aug-strength", type=float, default=1.0, help="--loader device: scale of its augmentation")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="keep an EMA of the weights (e.g. 0.999): validation, checkpoints, export use it")  # fmt: skip
    p.add_argument("--optimizer", choices=("adam", "adamw-fused"), default="adam",
                   help="fastai's Adam, or the same update by PyTorch's fused AdamW (less host work)")  # fmt: skip
    p.add_argument("--profile-steps", type=int, default=0, metavar="N",
                   help="profile N training steps of the first epoch after 20 warm-up steps (torch.profiler): top "
                   "operators to the log, a summary to run.json")  # fmt: skip


def fit_config(a: argparse.Namespace):
    """The :class:`~ai4mars_training.fit.train.FitConfig` of parsed fit options."""
    from ai4mars_training.fit.train import FitConfig

    return FitConfig(
        data=a.data, out=a.out, size=a.size, batch_size=a.bs, epochs=a.epochs, lr=a.lr, freeze_epochs=a.freeze_epochs,
        valid_pct=a.valid_pct, seed=a.seed, pretrained=a.pretrained, pretrained_weights=a.pretrained_weights,
        init_from=a.init_from, null_class=a.null_class, ignore_rover=a.ignore_rover, ignore_range=a.ignore_range,
        loss=a.loss,
        focal_gamma=a.focal_gamma, class_weights=a.class_weights, augment=a.augment, precision=a.precision,
        crop=a.crop, time_budget=a.time_budget,
        patience=a.patience, resume=a.resume, num_workers=a.workers, limit=a.limit, profile_steps=a.profile_steps,
        optimizer=a.optimizer, loader=a.loader, aug_strength=a.aug_strength, ema=a.ema,
    )  # fmt: skip
