"""Tiny ONNX models built with the onnx helper API (no torch): predictable outputs for node tests.

``brightness_model``: a 1x1 convolution whose arg-max is the class whose centre brightness is nearest
to the pixel (logit_k = 2 c_k x - c_k², c_k the normalised value of gray level CENTRES[k]); so a frame's
expected mask is known in closed form. ``slow_model`` adds a stack of 3x3 convolutions to take time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ai4mars_perception.core.model.metadata import InputSpec, ModelMetadata

CENTRES = (32, 96, 160, 224)  # gray levels of soil, bedrock, sand, big rock


def expected_class(gray: np.ndarray, null_class: bool = False) -> np.ndarray:
    """Class ids the brightness model predicts for gray levels (at model resolution)."""
    d = np.abs(gray.astype(np.int32)[..., None] - np.array(CENTRES + ((255,) if null_class else ())))
    out = d.argmin(-1).astype(np.uint8)
    if null_class:
        out[out == 4] = 255
    return out


def _normalised(level: float, spec: InputSpec) -> float:
    return (level * spec.scale - spec.mean[0]) / spec.std[0]


def _save(path: Path, name: str, nodes: list, inits: list, classes: int, meta: ModelMetadata) -> Path:
    """Write a one-input (``x``), one-output (``logits``) opset-17 model with our metadata; returns ``path``."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes, "H", "W"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"ai4mars_perception": meta.to_json()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def brightness_model(
    path: Path, size: int = 64, null_class: bool = False, slow_layers: int = 0, slow_channels: int = 24
) -> Path:
    """Write the brightness model with metadata to ``path`` and return it."""
    spec = InputSpec(height=size, width=size)
    centres = list(CENTRES) + ([255] if null_class else [])
    k = len(centres)
    c = np.array([_normalised(v, spec) for v in centres], np.float32)
    w = np.zeros((k, 3, 1, 1), np.float32)
    w[:, 0, 0, 0] = 2 * c
    nodes = []
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(-(c**2), "b")]
    src = "x"
    if slow_layers:
        # Busy work that ends in zero: the brightness logits stay exact.
        ch_in = 3
        for i in range(slow_layers):
            wi = np.full((slow_channels, ch_in, 3, 3), 1e-3, np.float32)
            inits.append(numpy_helper.from_array(wi, f"sw{i}"))
            nodes.append(helper.make_node("Conv", [src if i == 0 else f"s{i - 1}", f"sw{i}"], [f"s{i}"], pads=[1] * 4))
            ch_in = slow_channels
        inits.append(numpy_helper.from_array(np.zeros((k, slow_channels, 1, 1), np.float32), "zw"))
        nodes.append(helper.make_node("Conv", [f"s{slow_layers - 1}", "zw"], ["zero"]))
        nodes.append(helper.make_node("Conv", ["x", "w", "b"], ["fast"]))
        nodes.append(helper.make_node("Add", ["fast", "zero"], ["logits"]))
    else:
        nodes.append(helper.make_node("Conv", [src, "w", "b"], ["logits"]))
    meta = ModelMetadata(model_version="test-brightness-1", architecture="test: 1x1 conv on brightness", input=spec,
                         null_class=4 if null_class else None)  # fmt: skip
    return _save(path, "brightness", nodes, inits, k, meta)


def nan_model(path: Path, size: int = 64) -> Path:
    """A broken model: logits = sqrt(x) / 0, NaN where the normalised gray level is negative and +Inf elsewhere
    (for the node's output check)."""
    spec = InputSpec(height=size, width=size)
    ones = np.zeros((4, 3, 1, 1), np.float32)
    ones[:, 0] = 1.0
    inits = [numpy_helper.from_array(ones, "w1"), numpy_helper.from_array(np.zeros((4, 3, 1, 1), np.float32), "w0")]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["gray"]),
        helper.make_node("Conv", ["x", "w0"], ["zero"]),
        helper.make_node("Sqrt", ["gray"], ["root"]),
        helper.make_node("Div", ["root", "zero"], ["logits"]),
    ]
    meta = ModelMetadata(model_version="test-nan-1", architecture="test: NaN/Inf logits", input=spec)
    return _save(path, "nan", nodes, inits, 4, meta)


def brightness_torchscript(path: Path, size: int = 64) -> Path:
    """The brightness model as TorchScript with the same metadata (for the PyTorch backend); needs torch."""
    import torch

    spec = InputSpec(height=size, width=size)
    c = torch.tensor([_normalised(v, spec) for v in CENTRES], dtype=torch.float32)
    conv = torch.nn.Conv2d(3, len(CENTRES), 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, 0, 0, 0] = 2 * c
        conv.bias.copy_(-(c**2))
    meta = ModelMetadata(
        model_version="test-brightness-torch-1", architecture="test: 1x1 conv on brightness", input=spec
    )
    traced = torch.jit.trace(conv.eval(), torch.zeros(1, 3, size, size))
    torch.jit.save(traced, str(path), _extra_files={"ai4mars_perception.json": meta.to_json()})
    return path


def gradient_model(path: Path, size: int = 64) -> Path:
    """A model that is not mirror-symmetric: logit_k = w_k * (x[j+1] - x[j-1]) + k * 0.01, a horizontal gradient
    detector (an odd 1x3 kernel), so its prediction on a mirrored frame, mirrored back, is the negated gradient."""
    spec = InputSpec(height=size, width=size)
    w = np.zeros((4, 3, 1, 3), np.float32)
    w[:, 0, 0, 0], w[:, 0, 0, 2] = -1.0, 1.0
    w *= np.array([1.0, -1.0, 2.0, -2.0], np.float32)[:, None, None, None]
    b = np.arange(4, dtype=np.float32) * 0.01
    meta = ModelMetadata(model_version="test-gradient-1", architecture="test: 1x3 odd conv", input=spec)
    node = helper.make_node("Conv", ["x", "w", "b"], ["logits"], pads=[0, 1, 0, 1])
    return _save(path, "gradient", [node], [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")], 4, meta)
