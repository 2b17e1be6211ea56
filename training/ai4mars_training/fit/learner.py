"""fastai pieces: data loaders, the U-Net ResNet-18 learner, loss and metrics.

Images are read and resized exactly as the node does it (OpenCV, INTER_AREA, gray replicated to 3
channels, ImageNet mean/std), so what is trained is what ships.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from fastai.vision.all import (
    DataBlock,
    FuncSplitter,
    ImageBlock,
    Learner,
    MaskBlock,
    Metric,
    Normalize,
    RandomCrop,
    aug_transforms,
    imagenet_stats,
    resnet18,
    unet_learner,
)
from torch import nn

from ai4mars_perception.core.classes import CLASS_NAMES, IGNORE_INDEX, NULL_CLASS_NAME, NUM_CLASSES
from ai4mars_training.data.dataset import Sample, read_label
from ai4mars_training.errors import TrainingError
from ai4mars_training.evaluate.metrics import confusion, summarize
from ai4mars_training.fit.optim import optimizer_func


class ReadImage:
    """Sample → uint8 (size, size, 3) array: gray replicated, resized with INTER_AREA like the node."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, s: Sample) -> np.ndarray:
        gray = cv2.imread(str(s.image), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise TrainingError(f"image {s.image} is not readable")
        if gray.shape != (self.size, self.size):
            gray = cv2.resize(gray, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return np.repeat(gray[..., None], 3, axis=2)


class ReadLabel:
    """Sample → uint8 (size, size) label, nearest-neighbour resized, 255 ignored (or class 4)."""

    def __init__(self, size: int, null_class: bool = False, ignore_rover: bool = False, ignore_range: bool = False):
        self.size, self.null_class, self.ignore_rover, self.ignore_range = size, null_class, ignore_rover, ignore_range

    def __call__(self, s: Sample) -> np.ndarray:
        lab = read_label(s, self.null_class, self.ignore_rover, self.ignore_range)
        if lab.shape != (self.size, self.size):
            lab = cv2.resize(lab, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        return lab


class InValid:
    """Splitter predicate: is this sample in the validation set."""

    def __init__(self, ids: set[str]) -> None:
        self.ids = ids

    def __call__(self, s: Sample) -> bool:
        return s.id in self.ids


def class_codes(null_class: bool) -> list[str]:
    return [*CLASS_NAMES, NULL_CLASS_NAME] if null_class else list(CLASS_NAMES)


@dataclass
class DataConfig:
    size: int = 256
    batch_size: int = 8
    null_class: bool = False
    ignore_rover: bool = False
    ignore_range: bool = False
    augment: bool = True
    num_workers: int = 0
    crop: int = 0


def train_crop(size: int) -> RandomCrop:
    """Random ``size``² windows of the full frames (same window for image and mask), training set only:
    no rescaling, so objects keep the scale the node sees; validation keeps whole frames."""
    crop = RandomCrop(size)
    crop.split_idx = 0  # fastai's RandomCrop centre-crops the validation set; we validate on full frames
    return crop


def build_dls(train: list[Sample], valid: list[Sample], cfg: DataConfig, seed: int, device=None):
    """fastai DataLoaders with Navcam-friendly augmentation (flips, small rotation/zoom, lighting), optionally
    on random native-scale crops of the training frames."""
    aug = (
        aug_transforms(do_flip=True, flip_vert=False, max_rotate=5.0, max_zoom=1.1, max_lighting=0.2, max_warp=0.0)
        if cfg.augment
        else []
    )
    block = DataBlock(
        blocks=(ImageBlock, MaskBlock(class_codes(cfg.null_class))),
        item_tfms=[train_crop(cfg.crop)] if cfg.crop and cfg.crop < cfg.size else [],
        get_x=ReadImage(cfg.size),
        get_y=ReadLabel(cfg.size, cfg.null_class, cfg.ignore_rover, cfg.ignore_range),
        splitter=FuncSplitter(InValid({s.id for s in valid})),
        batch_tfms=[*aug, Normalize.from_stats(*imagenet_stats)],
    )
    return block.dataloaders(
        train + valid, bs=cfg.batch_size, num_workers=cfg.num_workers, seed=seed, device=device, drop_last=False
    )


class SegLoss(nn.Module):
    """Cross-entropy (optionally focal, optionally class-weighted) over pixels, label 255 ignored; with ``dice``,
    plus the soft Dice loss averaged over the classes present in the batch (it weighs a rare class like a
    common one)."""

    def __init__(self, weight: torch.Tensor | None = None, gamma: float = 0.0, dice: bool = False) -> None:
        super().__init__()
        self.register_buffer("weight", weight if weight is not None else None)
        self.gamma, self.dice = gamma, dice

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.long()
        ce = F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction="none")
        loss = ce * (1 - torch.exp(-ce)) ** self.gamma if self.gamma > 0 else ce
        valid = (target != IGNORE_INDEX).float()
        if self.weight is not None:
            w = self.weight.to(logits.device, torch.float32)
            valid = valid * w[target.clamp(0, len(w) - 1)]
        total = (loss * valid).sum() / valid.sum().clamp(min=1e-6)
        return total + soft_dice(logits, target) if self.dice else total

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(dim=1)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x, dim=1)


def soft_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice coefficient, averaged over the classes present in ``target`` (255 ignored)."""
    n = logits.shape[1]
    valid = (target != IGNORE_INDEX).unsqueeze(1).float()
    probs = F.softmax(logits.float(), dim=1) * valid
    onehot = F.one_hot(target.clamp(0, n - 1), n).permute(0, 3, 1, 2).float() * valid
    inter, counts = (probs * onehot).sum((0, 2, 3)), onehot.sum((0, 2, 3))
    dice = 1 - (2 * inter + 1) / (probs.sum((0, 2, 3)) + counts + 1)
    present = counts > 0
    return dice[present].mean() if present.any() else dice.sum() * 0


def _nan_to_zero(v: float | None) -> float:
    return 0.0 if v is None or v != v else float(v)


#: Metric name (as in history.csv and the model metadata) → how to read it from metrics.summarize().
_READERS = {
    "miou": lambda s: s["miou"],
    "pixel_acc": lambda s: s["pixel_accuracy"],
    "iou_big_rock": lambda s: s["iou"]["big_rock"],
}


class ConfusionMetric(Metric):
    """One number (miou, pixel_acc, iou_big_rock) from the 4-class confusion matrix accumulated over the
    validation set, 255 ignored, predictions outside the classes counted as misses."""

    def __init__(self, metric: str) -> None:
        if metric not in _READERS:
            raise ValueError(f"unknown metric {metric!r}")
        self.metric = metric

    def reset(self) -> None:
        self.cm = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)

    def accumulate(self, learn: Learner) -> None:
        self.cm += confusion(learn.y.cpu().numpy(), learn.pred.argmax(dim=1).cpu().numpy())

    @property
    def value(self) -> float:
        return _nan_to_zero(_READERS[self.metric](summarize(self.cm, list(CLASS_NAMES))))

    @property
    def name(self) -> str:
        return self.metric


def median_frequency_weights(samples: list[Sample], null_class: bool, limit: int = 1000) -> torch.Tensor:
    """Median-frequency class weights from (up to ``limit``) training labels; absent classes get 1."""
    n = NUM_CLASSES + (1 if null_class else 0)
    counts = np.zeros(n, np.float64)
    step = max(1, len(samples) // limit)
    for s in samples[::step]:
        lab = read_label(s, null_class)
        counts += np.bincount(lab[lab < n].ravel(), minlength=n)[:n]
    freq = counts / max(counts.sum(), 1)
    present = freq > 0
    w = np.ones(n)
    w[present] = np.median(freq[present]) / freq[present]
    return torch.tensor(np.clip(w, 0.1, 10.0), dtype=torch.float32)


def load_encoder_weights(learn: Learner, path: Path) -> None:
    """Load a torchvision resnet18 ImageNet state dict (``.pth``) into the U-Net encoder."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TrainingError(f"pretrained weights {path} could not be read: {e}") from None
    mapping = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    mapped = {}
    for k, v in state.items():
        head, _, rest = k.partition(".")
        if head in mapping:
            mapped[f"{mapping[head]}.{rest}"] = v
    encoder = learn.model[0]
    if not mapped:
        raise TrainingError(f"{path} is not a torchvision resnet18 state dict")
    try:
        missing, unexpected = encoder.load_state_dict(mapped, strict=False)
    except RuntimeError as e:  # shape mismatch: another architecture
        raise TrainingError(f"{path} is not a torchvision resnet18 state dict: {str(e).splitlines()[0]}") from None
    if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
        raise TrainingError(f"{path} is not a torchvision resnet18 state dict")


def load_model_weights(learn: Learner, path: Path) -> None:
    """Load a whole-model state dict (an earlier run's ``models/best.pth``, or ``receive``'s weights) into the U-Net."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TrainingError(f"--init-from {path} could not be read: {e}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):  # fastai's save(with_opt=True)
        state = state["model"]
    try:
        learn.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (RuntimeError, AttributeError) as e:  # other architecture, class count or file kind
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TrainingError(f"--init-from {path} does not fit this U-Net (same classes and --null-class?): "
                            f"{first}") from None  # fmt: skip


def build_learner(dls, n_out: int, pretrained: bool, weights: Path | None, loss: nn.Module, path: Path,
                  optimizer: str = "adam") -> Learner:  # fmt: skip
    """``unet_learner(dls, resnet18)``; ImageNet weights from fastai/torchvision, a local file, or none."""
    metrics = [ConfusionMetric(m) for m in _READERS]
    use_hub = pretrained and weights is None
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        learn = unet_learner(
            dls,
            resnet18,
            n_out=n_out,
            pretrained=use_hub,
            loss_func=loss,
            opt_func=optimizer_func(optimizer),
            metrics=metrics,
            path=path,
            model_dir="models",
        )
    except (OSError, RuntimeError):  # URLError is an OSError; torch.hub wraps some in RuntimeError
        if not use_hub:
            raise
        raise TrainingError(
            "ImageNet weights for resnet18 could not be downloaded (no internet here?): "
            "pass --no-pretrained to train from scratch, or --pretrained-weights PATH to use a local file"
        ) from None
    finally:
        socket.setdefaulttimeout(old)
    if weights is not None:
        load_encoder_weights(learn, weights)
        learn.freeze()
    return learn
