"""A training data path that lives on the device (``fit --loader device``): the frames are decoded once into one
uint8 tensor on the GPU (6 000 x 256² ≈ 0.4 GB, the labels as much again), and every batch is cut, augmented and
normalised there: no worker processes, no host-to-device copy per batch. The same code runs on the CPU (device =
cpu), which is how ``make test`` rehearses it.

Augmentation, a batch at a time, each frame its own draw: horizontal flip, rotation, random resized crops (scale
0.75–1.25 of the output window; with ``--crop`` the window is a crop of the frame at native scale), brightness,
contrast, gamma and Gaussian noise. Images are sampled bilinearly, labels with nearest neighbour (255 = ignore
fills what falls outside the frame). Validation batches are whole frames, untouched.

The batches are what fastai's Learner expects (``TensorImage`` normalised with ImageNet statistics, gray
replicated to 3 channels; ``TensorMask``): Learner, callbacks and one-cycle stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.torch_core import TensorImage, TensorMask
from fastai.vision.all import imagenet_stats
from tqdm import tqdm

from ai4mars_perception.core.classes import IGNORE_INDEX
from ai4mars_training.data.dataset import Sample


@dataclass(frozen=True)
class DeviceAugment:
    """Strength of the on-device augmentation (``fit --aug-strength`` scales the photometric and geometric
    ranges; 0 = none)."""

    flip: bool = True
    max_rotate: float = 10.0  # degrees
    scale: tuple[float, float] = (0.75, 1.25)  # random resized crop: window size relative to the output
    brightness: float = 0.2
    contrast: float = 0.2
    gamma: float = 0.2
    noise: float = 0.02  # standard deviation, in [0, 1] intensity units

    def scaled(self, strength: float) -> DeviceAugment:
        lo, hi = self.scale
        return DeviceAugment(self.flip and strength > 0, self.max_rotate * strength,
                             (1 - (1 - lo) * strength, 1 + (hi - 1) * strength), self.brightness * strength,
                             self.contrast * strength, self.gamma * strength, self.noise * strength)  # fmt: skip


def decode_to_device(samples: list[Sample], read_image, read_label, device, desc: str = "decode") -> tuple:
    """(images (N, H, W) uint8 gray, labels (N, H, W) uint8) on ``device``, each frame read once by the same
    readers as the fastai path (OpenCV, INTER_AREA, like the node)."""
    first = read_image(samples[0])[..., 0]
    images = torch.empty((len(samples), *first.shape), dtype=torch.uint8, device=device)
    labels = torch.empty_like(images)
    for i, s in enumerate(tqdm(samples, desc=desc, unit="frame", leave=False)):
        images[i] = torch.from_numpy(np.ascontiguousarray(read_image(s)[..., 0]))
        labels[i] = torch.from_numpy(np.ascontiguousarray(read_label(s)))
    return images, labels


def augment(x: torch.Tensor, y: torch.Tensor, out: int, aug: DeviceAugment, gen: torch.Generator,
            native: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """A batch ``x`` (B, H, W) uint8 and ``y`` (B, H, W) uint8 → (B, 1, out, out) float in [0, 1] and (B, out,
    out) long. ``native``: the output window's size as a fraction of the frame (``crop / size``)."""
    b, dev = x.shape[0], x.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=gen, device=dev)

    angle = torch.deg2rad(uniform(-aug.max_rotate, aug.max_rotate))
    s = native * uniform(*aug.scale)  # window size relative to the frame (normalised coordinates span 2)
    mirror = torch.rand(b, generator=gen, device=dev) < 0.5
    flip = torch.where(mirror, -1.0, 1.0) if aug.flip else torch.ones(b, device=dev)
    reach = (1 - s).clamp(min=0)  # the window's centre stays where the window fits inside the frame
    tx, ty = uniform(-1, 1) * reach, uniform(-1, 1) * reach
    cos, sin = torch.cos(angle) * s, torch.sin(angle) * s
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, (b, 1, out, out), align_corners=False)
    img = F.grid_sample(x[:, None].float() / 255.0, grid, mode="bilinear", padding_mode="reflection",
                        align_corners=False)  # fmt: skip
    lab = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    inside = F.grid_sample(torch.ones_like(y[:, None], dtype=torch.float32), grid, mode="nearest",
                           padding_mode="zeros", align_corners=False)  # fmt: skip
    lab = torch.where(inside > 0.5, lab, float(IGNORE_INDEX))[:, 0].long()
    gamma = torch.exp(uniform(-aug.gamma, aug.gamma))[:, None, None, None]
    contrast = (1 + uniform(-aug.contrast, aug.contrast))[:, None, None, None]
    bright = uniform(-aug.brightness, aug.brightness)[:, None, None, None]
    img = (img.clamp(1e-6, 1) ** gamma - 0.5) * contrast + 0.5 + bright
    if aug.noise > 0:
        img = img + aug.noise * torch.randn(img.shape, generator=gen, device=dev)
    return img.clamp(0, 1), lab


class DeviceSegDL(DataLoader):
    """fastai DataLoader over frames already on the device: batches are index selections of the tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, bs: int, train: bool, out: int,
                 aug: DeviceAugment | None, seed: int, **kwargs) -> None:  # fmt: skip
        super().__init__(dataset=range(len(images)), bs=bs, shuffle=train, drop_last=train, num_workers=0,
                         device=images.device, **kwargs)  # fmt: skip
        self.images, self.labels, self.train, self.out, self.aug = images, labels, train, out, aug
        self.gen = torch.Generator(device=images.device).manual_seed(seed)
        self.mean = torch.tensor(imagenet_stats[0], device=images.device).view(1, 3, 1, 1)
        self.std = torch.tensor(imagenet_stats[1], device=images.device).view(1, 3, 1, 1)

    def create_batches(self, samps):
        idxs = list(samps)
        size = self.images.shape[-1]
        for i in range(0, len(idxs) - (self.bs - 1 if self.drop_last else 0), self.bs):
            sel = torch.as_tensor(idxs[i : i + self.bs], device=self.images.device)
            x, y = self.images[sel], self.labels[sel]
            if self.train and (self.aug is not None or self.out != size):
                img, lab = augment(x, y, self.out, self.aug or DeviceAugment().scaled(0.0), self.gen, self.out / size)
            else:
                img, lab = x[:, None].float() / 255.0, y.long()
            img = (img.expand(-1, 3, -1, -1) - self.mean) / self.std
            yield TensorImage(img), TensorMask(lab)


def device_dataloaders(train: list[Sample], valid: list[Sample], read_image, read_label, bs: int, crop: int,
                       aug: DeviceAugment | None, seed: int, device) -> DataLoaders:  # fmt: skip
    """Training and validation loaders whose frames live on ``device`` (decoded once, here)."""
    ti, tl = decode_to_device(train, read_image, read_label, device, "decode train")
    vi, vl = decode_to_device(valid, read_image, read_label, device, "decode valid")
    out = crop or ti.shape[-1]
    train_dl = DeviceSegDL(ti, tl, bs, True, out, aug, seed)
    valid_dl = DeviceSegDL(vi, vl, bs, False, vi.shape[-1], None, seed)
    return DataLoaders(train_dl, valid_dl, device=device)


def megabytes(dls: DataLoaders) -> float:
    """Device memory the decoded frames take."""
    return sum(t.numel() for dl in dls.loaders for t in (dl.images, dl.labels)) / 2**20
