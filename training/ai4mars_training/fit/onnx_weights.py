"""Start weights from an exported ONNX model (``fit --init-from model.onnx``): fine-tune a shipped model.

``export`` traces the U-Net in eval mode, so ONNX folds every BatchNorm that follows a convolution into that
convolution's weight ``W'`` and bias ``b'``. Loading it back:

- each convolution, in execution order, takes its ONNX Conv's ``W'`` (fp32 or fp16-stored; the graph keeps the
  exporter's node order, which int8 models do not: ``quantize`` reorders them, so those are refused);
- each folded BatchNorm is rebuilt from calibration frames: with ``y = W'x`` and its per-channel mean ``m`` and
  variance ``v`` on real data, ``running_mean = m``, ``running_var = v``, ``weight = sqrt(v + eps)`` and
  ``bias = b' + m`` give exactly ``y + b'`` in eval mode and about the same in training mode (batch statistics);
- each BatchNorm that ONNX kept (on the skip connections) takes its four tensors directly.

The result is checked against ONNX Runtime on the calibration frames before training starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ai4mars_training.errors import TrainingError


def onnx_constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every constant tensor of the graph as fp32 numpy: initializers, and the outputs of the Identity (shared
    initializers) and Cast (fp16-stored weights) nodes that read only constants."""
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if not node.input or any(n and n not in consts for n in node.input):
            continue
        if node.op_type == "Identity":  # the exporter shares equal initializers through Identity nodes
            consts[node.output[0]] = consts[node.input[0]]
        elif node.op_type == "Cast":
            consts[node.output[0]] = consts[node.input[0]].astype(np.float32)
    return consts


