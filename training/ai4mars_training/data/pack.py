"""``ai4mars-train pack``: the training data in a compact form that travels (single-channel JPEG frames, PNG
labels, AI4Mars folder layout, so ``fit --data`` reads it as it is), with a manifest of split and checksums.

The manifest records which frames the split function puts in validation, so the packed set validates on the very
frames the originals would; ``verify`` checks every file against its checksum after the transfer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

from ai4mars_training.data.dataset import file_sha256, scan, split
from ai4mars_training.errors import TrainingError

MANIFEST = "manifest.json"


def pack(data: Path, out: Path, quality: int = 75, valid_pct: float = 0.1, seed: int = 42, limit: int = 0) -> dict:
    """Write ``out`` (must not exist): ``msl/images/edr/<id>.jpg`` (gray JPEG at ``quality``),
    ``msl/labels/train/<id>.png`` (the labels, losslessly recompressed) and ``manifest.json``."""
    from tqdm.auto import tqdm

    if not 1 <= quality <= 100:
        raise TrainingError("--quality must lie between 1 and 100")
    if out.exists():
        raise TrainingError(f"{out} already exists; pack writes a new folder")
    samples = scan(data).samples
    samples = samples[:limit] if limit else samples
    train, valid = split(samples, valid_pct, seed)
    valid_ids = {s.id for s in valid}
    images, labels = out / "msl" / "images" / "edr", out / "msl" / "labels" / "train"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    files, error = [], 0.0
    for s in tqdm(samples, desc="pack", unit="frame"):
        gray = cv2.imread(str(s.image), cv2.IMREAD_GRAYSCALE)
        lab = cv2.imread(str(s.label), cv2.IMREAD_UNCHANGED)
        if gray is None or lab is None:
            raise TrainingError(f"{s.id}: image or label not readable")
        img_path, lab_path = images / f"{s.id}.jpg", labels / f"{s.id}.png"
        ok, buf = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])
        img_path.write_bytes(buf.tobytes())
        cv2.imwrite(str(lab_path), lab, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        error += float(np.abs(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.int16) - gray).mean())
        files.append({"id": s.id, "split": "valid" if s.id in valid_ids else "train",
                      "image": file_sha256(img_path), "label": file_sha256(lab_path)})  # fmt: skip
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    manifest = {
        "source": str(data), "format": "jpeg-gray", "quality": quality, "valid_pct": valid_pct, "seed": seed,
        "frames": len(files), "train": len(train), "valid": len(valid), "megabytes": round(size / 2**20, 2),
        "mean_abs_error_gray_levels": round(error / max(len(files), 1), 3), "created": time.strftime("%Y-%m-%d"),
        "files": files,
    }  # fmt: skip
    (out / MANIFEST).write_text(json.dumps(manifest, separators=(",", ":")))  # compact: it travels too
    return manifest


def archive(folder: Path) -> Path:
    """``folder`` as one gzipped tar beside it (``<folder>.tgz``): what a device call carries. Twelve thousand small
    files cost the transfer far more than their bytes (each file's header and padding); one archive costs its size."""
    import tarfile

    out = folder.with_name(folder.name + ".tgz")
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        tar.add(folder, arcname=folder.name)
    return out


def verify(folder: Path) -> dict:
    """Check every packed file against the manifest; returns the manifest, raises :class:`TrainingError`."""
    path = folder / MANIFEST
    if not path.is_file():
        raise TrainingError(f"{folder} holds no {MANIFEST}: not a packed data folder")
    manifest = json.loads(path.read_text())
    bad = []
    for f in manifest["files"]:
        for kind, sub, suffix in (("image", "msl/images/edr", ".jpg"), ("label", "msl/labels/train", ".png")):
            p = folder / sub / f"{f['id']}{suffix}"
            if not p.is_file() or file_sha256(p) != f[kind]:
                bad.append(str(p.relative_to(folder)))
    if bad:
        raise TrainingError(f"{len(bad)} packed files are missing or damaged, e.g. {bad[:3]}")
    train, valid = split(scan(folder, check=False).samples, manifest["valid_pct"], manifest["seed"])
    expected = {f["id"] for f in manifest["files"] if f["split"] == "valid"}
    if {s.id for s in valid} != expected:
        raise TrainingError("the split of the packed frames differs from the manifest's")
    return manifest
