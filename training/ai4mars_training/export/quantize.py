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
from ai4mars_perception.core.model.metadata import METADATA_KEY, ModelMetadata
from ai4mars_perception.core.segmenter import Segmenter
from ai4mars_training.data.dataset import scan, split
from ai4mars_training.errors import TrainingError


@dataclass
class QuantRecipe:
    """How to quantize (every choice is a measured one; see docs/BENCHMARKS.md)."""

    format: str = "qdq"  # qdq | qoperator
    activations: str = "u8"  # u8 | s8 (s8 x s8 has no VNNI kernel in ONNX Runtime on x86: 1.4x instead of 2.3x)
    per_channel: bool = True
    reduce_range: bool = False
    method: str = "percentile"  # minmax | entropy | percentile
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


def quantize(model: Path, out: Path, data: Path, recipe: QuantRecipe, valid_pct: float = 0.1, seed: int = 42,
             model_version: str | None = None) -> None:  # fmt: skip
    """Write the int8 model ``out`` (metadata kept, recipe recorded; version ``model_version`` or the float
    model's with ``-int8``)."""
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
    meta.model_version = model_version or f"{seg.metadata.model_version}-int8"
    q = onnx.load(str(out))
    del q.metadata_props[:]
    onnx.helper.set_model_props(q, {METADATA_KEY: meta.to_json()})
    onnx.save(q, str(out))


#: ONNX Runtime graph optimisation levels by name.
OPT_LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def _session(model: Path, threads: int = 0, level: str = "all", spinning: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[level])
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


def interleaved_ms(sessions: dict[str, object], x: np.ndarray, rounds: int = 15) -> dict[str, float]:
    """Median forward ms of each session on ``x``, timed round-robin (one run of each per round) so that a
    change in machine load affects every candidate alike."""
    feeds = {}
    for name, s in sessions.items():
        inp = s.get_inputs()[0]
        feeds[name] = {inp.name: x.astype(np.float16 if "float16" in inp.type else np.float32)}
        s.run(None, feeds[name])
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, s in sessions.items():
            t = time.perf_counter()
            s.run(None, feeds[name])
            times[name].append(time.perf_counter() - t)
    return {name: round(1000 * statistics.median(v), 3) for name, v in times.items()}


def forward_ms(model: Path, frame: np.ndarray, repeats: int = 10, threads: int = 0) -> float:
    """Median ONNX Runtime forward time of one preprocessed frame, ms."""
    x = Segmenter(model, "cpu").preprocess(frame)
    return interleaved_ms({"m": _session(model, threads)}, x, repeats)["m"]


def report(fp32: Path, int8: Path, data: Path, frame: np.ndarray, valid_limit: int = 0, valid_pct: float = 0.1,
           seed: int = 42) -> dict:  # fmt: skip
    """Speed ratio and validation mIoU of both models (the same frames, the same segmenter path)."""
    from ai4mars_training.evaluate.evaluate import evaluate

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
    "qdq u8s8 per-channel minmax": QuantRecipe(activations="u8", method="minmax"),
    "qdq s8s8 per-channel minmax": QuantRecipe(activations="s8", method="minmax"),
    "qoperator u8s8 per-channel": QuantRecipe(format="qoperator", activations="u8", method="minmax"),
    "qdq u8s8 per-tensor": QuantRecipe(activations="u8", per_channel=False, method="minmax"),
    "qdq u8s8 reduce-range": QuantRecipe(activations="u8", reduce_range=True, method="minmax"),
    "qdq u8s8 last conv float": QuantRecipe(activations="u8", exclude_last=True, method="minmax"),
    "qdq u8s8 entropy": QuantRecipe(activations="u8", method="entropy"),
    "qdq u8s8 percentile": QuantRecipe(activations="u8", method="percentile"),
}

#: ONNX Runtime session settings compared on the fp32 model and the chosen int8 one: (threads, level, spinning).
SESSION_SETTINGS = {
    "a thread per core, all, spinning": (0, "all", True),
    "a thread per core, all, no spinning": (0, "all", False),
    "a thread per core, extended, spinning": (0, "extended", True),
    "a thread per core, basic, spinning": (0, "basic", True),
    "1 thread, all": (1, "all", False),
}


