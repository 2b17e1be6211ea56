"""Find AI4Mars image/label pairs on disk and split them deterministically (no torch needed here)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ai4mars_perception.core.classes import IGNORE_INDEX, NUM_CLASSES
from ai4mars_training.errors import TrainingError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
GOLD_DIRS = ("masked-gold-min3-100agree", "masked-gold-min2-100agree", "masked-gold-min1-100agree")


@dataclass(frozen=True)
class Sample:
    """One labelled frame, with optional rover (MXY) and range (RNG 30 m) masks."""

    id: str
    image: Path
    label: Path
    rover: Path | None = None
    range30: Path | None = None


@dataclass
class Scan:
    """What a scan of a data folder found."""

    samples: list[Sample]
    unlabelled: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in self.skipped.items() if n) or "none"
        return f"{len(self.samples)} labelled pairs, {self.unlabelled} images without a label, skipped: {skipped}"


def label_dir(root: Path, labels: str) -> Path:
    """``train`` → msl/labels/train; ``gold`` → the first masked-gold folder present; or a sub-path of labels/."""
    base = root / "msl" / "labels"
    if labels == "gold":
        for d in GOLD_DIRS:
            if (base / "test" / d).is_dir():
                return base / "test" / d
        raise TrainingError(f"no gold test labels under {base / 'test'}")
    return base / labels


def _mask_path(folder: Path, image_id: str, kind: str) -> Path | None:
    p = folder / f"{image_id.replace('EDR', kind)}.png"
    return p if p.is_file() else None


def scan(root: str | Path, labels: str = "train", check: bool = True) -> Scan:
    """Pair ``msl/images/edr/<id>.{JPG,jpg}`` with ``<labels>/<id>.png`` or ``<id>_merged.png``.

    Images without a label are counted, not errors. With ``check``, pairs whose label size differs from the
    image or whose label holds values other than 0-3 and 255 are skipped and counted.
    """
    root = Path(root)
    edr = root / "msl" / "images" / "edr"
    if not edr.is_dir():
        raise TrainingError(f"{root} is not an AI4Mars folder: {edr} is missing")
    lab = label_dir(root, labels)
    if not lab.is_dir():
        raise TrainingError(f"label folder {lab} is missing")
    label_files = {p.stem.removesuffix("_merged"): p for p in lab.iterdir() if p.suffix.lower() == ".png"}
    images = sorted(p for p in edr.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise TrainingError(f"no images in {edr}")
    result = Scan([], skipped={"size mismatch": 0, "unknown label values": 0, "unreadable": 0})
    mxy, rng = root / "msl" / "images" / "mxy", root / "msl" / "images" / "rng-30m"
    for img in images:
        label = label_files.get(img.stem)
        if label is None:
            result.unlabelled += 1
            continue
        if check:
            why = check_pair(img, label)
            if why:
                result.skipped[why] += 1
                continue
        result.samples.append(
            Sample(img.stem, img, label, _mask_path(mxy, img.stem, "MXY"), _mask_path(rng, img.stem, "RNG"))
        )
    if not result.samples:
        raise TrainingError(f"no usable labelled images in {root} ({result.summary()})")
    return result


def check_pair(image: Path, label: Path) -> str | None:
    """Reason to skip a pair, or None when it is usable."""
    img = cv2.imread(str(image), cv2.IMREAD_UNCHANGED)
    lab = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    if img is None or lab is None or lab.ndim != 2:
        return "unreadable"
    if img.shape[:2] != lab.shape:
        return "size mismatch"
    if not np.isin(np.unique(lab), [*range(NUM_CLASSES), IGNORE_INDEX]).all():
        return "unknown label values"
    return None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (pack checksums, start weights in run.json)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_valid(sample_id: str, valid_pct: float, seed: int) -> bool:
    """Deterministic split: a stable hash of (seed, id) decides, so adding frames never moves old ones."""
    h = int(hashlib.sha1(f"{seed}:{sample_id}".encode()).hexdigest()[:8], 16)
    return (h % 10_000) < valid_pct * 10_000


def split(samples: list[Sample], valid_pct: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(train, valid) lists; raises when either side would be empty."""
    if not 0.0 < valid_pct < 1.0:
        raise TrainingError("--valid-pct must lie strictly between 0 and 1")
    valid = [s for s in samples if is_valid(s.id, valid_pct, seed)]
    train = [s for s in samples if not is_valid(s.id, valid_pct, seed)]
    if not valid or not train:
        raise TrainingError(f"a {valid_pct:.0%} validation split of {len(samples)} pairs leaves one side empty")
    return train, valid


def read_label(
    sample: Sample, null_class: bool = False, ignore_rover: bool = False, ignore_range: bool = False
) -> np.ndarray:
    """The label as uint8 (255 = ignore, or class 4 with ``null_class``), rover/far pixels optionally ignored."""
    lab = cv2.imread(str(sample.label), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise TrainingError(f"label {sample.label} is not readable")
    for path, wanted in ((sample.rover, ignore_rover), (sample.range30, ignore_range)):
        if wanted and path is not None:
            m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if m is not None:
                lab[cv2.resize(m, lab.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0] = IGNORE_INDEX
    if null_class:
        lab[lab == IGNORE_INDEX] = NUM_CLASSES
    return lab
