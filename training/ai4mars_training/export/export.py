"""``ai4mars-train export``: learner → learner.pkl + ONNX (and TorchScript) with the node's metadata, checked for
parity.

Loading a learner ``.pkl`` unpickles it, which runs code from the file: only load files you trust.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from ai4mars_perception.core.classes import NULL_CLASS_NAME, TERRAIN_CLASSES
from ai4mars_perception.core.model.fastai_learner import learner_input_size, learner_outputs
from ai4mars_perception.core.model.metadata import METADATA_KEY, InputSpec, ModelLoadError, ModelMetadata
from ai4mars_perception.core.model.parity import compare_logits
from ai4mars_perception.core.segmenter import Segmenter
from ai4mars_training.errors import TrainingError


def load_learner_file(path: Path):
    """``load_learner`` on CPU, with a notebook's ``__main__`` functions stood in (the core's loader, which the
    node's PyTorch backend uses too)."""
    from ai4mars_perception.core.model.fastai_learner import load_learner_file as load

    try:
        return load(path)
    except ModelLoadError as e:
        raise TrainingError(str(e)) from None


def learner_classes(learn) -> tuple[int, bool]:
    """(number of outputs, whether the last output is a null class) of a segmentation learner."""
    try:
        n_out = learner_outputs(learn)
    except ModelLoadError as e:
        raise TrainingError(str(e)) from None
    return n_out, n_out == 5


def export_onnx(model: torch.nn.Module, path: Path, size: int, meta: ModelMetadata) -> None:
    """Trace ``model`` at ``size``² into ONNX (dynamic batch) and store the metadata in it."""
    model = model.eval().float().cpu()
    dummy = torch.zeros(1, 3, size, size)
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (dummy,),
            str(tmp),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    m = onnx.load(str(tmp))
    del m.metadata_props[:]
    onnx.helper.set_model_props(m, {METADATA_KEY: meta.to_json()})
    m.producer_name = "ai4mars_training"
    onnx.save(m, str(path))
    tmp.unlink()


def export_torchscript(model: torch.nn.Module, path: Path, size: int, meta: ModelMetadata) -> None:
    """Trace ``model`` at ``size``² into TorchScript with the same metadata (for the node's PyTorch backend)."""
    model = model.eval().float().cpu()
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.zeros(1, 3, size, size))
    torch.jit.save(traced, str(path), _extra_files={f"{METADATA_KEY}.json": meta.to_json()})


def store_weights_fp16(path: Path, min_elements: int = 1024) -> int:
    """Store the large float32 weights of an ONNX file as float16, each followed by a Cast back to float32
    (ONNX Runtime folds the casts when it loads the model, so inference still runs in fp32): half the file size.
    Returns the number of tensors converted."""
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph, inits, casts = model.graph, [], []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}__fp16")
            inits.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
        else:
            inits.append(init)
    nodes = casts + list(graph.node)
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(inits)
    graph.node.extend(nodes)
    onnx.save(model, str(path))
    return len(casts)


def parity(model: torch.nn.Module, onnx_path: Path, frames: list[np.ndarray], rtol: float = 1e-3) -> dict:
    """Torch vs ONNX Runtime on the same preprocessed frames (:func:`~ai4mars_perception.core.model.parity.
    compare_logits` per frame): the largest |logit diff|, the arg-max agreement on all pixels and on those whose
    top-2 margin exceeds the tolerance (``rtol`` x the largest |logit|), and ``ok`` when every frame is within it."""
    seg = Segmenter(onnx_path, "cpu")
    model = model.eval().float().cpu()
    rows = []
    for gray in frames:
        x = seg.preprocess(gray)
        with torch.no_grad():
            rows.append(compare_logits(model(torch.from_numpy(x)).numpy(), seg.logits(x), rtol))
    return {
        "frames": len(frames),
        "rtol": rtol,
        "max_abs_logit_diff": max(r["max_abs_logit_diff"] for r in rows),
        "argmax_agreement": float(np.mean([r["argmax_agreement"] for r in rows])),  # same size each
        "decisive_argmax_agreement": min(r["decisive_argmax_agreement"] for r in rows),
        "parity_ok": all(r["ok"] for r in rows),
    }