def _trace_order(model: nn.Module, x: torch.Tensor) -> tuple[list[nn.Conv2d], list[tuple[nn.BatchNorm2d, int]]]:
    """Convolutions and BatchNorms in execution order; each BatchNorm with the index of the convolution whose
    output it normalises (-1: its input is not a convolution's output, so ONNX keeps it)."""
    convs: list[nn.Conv2d] = []
    bns: list[tuple[nn.BatchNorm2d, int]] = []
    produced: dict[int, int] = {}  # id(conv output) -> conv index
    outputs: list[torch.Tensor] = []  # keep them alive so ids stay unique

    def on_conv(mod, _inp, out):
        produced[id(out)] = len(convs)
        convs.append(mod)
        outputs.append(out)

    def on_bn(mod, inp, _out):
        bns.append((mod, produced.get(id(inp[0]), -1)))

    hooks = [m.register_forward_hook(on_conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(on_bn) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return convs, bns


def _param(t: torch.Tensor, value: np.ndarray, what: str, path: Path) -> None:
    if tuple(t.shape) != value.shape:
        raise TrainingError(f"--init-from {path} does not fit this U-Net (same classes and --null-class?): {what} "
                            f"has shape {value.shape} there, {tuple(t.shape)} here")  # fmt: skip
    t.data.copy_(torch.from_numpy(np.array(value, np.float32)))


def load_onnx_weights(model: nn.Module, path: Path, calibration: Iterable[torch.Tensor]) -> dict:
    """Load an exported ONNX U-Net's weights into ``model`` (same architecture and classes); rebuild the folded
    BatchNorms from ``calibration`` batches (N, 3, H, W, normalised as the model expects; the model moves to
    their device). Returns what was done."""
    try:
        graph = onnx.load(str(path))
    except Exception as e:  # protobuf DecodeError, OSError
        raise TrainingError(f"--init-from {path} is not a readable ONNX model: {e}") from None
    if any(n.op_type == "DequantizeLinear" for n in graph.graph.node):
        raise TrainingError(f"--init-from {path} is an int8 model, which cannot be trained on: start from the fp32 "
                            "or fp16 model it was quantized from (models/ai4mars_unet_r18.onnx)")  # fmt: skip
    consts = onnx_constants(graph)
    onnx_convs = [n for n in graph.graph.node if n.op_type == "Conv"]
    onnx_bns = [n for n in graph.graph.node if n.op_type == "BatchNormalization"]
    batches = [b.as_subclass(torch.Tensor).float() for b in calibration]  # on the data loader's device (a GPU's, say)
    if not batches:
        raise TrainingError("--init-from an ONNX model needs calibration frames; the training set gave none")
    model.to(batches[0].device)
    convs, bns = _trace_order(model, batches[0][:1])
    kept = [bn for bn, src in bns if src < 0]
    folded = {src: bn for bn, src in bns if src >= 0}
    if len(onnx_convs) != len(convs) or len(onnx_bns) != len(kept):
        raise TrainingError(
            f"--init-from {path} does not fit this U-Net: it has {len(onnx_convs)} convolutions and "
            f"{len(onnx_bns)} BatchNorms, this U-Net {len(convs)} and {len(kept)} (another architecture?)"
        )
    folded_bias: dict[int, np.ndarray] = {}
    with torch.no_grad():
        for i, (conv, node) in enumerate(zip(convs, onnx_convs)):
            names = list(node.input[1:]) + [""]
            if names[0] not in consts:
                raise TrainingError(f"--init-from {path}: the weight of convolution {i} is not a constant")
            _param(conv.weight, consts[names[0]], f"convolution {i} weight", path)
            bias = consts[names[1]] if names[1] else np.zeros(conv.out_channels, np.float32)
            if i in folded:  # b' goes to the BatchNorm; the conv's own bias (if any) becomes 0
                folded_bias[i] = np.array(bias, np.float32)
                if conv.bias is not None:
                    conv.bias.zero_()
            elif conv.bias is not None:
                _param(conv.bias, bias, f"convolution {i} bias", path)
            elif np.any(bias):
                raise TrainingError(f"--init-from {path}: convolution {i} has a bias this U-Net lacks")
        for j, (bn, node) in enumerate(zip(kept, onnx_bns)):
            for t, name, what in zip(
                (bn.weight, bn.bias, bn.running_mean, bn.running_var), node.input[1:5], ("scale", "bias", "mean", "var")
            ):
                _param(t, consts[name], f"BatchNorm {j} {what}", path)
        # folded BatchNorms: identity first (eval output = W'x + b'), then statistics of y = W'x on real frames
        for i, bn in folded.items():
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(folded_bias[i]).to(bn.bias))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
    stats = _input_stats(model, list(folded.values()), batches)
    with torch.no_grad():
        for i, bn in folded.items():
            mean, var = stats[bn]
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_((var + bn.eps).sqrt())
            bn.bias.copy_(torch.from_numpy(folded_bias[i]).to(mean) + mean)
    agreement = _agreement(model, path, batches[0])
    if agreement < 0.95:
        raise TrainingError(f"--init-from {path}: the rebuilt U-Net agrees with the ONNX model on only "
                            f"{agreement:.1%} of pixels (another architecture or input size?)")  # fmt: skip
    frames = sum(int(b.shape[0]) for b in batches)
    return {"convolutions": len(convs), "batchnorms_rebuilt": len(folded), "batchnorms_kept": len(kept),
            "calibration_frames": frames, "argmax_agreement": round(agreement, 5)}  # fmt: skip


def _agreement(model: nn.Module, path: Path, batch: torch.Tensor) -> float:
    """Fraction of pixels where the rebuilt model (eval) and ONNX Runtime give the same class, on ``batch``
    resized to the ONNX model's input size."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    size = (shape[2], shape[3]) if all(isinstance(d, int) for d in shape[2:4]) else tuple(batch.shape[2:])
    x = torch.nn.functional.interpolate(batch, size=size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        ours = model.eval()(x).argmax(1).cpu().numpy()
    theirs = sess.run(None, {sess.get_inputs()[0].name: x.cpu().numpy()})[0].argmax(1)
    return float((ours == theirs).mean())


def _input_stats(model: nn.Module, bns: list[nn.BatchNorm2d], batches: list[torch.Tensor]) -> dict:
    """Per-channel mean and (population) variance of each BatchNorm's input over the batches, in eval mode."""
    acc: dict[nn.Module, list[torch.Tensor]] = {bn: [0, 0, 0] for bn in bns}

    def hook(mod, inp, _out):
        y = inp[0].detach().double()
        a = acc[mod]
        a[0] = a[0] + y.sum((0, 2, 3))
        a[1] = a[1] + (y * y).sum((0, 2, 3))
        a[2] += y.numel() // y.shape[1]

    hooks = [bn.register_forward_hook(hook) for bn in bns]
    try:
        with torch.no_grad():
            model.eval()
            for b in batches:
                model(b)
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for bn, (s, ss, n) in acc.items():
        mean = s / n
        out[bn] = (mean.float(), (ss / n - mean * mean).clamp_min(0).float())
    return out
