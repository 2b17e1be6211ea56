"""``ai4mars-train quantize``: int8 static quantization of an exported model with ONNX Runtime, calibrated on
training frames (never validation frames), judged on the validation split (mIoU difference) and on speed.

The quantized file keeps the node's metadata, with the quantization recipe added, so the node and every CLI
take it like any other model.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

from ai4mars_perception.core.image_codec import read_image_file
from ai4mars_perception.core.model_metadata import METADATA_KEY, ModelMetadata
from ai4mars_perception.core.segmenter import Segmenter
from ai4mars_training.dataset import scan, split
from ai4mars_training.errors import TrainingError


@dataclass
class QuantRecipe:
    """How to quantize (every choice is a measured one; see docs/BENCHMARKS.md)."""

    format: str = "qdq"  # qdq | qoperator
    activations: str = "s8"  # s8 | u8
    per_channel: bool = True
    reduce_range: bool = False
    method: str = "minmax"  # minmax | entropy | percentile
    exclude_last: bool = False  # keep the final convolution in float
    calibration_frames: int = 16


def _frames(data: Path, n: int, valid_pct: float, seed: int) -> tuple[list[Path], list]:
    train, valid = split(scan(data).samples, valid_pct, seed)
    if len(train) < n:
        raise TrainingError(f"need {n} training frames for calibration, found {len(train)}")
    step = max(1, len(train) // n)
    return [s.image for s in train[::step][:n]], valid


class _Calibration:
    """ONNX Runtime CalibrationDataReader over preprocessed training frames."""

    def __init__(self, seg: Segmenter, images: list[Path], input_name: str) -> None:
        self.items = iter([{input_name: seg.preprocess(read_image_file(p))} for p in images])

    def get_next(self):
        return next(self.items, None)


def quantize(model: Path, out: Path, data: Path, recipe: QuantRecipe, valid_pct: float = 0.1, seed: int = 42) -> None:
    """Write the int8 model ``out`` (metadata kept, recipe recorded)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    seg = Segmenter(model, "cpu")
    images, _ = _frames(data, recipe.calibration_frames, valid_pct, seed)
    graph = onnx.load(str(model))
    input_name = graph.graph.input[0].name
    exclude = [graph.graph.node[-1].name] if recipe.exclude_last and graph.graph.node[-1].name else []
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(model), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre), str(out), _Calibration(seg, images, input_name),
            quant_format=QuantFormat.QDQ if recipe.format == "qdq" else QuantFormat.QOperator,
            activation_type=QuantType.QInt8 if recipe.activations == "s8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8, per_channel=recipe.per_channel, reduce_range=recipe.reduce_range,
            calibrate_method=methods[recipe.method], nodes_to_exclude=exclude,
        )  # fmt: skip
    meta = ModelMetadata.from_json(json.dumps(json.loads(seg.metadata.to_json())))
    meta.training["quantization"] = {**asdict(recipe), "tool": "onnxruntime.quantization.quantize_static",
                                     "calibration": "training split frames, never validation"}  # fmt: skip
    meta.model_version = f"{seg.metadata.model_version}-int8"
    q = onnx.load(str(out))
    del q.metadata_props[:]
    onnx.helper.set_model_props(q, {METADATA_KEY: meta.to_json()})
    onnx.save(q, str(out))


