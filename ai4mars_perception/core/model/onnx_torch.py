"""A float ONNX export as a PyTorch module, converted at load time with onnx2torch (no TorchScript twin needed).

Weights stored as float16 (``ai4mars-train export --fp16-weights``: each large initializer followed by a Cast back
to float32) are turned back into float32 initializers first, so the module holds ordinary float32 parameters that
``.half()`` and ``channels_last`` act on. Quantized (int8) models are refused: they are for ONNX Runtime on a CPU.
Needs torch, onnx and onnx2torch (``pip install 'ai4mars_perception[torch]'``); imported only by the torch backend.
"""

from __future__ import annotations

from pathlib import Path

from ai4mars_perception.core.model.metadata import METADATA_KEY, ModelLoadError

QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul"}


def _unfold_fp16_weights(model) -> int:
    """Replace every ``Cast(float16 initializer) → float32`` by a float32 initializer; returns how many."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    keep, replaced = [], 0
    for node in graph.node:
        source = inits.get(node.input[0]) if node.op_type == "Cast" and node.input else None
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if source is not None and source.data_type == TensorProto.FLOAT16 and to == TensorProto.FLOAT:
            array = numpy_helper.to_array(source).astype("float32")
            graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
            replaced += 1
        else:
            keep.append(node)
    if replaced:
        used = {name for n in keep for name in n.input}
        stale = [i for i in graph.initializer if i.data_type == TensorProto.FLOAT16 and i.name not in used]
        for init in stale:
            graph.initializer.remove(init)
        del graph.node[:]
        graph.node.extend(keep)
    return replaced


def torch_module_from_onnx(path: Path):
    """(torch module in eval mode, the model's metadata JSON text) for a float ONNX export."""
    try:
        import onnx
        from onnx2torch import convert
    except ImportError:
        raise ModelLoadError(
            "backend torch converts the ONNX model with onnx2torch: pip install 'ai4mars_perception[torch]'"
        ) from None
    try:
        model = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError and friends
        raise ModelLoadError(f"{path} is not a loadable ONNX model: {str(e).splitlines()[0]}") from None
    quantized = sorted({n.op_type for n in model.graph.node} & QUANTIZED_OPS)
    if quantized:
        raise ModelLoadError(
            f"{path.name} is a quantized (int8) model ({', '.join(quantized)}), which runs in ONNX Runtime on a CPU; "
            "backend torch needs the float model (e.g. models/ai4mars_unet_r18.onnx)"
        )
    meta = next((p.value for p in model.metadata_props if p.key == METADATA_KEY), "")
    _unfold_fp16_weights(model)
    try:
        module = convert(model)
    except Exception as e:  # onnx2torch raises NotImplementedError and others for unsupported graphs
        raise ModelLoadError(f"{path.name} could not be converted to PyTorch: {str(e).splitlines()[0]}") from None
    return module.eval(), meta
