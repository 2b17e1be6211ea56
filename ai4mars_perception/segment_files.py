"""``ai4mars-perception segment``: segment image files without a ROS graph."""

from __future__ import annotations

from pathlib import Path

import cv2
from tqdm import tqdm

from ai4mars_perception.image_codec import ImageDecodeError, read_image_file
from ai4mars_perception.overlay import overlay
from ai4mars_perception.segmenter import Segmenter

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def collect_images(inputs: list[str]) -> list[Path]:
    """Files named directly, plus image files (any case of suffix) inside named folders, sorted."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(item)
    return files


def segment_files(segmenter: Segmenter, inputs: list[str], out_dir: Path, alpha: float = 0.5) -> list[tuple[Path, str]]:
    """Write ``<stem>_mask.png`` (class ids, 255 unknown) and ``<stem>_overlay.png`` per input.

    Returns the failures as (path, reason); unreadable files are skipped, never fatal.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[Path, str]] = []
    files = collect_images(inputs)
    for path in tqdm(files, desc="segment", unit="img"):
        try:
            gray = read_image_file(path)
        except ImageDecodeError as e:
            failures.append((path, str(e)))
            tqdm.write(f"skipped {e}")
            continue
        mask = segmenter.segment(gray)
        cv2.imwrite(str(out_dir / f"{path.stem}_mask.png"), mask)
        rgb = overlay(gray, mask, alpha, segmenter.metadata.class_colors)
        cv2.imwrite(str(out_dir / f"{path.stem}_overlay.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return failures
