"""Training test fixtures: a small real AI4Mars subset and a synthetic set, both in the AI4Mars layout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import FIT, NOTEBOOK, SAMPLES

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ai4mars-256"


def make_layout(root: Path) -> tuple[Path, Path]:
    edr, lab = root / "msl" / "images" / "edr", root / "msl" / "labels" / "train"
    edr.mkdir(parents=True)
    lab.mkdir(parents=True)
    return edr, lab


@pytest.fixture(scope="session")
def real_subset(tmp_path_factory) -> Path:
    """16 real pairs from ../shared/data/ai4mars-256 (skipped where the shared data is absent)."""
    if not (REAL / "msl" / "labels" / "train").is_dir():
        pytest.skip("shared AI4Mars data not present")
    root = tmp_path_factory.mktemp("real")
    edr, lab = make_layout(root)
    labels = sorted((REAL / "msl" / "labels" / "train").glob("*.png"))
    # take frames spread over the set, preferring ones with several classes
    picked = []
    for p in labels[::37]:
        values = np.unique(cv2.imread(str(p), cv2.IMREAD_UNCHANGED))
        if len(set(values.tolist()) - {255}) >= 2:
            picked.append(p)
        if len(picked) == 16:
            break
    for p in picked:
        shutil.copy(p, lab / p.name)
        shutil.copy(REAL / "msl" / "images" / "edr" / f"{p.stem}.jpg", edr / f"{p.stem}.jpg")
    return root


def synthetic_pair(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A frame whose classes are visible: soil mid-gray, bedrock bright bands, sand light, rocks dark blobs."""
    label = np.zeros((size, size), np.uint8)
    image = np.full((size, size), 110, np.float32) + rng.normal(0, 4, (size, size))
    y0 = rng.integers(size // 4, size // 2)
    label[:y0, : size // 2] = 1
    image[:y0, : size // 2] = 190 + 30 * np.sin(np.arange(size // 2) / 2.0)[None, :]
    label[:y0, size // 2 :] = 2
    image[:y0, size // 2 :] = 225
    for _ in range(3):
        cy, cx, r = rng.integers(y0 + 5, size - 5), rng.integers(5, size - 5), rng.integers(3, 7)
        yy, xx = np.ogrid[:size, :size]
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        label[disk], image[disk] = 3, 30
    label[:3] = 255  # a strip with no label
    return np.clip(image, 0, 255).astype(np.uint8), label


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    edr, lab = make_layout(root)
    rng = np.random.default_rng(3)
    for i in range(24):
        image, label = synthetic_pair(rng)
        name = f"NLA_{400000000 + i}EDR_F0000000AUT_04096M1"
        cv2.imwrite(str(edr / f"{name}.JPG"), np.repeat(image[..., None], 3, 2), [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(lab / f"{name}.png"), label)
    return root


@pytest.fixture(scope="session")
def navcam_frames() -> list[Path]:
    """The 8 bundled 1024² Navcam demo frames."""
    frames = sorted(SAMPLES.glob("*.JPG"))
    assert len(frames) == 8, f"bundled sample frames missing in {SAMPLES}"
    return frames


@pytest.fixture(scope="session")
def smoke_run(real_subset, tmp_path_factory) -> Path:
    """One smoke model for the session: a run folder (learner.pkl, run.json, models/best.pth) trained for one
    epoch at 64² on the real subset. Tests read it; a test that changes a run trains its own."""
    from ai4mars_training.cli import main

    run = tmp_path_factory.mktemp("smoke") / "run"
    assert main(["fit", "--data", str(real_subset), "--out", str(run), *FIT]) == 0
    return run


@pytest.fixture(scope="session")
def smoke_export(smoke_run) -> Path:
    """The smoke run exported: model.onnx (fp32), model.pt (TorchScript), export.json, learner.pkl."""
    from ai4mars_training.cli import main

    out = smoke_run.parent / "export"
    assert main(["export", "--run", str(smoke_run), "--out", str(out), "--frames", str(SAMPLES)]) == 0
    return out


@pytest.fixture(scope="session")
def notebook_learner(synthetic_set, tmp_path_factory):
    """``notebook_learner(classes)``: the reference notebook's ``learn.export()`` pickle with 4 or 5 classes, made
    once per session in a process of its own (its label function lives in that process's ``__main__``)."""
    made: dict[int, Path] = {}
    tmp = tmp_path_factory.mktemp("notebook")
    script = tmp / "notebook.py"
    script.write_text(NOTEBOOK)

    def learner(classes: int) -> Path:
        if classes not in made:
            pkl = tmp / f"export{classes}.pkl"
            r = subprocess.run([sys.executable, str(script), str(synthetic_set), str(pkl), str(classes)],
                               capture_output=True, text=True, timeout=300)  # fmt: skip
            assert r.returncode == 0, r.stderr[-2000:]
            made[classes] = pkl
        return made[classes]

    return learner