def sample_frames(folder: Path | None, size: int, n: int = 8) -> list[np.ndarray]:
    """Up to ``n`` gray frames from a folder (any image files), or seeded random frames without one."""
    from ai4mars_perception.core.image_codec import collect_images, read_image_file

    if folder is not None:
        files = collect_images([str(folder)])[:n]
        if files:
            return [read_image_file(f) for f in files]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size), np.uint8) for _ in range(n)]


def export(
    learner_path: Path,
    out: Path,
    size: int | None = None,
    model_version: str | None = None,
    run_json: Path | None = None,
    frames_dir: Path | None = None,
    fp16_weights: bool = False,
    metrics_json: Path | None = None,
) -> dict:
    """Write ``out/learner.pkl``, ``out/model.onnx`` and ``out/model.pt`` (TorchScript, same metadata, for the
    PyTorch backend); returns the export report (also ``out/export.json``).

    ``fp16_weights``: store the weights as float16 (half the size; compute stays fp32). ``metrics_json``: an
    ``evaluate`` metrics.json whose per-class IoU, mIoU and pixel accuracy go into the model's metadata."""
    learn = load_learner_file(learner_path)
    n_out, null = learner_classes(learn)
    run = json.loads(run_json.read_text()) if run_json and run_json.is_file() else {}
    size = size or int(run.get("config", {}).get("size", 0)) or learner_input_size(learn, learner_path)
    out.mkdir(parents=True, exist_ok=True)
    if learner_path.resolve() != (out / "learner.pkl").resolve():
        shutil.copyfile(learner_path, out / "learner.pkl")
    best = run.get("best_epoch", {})
    meta = ModelMetadata(
        model_version=model_version or time.strftime("%Y.%m.%d-r18-") + str(size),
        classes=[{"id": c.id, "name": c.name, "color": list(c.color)} for c in TERRAIN_CLASSES],
        null_class=4 if null else None,
        input=InputSpec(height=size, width=size),
        training={
            "source": str(learner_path.name),
            "config": run.get("config", {}),
            "data": run.get("data", {}),
            "seconds": run.get("seconds"),
            "device": run.get("device"),
            "command": run.get("command"),
            "null_class_name": NULL_CLASS_NAME if null else None,
        },
        metrics={k: best[k] for k in ("miou", "pixel_acc", "iou_big_rock", "valid_loss", "epoch") if k in best},
    )
    if fp16_weights:
        meta.training["weights_storage"] = "float16 (computed in float32)"
    if metrics_json is not None:
        if not metrics_json.is_file():
            raise TrainingError(f"metrics file {metrics_json} does not exist (write it with ai4mars-train evaluate)")
        ev = json.loads(metrics_json.read_text())
        meta.metrics["evaluation"] = {k: ev[k] for k in ("miou", "pixel_accuracy", "iou", "images", "split") if k in ev}
    onnx_path = out / "model.onnx"
    export_onnx(learn.model, onnx_path, size, meta)
    if fp16_weights:
        store_weights_fp16(onnx_path)
    export_torchscript(learn.model, onnx_path.with_suffix(".pt"), size, meta)
    # float16-stored weights round each weight to 11 bits: a looser logit tolerance than for float32
    report = parity(learn.model, onnx_path, sample_frames(frames_dir, size), rtol=2e-2 if fp16_weights else 1e-3)
    report.update(
        {
            "onnx": str(onnx_path),
            "learner": str(out / "learner.pkl"),
            "size": size,
            "outputs": n_out,
            "fp16_weights": fp16_weights,
            "megabytes": round(onnx_path.stat().st_size / 1e6, 1),
        }
    )
    (out / "export.json").write_text(json.dumps(report, indent=2))
    if not report["parity_ok"]:
        raise TrainingError(
            f"ONNX and torch logits differ by {report['max_abs_logit_diff']:.3g} (tolerance {report['rtol']:g} of the "
            f"largest logit) or disagree where the decision is clear; see {out}/export.json"
        )
    return report
