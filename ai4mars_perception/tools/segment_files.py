"""``ai4mars-perception segment``: run the frame pipeline over image files, no ROS graph."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from ai4mars_perception.core.image_codec import ImageDecodeError, collect_images
from ai4mars_perception.core.pipeline import Pipeline
from ai4mars_perception.core.segmenter import InferenceError
from ai4mars_perception.core.validity import SideInputError
from ai4mars_perception.tools.side_files import side_inputs_for
from ai4mars_perception.tools.writers import TraversabilityCsv, write_pngs


def segment_files(pipeline: Pipeline, inputs: list[str], out_dir: Path) -> list[tuple[Path, str]]:
    """Write per input ``<stem>_mask.png``, ``_overlay.png``, ``_confidence.png`` and ``_costmap.png`` (for the
    camera_* parameters), and one ``traversability.csv`` for all inputs (the node's table, one row per region).
    Exclusion masks and depth next to a frame are used as the node uses its topics (:mod:`side_files`); an
    unusable one is reported and the frame segmented without it.

    Returns the failures as (path, reason); unreadable files are skipped and recorded, never fatal.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[Path, str]] = []
    with open(out_dir / "traversability.csv", "w", newline="") as f:
        table = TraversabilityCsv(f)
        for index, path in enumerate(tqdm(collect_images(inputs), desc="segment", unit="img")):
            try:
                gray = pipeline.read(path)
                try:
                    side = side_inputs_for(path, gray.shape[:2])
                except SideInputError as e:
                    side = None
                    tqdm.write(f"{path}: side input ignored: {e}")
                result = pipeline.process(gray, side)
            except (ImageDecodeError, InferenceError) as e:
                failures.append((path, str(e)))
                table.failure(index, str(path), 0, str(e))
                tqdm.write(f"skipped {path}: {e}")
                continue
            write_pngs(out_dir, path.stem, result, pipeline.projector(result.mask.shape))
            table.frame(index, str(path), 0, result.table, result.timings.inference * 1000)
    return failures