def compare(fp32: Path, data: Path, out_dir: Path, frame: np.ndarray, valid_limit: int = 100, valid_pct: float = 0.1,
            seed: int = 42, names: list[str] | None = None, rounds: int = 15) -> dict:  # fmt: skip
    """Every recipe of :data:`CANDIDATES` (or ``names``): validation mIoU next to fp32, then forward ms of all
    models timed round-robin in one process on one frame, then :data:`SESSION_SETTINGS` on fp32 and the fastest
    int8 model within 0.01 mIoU. Writes ``comparison.json``; returns it."""
    from tqdm.auto import tqdm

    from ai4mars_training.evaluate.evaluate import evaluate

    unknown = sorted(set(names or []) - set(CANDIDATES))
    if unknown:
        raise TrainingError(f"unknown recipe(s) {unknown}; choose from {sorted(CANDIDATES)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    ev = dict(data=data, valid_pct=valid_pct, seed=seed, device="cpu", limit=valid_limit)
    base = _evaluate(evaluate, fp32, out_dir / "eval_fp32", ev)
    rows = {"fp32": {"recipe": "fp32", "file": fp32, "miou": base["miou"], "iou": base["iou"]}}
    for name in tqdm(names or list(CANDIDATES), desc="recipes", unit="recipe"):
        path = out_dir / (name.replace(" ", "_") + ".onnx")
        if not path.is_file():
            quantize(fp32, path, data, CANDIDATES[name], valid_pct, seed)
        m = _evaluate(evaluate, path, out_dir / f"eval_{path.stem}", ev)
        rows[name] = {"recipe": name, "file": path, "miou": m["miou"], "iou": m["iou"]}
    x = Segmenter(fp32, "cpu").preprocess(frame)
    speed = interleaved_ms({n: _session(r["file"]) for n, r in rows.items()}, x, rounds)
    for name, r in rows.items():
        r.update(forward_ms=speed[name], speedup=round(speed["fp32"] / speed[name], 2),
                 miou_difference=round(r["miou"] - base["miou"], 4), megabytes=round(r["file"].stat().st_size / 1e6, 1),
                 file=str(r["file"]))  # fmt: skip
    # among the recipes within 0.01 mIoU, those within 5 % of the fastest time (timing noise) → the most accurate
    ok = [r for r in rows.values() if r["recipe"] != "fp32" and abs(r["miou_difference"]) <= 0.01]
    fastest = min((r["forward_ms"] for r in ok), default=0.0)
    best = max((r for r in ok if r["forward_ms"] <= 1.05 * fastest), key=lambda r: r["miou"], default=None)
    settings = {}
    for label, row in (("fp32", rows["fp32"]), ("int8", best)):
        if row is not None:
            sessions = {s: _session(Path(row["file"]), *v) for s, v in SESSION_SETTINGS.items()}
            settings[label] = interleaved_ms(sessions, x, rounds)
    result = {"validation_images": base["images"], "frame_shape": list(frame.shape), "rounds": rounds,
              "recipes": list(rows.values()), "best": best and best["recipe"],
              "session_settings": settings}  # fmt: skip
    (out_dir / "comparison.json").write_text(json.dumps(result, indent=2))
    return result


def _evaluate(evaluate, model: Path, out: Path, ev: dict) -> dict:
    return evaluate(model, ev["data"], out, "train", "valid", ev["valid_pct"], ev["seed"], 0, ev["device"],
                    limit=ev["limit"])  # fmt: skip


def format_comparison(result: dict) -> str:
    """The comparison as Markdown tables (recipes; session settings)."""
    lines = [f"validation frames: {result['validation_images']}; forward: median of {result['rounds']} round-robin "
             f"runs on one {result['frame_shape'][0]}x{result['frame_shape'][1]} frame at the model's input size", "",
             "| recipe | forward ms | vs fp32 | mIoU | Δ mIoU | MB |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["recipes"]:
        lines.append(f"| {r['recipe']} | {r['forward_ms']:.1f} | {r['speedup']:.2f}x | {r['miou']:.4f} | "
                     f"{r['miou_difference']:+.4f} | {r['megabytes']:.1f} |")  # fmt: skip
    lines.append(f"\nchosen: {result['best']} (within 0.01 mIoU and 5 % of the fastest time, the most accurate)")
    for label, times in result["session_settings"].items():
        lines += ["", f"| ONNX Runtime session ({label}) | forward ms |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in times.items()]
    return "\n".join(lines)
