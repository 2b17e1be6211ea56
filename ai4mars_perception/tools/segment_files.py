"""``ai4mars-perception segment``: run the frame pipeline over image files, no ROS graph."""

from __future__ import annotations

from pathlib import Path

import cv2
from tqdm import tqdm

from ai4mars_perception.core.image_codec import ImageDecodeError, collect_images, read_image_file
from ai4mars_perception.core.overlay import costmap_image
from ai4mars_perception.core.pipeline import Pipeline
from ai4mars_perception.core.segmenter import InferenceError


def segment_files(pipeline: Pipeline, inputs: list[str], out_dir: Path) -> list[tuple[Path, str]]:
    """Write per input ``<stem>_mask.png`` (class ids, 255 unknown), ``<stem>_overlay.png``,
    ``<stem>_confidence.png`` (softmax maximum x 255) and ``<stem>_costmap.png`` (top view of the ground cost
    grid for the camera_* parameters: forward up, cost green to red, unknown gray).

    Returns the failures as (path, reason); unreadable files are skipped, never fatal.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[Path, str]] = []
    for path in tqdm(collect_images(inputs), desc="segment", unit="img"):
        try:
            result = pipeline.process(read_image_file(path, pipeline.config.max_pixels))
        except (ImageDecodeError, InferenceError) as e:
            failures.append((path, str(e)))
            tqdm.write(f"skipped {path}: {e}")
            continue
        cv2.imwrite(str(out_dir / f"{path.stem}_mask.png"), result.mask)
        cv2.imwrite(str(out_dir / f"{path.stem}_overlay.png"), cv2.cvtColor(result.overlay, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out_dir / f"{path.stem}_confidence.png"), result.confidence)
        top = costmap_image(result.costmap(pipeline.projector(result.mask.shape)))
        cv2.imwrite(str(out_dir / f"{path.stem}_costmap.png"), cv2.cvtColor(top, cv2.COLOR_RGB2BGR))
    return failures
