"""``fit --loader device``: frames decoded once onto the device, augmented there; the same code on the CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ai4mars_training.cli import main
from ai4mars_training.data.dataset import scan, split
from ai4mars_training.data.device_loader import DeviceAugment, augment, device_dataloaders
from ai4mars_training.fit.learner import ReadImage, ReadLabel
from fastai.vision.all import imagenet_stats
from helpers import FIT


def _loaders(data, bs=4, crop=0, aug=None):
    train, valid = split(scan(str(data)).samples, 0.25, 42)
    return device_dataloaders(train, valid, ReadImage(64), ReadLabel(64), bs, crop, aug, 0, torch.device("cpu"))


def test_without_augmentation_batches_are_the_frames_normalised(synthetic_set):
    dls = _loaders(synthetic_set)
    train, valid = dls.train, dls.valid
    assert len(train.images) + len(valid.images) == 24 and train.images.dtype == torch.uint8
    xb, yb = valid.one_batch()
    assert xb.shape == (4, 3, 64, 64) and yb.shape == (4, 64, 64) and yb.dtype == torch.long
    gray = xb[:, 0] * imagenet_stats[1][0] + imagenet_stats[0][0]  # undo the normalisation of channel 0
    assert torch.allclose(gray * 255, valid.images[:4].float(), atol=1e-3)
    assert torch.equal(yb, valid.labels[:4].long())
    assert len(train) == len(train.images) // 4  # training drops the last partial batch


def test_augmentation_moves_image_and_label_together(synthetic_set):
    """Rocks (label 3) are dark and sand (label 2) bright in the synthetic frames: after flips, rotations, scale
    jitter and crops the same pixels must still agree; pixels from outside the frame are 255 (ignored)."""
    dls = _loaders(synthetic_set, bs=8, crop=48, aug=DeviceAugment(noise=0.0, brightness=0.0, contrast=0.0,
                                                                  gamma=0.0))  # fmt: skip
    xb, yb = dls.train.one_batch()
    assert xb.shape == (8, 3, 48, 48) and yb.shape == (8, 48, 48)
    gray = (xb[:, 0] * imagenet_stats[1][0] + imagenet_stats[0][0]) * 255
    inner = torch.zeros_like(yb, dtype=torch.bool)
    inner[:, 2:-2, 2:-2] = True  # away from the edges bilinear sampling mixes classes
    rock, sand = (yb == 3) & inner, (yb == 2) & inner
    assert rock.any() and sand.any()
    assert gray[rock].median() < 80 < gray[sand].median()
    assert set(torch.unique(yb).tolist()) <= {0, 1, 2, 3, 255}


def test_the_augmentation_is_seeded_and_varies_per_frame():
    x = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 64, 64).repeat(4, 1, 1) % 251
    x = x.to(torch.uint8)
    y = torch.zeros_like(x)
    first = augment(x, y, 32, DeviceAugment(), torch.Generator().manual_seed(3))[0]
    again = augment(x, y, 32, DeviceAugment(), torch.Generator().manual_seed(3))[0]
    assert torch.equal(first, again)  # the same seed, the same batch
    assert not torch.allclose(first[0], first[1])  # each frame its own draw
    still = augment(x, y, 64, DeviceAugment().scaled(0.0), torch.Generator().manual_seed(3))[0]
    assert torch.allclose(still[:, 0] * 255, x.float(), atol=1e-3)  # strength 0: the identity


def test_fit_with_the_device_loader_and_ema_trains_and_exports(synthetic_set, tmp_path):
    run = tmp_path / "run"
    args = ["fit", "--data", str(synthetic_set), "--out", str(run), *FIT, "--epochs", "2", "--loader", "device",
            "--crop", "32", "--ema", "0.9"]  # fmt: skip
    assert main(args) == 0
    record = json.loads((run / "run.json").read_text())
    assert record["config"]["loader"] == "device" and record["config"]["ema"] == 0.9
    assert len(record["history"]) == 2 and all(np.isfinite(r["valid_loss"]) for r in record["history"])
    assert record["throughput"][0]["images"] == 16  # 18 training frames, batch 4, the last partial one dropped
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "export")]) == 0  # the pickle has no frames
    with pytest.raises(ValueError, match="decay"):
        from ai4mars_training.fit.ema import EMA

        EMA(1.5)
