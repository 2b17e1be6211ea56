"""``ai4mars-perception bench-validity``: how much of what is not terrain the pipeline still calls terrain, on
frames with AI4Mars rover (MXY) and range (RNG-30m) masks, and what it costs per frame.

Three set-ups of the same model: *plain* (no validity: every pixel gets a class), *geometry* (the flat-ground
cut from the camera parameters: sky and beyond ``max_range`` unknown) and *masks* (the frame's MXY ∪ RNG-30m as
its exclusion mask, as the demo's bag carries them).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ai4mars_perception.core.classes import IGNORE_INDEX
from ai4mars_perception.core.image_codec import collect_images
from ai4mars_perception.core.pipeline import Pipeline, PipelineConfig
from ai4mars_perception.core.validity import SideInputs
from ai4mars_perception.tools.errors import ToolError
from ai4mars_perception.tools.side_files import AI4MARS_MASKS


def _ai4mars_masks(frame: Path, shape: tuple[int, int]) -> dict[str, np.ndarray] | None:
    """{"rover": MXY > 0, "far": RNG-30m > 0} of an AI4Mars frame, or None when either is missing."""
    found = {}
    for (folder, tag), key in zip(AI4MARS_MASKS, ("rover", "far")):
        name = frame.stem.replace("EDR", tag) + ".png"
        path = next((p for p in (frame.parent / folder / name, frame.parent.parent / folder / name) if p.is_file()),
                    None)  # fmt: skip
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path is not None else None
        if mask is None or mask.shape != shape:
            return None
        found[key] = mask > 0
    return found


def bench_validity(values: dict, inputs: list[str]) -> dict:
    """Per frame and in total: shares of rover / far pixels and of them reported as terrain, and the share of
    the other pixels' terrain that is kept, for each set-up; the validity step's time per frame."""
    setups = {"plain": {"use_geometry": False}, "geometry": {"use_geometry": True}, "masks": {"use_geometry": False}}
    pipelines = {k: Pipeline(PipelineConfig.from_values({**values, **v})) for k, v in setups.items()}
    rows, times = [], {k: [] for k in setups}
    for path in tqdm(collect_images(inputs), desc="bench-validity", unit="frame"):
        gray = pipelines["plain"].read(path)
        masks = _ai4mars_masks(path, gray.shape[:2])
        if masks is None:
            continue
        other = ~(masks["rover"] | masks["far"])
        row = {"frame": path.name, "rover_share": float(masks["rover"].mean()), "far_share": float(masks["far"].mean())}
        results = {}
        for name, pipe in pipelines.items():
            side = SideInputs(exclusion=masks["rover"] | masks["far"]) if name == "masks" else None
            results[name] = pipe.process(gray, side)
            times[name].append(1000 * results[name].timings.validity)
        plain_terrain = results["plain"].mask != IGNORE_INDEX
        for name, result in results.items():
            terrain = result.mask != IGNORE_INDEX
            row[f"{name}_rover_as_terrain"] = float(terrain[masks["rover"]].mean()) if masks["rover"].any() else None
            row[f"{name}_far_as_terrain"] = float(terrain[masks["far"]].mean()) if masks["far"].any() else None
            kept = plain_terrain & other
            row[f"{name}_in_range_terrain_kept"] = float(terrain[kept].mean()) if kept.any() else None
        rows.append(row)
    if not rows:
        raise ToolError("none of the frames has both an AI4Mars MXY and an RNG-30m mask (mxy/, rng-30m/ beside it)")

    def mean(key: str) -> float | None:
        got = [r[key] for r in rows if r[key] is not None]
        return round(statistics.fmean(got), 4) if got else None

    total = {k: mean(k) for k in rows[0] if k != "frame"}
    total["validity_ms_median"] = {k: round(statistics.median(v), 2) for k, v in times.items()}
    return {"frames": len(rows), "model": str(pipelines["plain"].segmenter.path), "mean": total, "rows": rows}


def format_report(r: dict) -> str:
    m = r["mean"]
    lines = [f"{r['frames']} frames, model {r['model']}; means over frames (None: no such pixels)",
             f"rover share {m['rover_share']:.3f}, beyond-30 m share {m['far_share']:.3f}",
             "set-up     rover as terrain   far/sky as terrain   in-range terrain kept   "
             "validity ms/frame"]  # fmt: skip
    for name in ("plain", "geometry", "masks"):
        lines.append(f"{name:<10} {m[f'{name}_rover_as_terrain']!s:>15}   {m[f'{name}_far_as_terrain']!s:>18}   "
                     f"{m[f'{name}_in_range_terrain_kept']!s:>21}   {m['validity_ms_median'][name]:>15}")  # fmt: skip
    return "\n".join(lines)


def command(args) -> int:
    from ai4mars_perception.tools.overrides import values_from_args

    report = bench_validity(values_from_args(args), args.inputs)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0