def forward_ms(model: Path, frame: np.ndarray, repeats: int = 10, threads: int = 0) -> float:
    """Median ONNX Runtime forward time of one preprocessed frame, ms."""
    seg = Segmenter(model, "cpu", intra_op_threads=threads)
    x = seg.preprocess(frame)
    seg.logits(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        seg.logits(x)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def report(fp32: Path, int8: Path, data: Path, frame: np.ndarray, valid_limit: int = 0, valid_pct: float = 0.1,
           seed: int = 42) -> dict:  # fmt: skip
    """Speed ratio and validation mIoU of both models (the same frames, the same segmenter path)."""
    from ai4mars_training.evaluate import evaluate

    speed32, speed8 = forward_ms(fp32, frame), forward_ms(int8, frame)
    with tempfile.TemporaryDirectory() as tmp:
        m32 = evaluate(fp32, data, Path(tmp) / "a", "train", "valid", valid_pct, seed, 0, "cpu", limit=valid_limit)
        m8 = evaluate(int8, data, Path(tmp) / "b", "train", "valid", valid_pct, seed, 0, "cpu", limit=valid_limit)
    return {
        "fp32": {"file": str(fp32), "megabytes": round(fp32.stat().st_size / 1e6, 1), "forward_ms": round(speed32, 1),
                 "miou": m32["miou"], "iou": m32["iou"]},
        "int8": {"file": str(int8), "megabytes": round(int8.stat().st_size / 1e6, 1), "forward_ms": round(speed8, 1),
                 "miou": m8["miou"], "iou": m8["iou"]},
        "speedup": round(speed32 / speed8, 3), "miou_difference": round(m8["miou"] - m32["miou"], 4),
        "validation_images": m32["images"],
    }  # fmt: skip


#: The recipes ``quantize --compare`` measures against each other (one choice changed at a time from the first).
CANDIDATES = {
    "qdq u8s8 per-channel minmax": QuantRecipe(),
    "qdq s8s8 per-channel minmax": QuantRecipe(activations="s8"),
    "qoperator u8s8 per-channel": QuantRecipe(format="qoperator"),
    "qdq u8s8 per-tensor": QuantRecipe(per_channel=False),
    "qdq u8s8 reduce-range": QuantRecipe(reduce_range=True),
    "qdq u8s8 last conv float": QuantRecipe(exclude_last=True),
    "qdq u8s8 entropy": QuantRecipe(method="entropy"),
    "qdq u8s8 percentile": QuantRecipe(method="percentile"),
}


def compare(fp32: Path, data: Path, out_dir: Path, frame: np.ndarray, valid_limit: int = 100, valid_pct: float = 0.1,
            seed: int = 42) -> list[dict]:  # fmt: skip
    """Every recipe of :data:`CANDIDATES`: forward ms (same process, same frame) and validation mIoU next to fp32."""
    from ai4mars_training.evaluate import evaluate

    out_dir.mkdir(parents=True, exist_ok=True)
    base = evaluate(fp32, data, out_dir / "eval_fp32", "train", "valid", valid_pct, seed, 0, "cpu", limit=valid_limit)
    rows = [{"recipe": "fp32", "forward_ms": round(forward_ms(fp32, frame), 1), "miou": base["miou"],
             "miou_difference": 0.0, "megabytes": round(fp32.stat().st_size / 1e6, 1)}]  # fmt: skip
    for name, recipe in CANDIDATES.items():
        path = out_dir / (name.replace(" ", "_") + ".onnx")
        quantize(fp32, path, data, recipe, valid_pct, seed)
        m = evaluate(path, data, out_dir / f"eval_{path.stem}", "train", "valid", valid_pct, seed, 0, "cpu",
                     limit=valid_limit)  # fmt: skip
        rows.append({"recipe": name, "forward_ms": round(forward_ms(path, frame), 1), "miou": m["miou"],
                     "miou_difference": round(m["miou"] - base["miou"], 4),
                     "megabytes": round(path.stat().st_size / 1e6, 1)})  # fmt: skip
        print(f"{name:<30} {rows[-1]['forward_ms']:7.1f} ms  mIoU {m['miou']:.4f} ({rows[-1]['miou_difference']:+.4f})",
              flush=True)  # fmt: skip
    for r in rows:
        r["speedup"] = round(rows[0]["forward_ms"] / r["forward_ms"], 2)
    (out_dir / "comparison.json").write_text(json.dumps(rows, indent=2))
    return rows
