"""``bench --compare-notebook``: the AI4Mars reference notebook's inference path, fastai ``learner.predict`` on a
frame file, timed in the same run as our node; and this CPU's compute limits (fp32 and int8 GEMM in ONNX Runtime)
to measure the forward against.

The notebook's learner is built the way the AI4Mars reference notebook builds it (``SegmentationDataLoaders`` with
``Resize`` to the model's input size, ``unet_learner(dls, resnet18)``); its weights do not change its speed.
Needs fastai (the training stack); without it the comparison is skipped with a sentence.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def cpu_limits(n: int = 1024, repeats: int = 10) -> dict:
    """This CPU's compute limits as ONNX Runtime reaches them: an n x n x n fp32 MatMul (GFLOP/s) and the same
    product in int8 (MatMulInteger u8 x s8, GOP/s; VNNI where the CPU has it), median of ``repeats``."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    result = {"gemm_size": n}
    for name, op, a_type, b in (
        ("fp32_gflops", "MatMul", TensorProto.FLOAT, rng.standard_normal((n, n), np.float32)),
        ("int8_gops", "MatMulInteger", TensorProto.UINT8, rng.integers(-128, 128, (n, n), dtype=np.int8)),
    ):
        out_type = TensorProto.FLOAT if op == "MatMul" else TensorProto.INT32
        graph = helper.make_graph(
            [helper.make_node(op, ["a", "b"], ["c"])], "gemm", [helper.make_tensor_value_info("a", a_type, [n, n])],
            [helper.make_tensor_value_info("c", out_type, [n, n])], [numpy_helper.from_array(b, "b")],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        a = rng.standard_normal((n, n), np.float32) if op == "MatMul" else rng.integers(0, 256, (n, n), np.uint8)
        session.run(None, {"a": a})
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            session.run(None, {"a": a})
            times.append(time.perf_counter() - t)
        result[name] = round(2 * n**3 / statistics.median(times) / 1e9, 1)
    result["cores"] = os.cpu_count()
    return result


def notebook_predict_ms(frame_file: Path, size: int, repeats: int) -> dict:
    """Median ms of ``learner.predict(frame_file)`` with a notebook-style U-Net R18 learner at ``size``²."""
    from fastai.vision.all import Resize, SegmentationDataLoaders, get_image_files, resnet18, unet_learner

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        (root / "labels").mkdir()
        for i in range(2):
            cv2.imwrite(str(root / "images" / f"f{i}.png"), np.full((size, size), 100, np.uint8))
            cv2.imwrite(str(root / "labels" / f"f{i}.png"), np.zeros((size, size), np.uint8))
        dls = SegmentationDataLoaders.from_label_func(
            root, get_image_files(root / "images"), lambda p: root / "labels" / p.name,
            codes=["soil", "bedrock", "sand", "big_rock"], bs=1, item_tfms=Resize(size), num_workers=0,
        )  # fmt: skip
        learn = unet_learner(dls, resnet18, pretrained=False, n_out=4)
        with learn.no_bar(), learn.no_logging():
            learn.predict(frame_file)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                mask = learn.predict(frame_file)[0]
                times.append(time.perf_counter() - t)
    return {"median_ms": 1000 * statistics.median(times), "n": repeats, "mask_shape": list(np.asarray(mask).shape)}
