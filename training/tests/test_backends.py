"""The core's two backends on the same exported model: ONNX Runtime and PyTorch (TorchScript, or the ONNX file
converted at load time), the device-side path, and fastai learner pickles behind an explicit opt-in."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ai4mars_perception.core.image_codec import read_image_file
from ai4mars_perception.core.model.metadata import ModelLoadError
from ai4mars_perception.core.model.parity import compare_logits, top2_margin
from ai4mars_perception.core.segmenter import Segmenter

SHIPPED = Path(__file__).resolve().parents[2] / "models"


def _logits_agree(reference: Segmenter, other: Segmenter, frames: list[Path], rtol: float = 1e-3) -> None:
    """On every frame: logits within ``rtol`` of the largest, and the same class in the returned masks wherever
    the reference's top-2 margin exceeds that tolerance (the test that holds on any CPU; pixels whose two best
    classes nearly tie may flip with the rounding of AVX2 vs AVX-512 kernels)."""
    for path in frames:
        frame = read_image_file(path)
        mask_a, logits_a = reference.run(frame)
        mask_b, logits_b = other.run(frame)
        report = compare_logits(logits_a, logits_b, rtol)
        assert report["ok"], (path.name, report)
        decisive = top2_margin(logits_a) > report["tolerance"]
        decisive = cv2.resize(decisive.astype(np.uint8), frame.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
        assert (mask_a[decisive] == mask_b[decisive]).all(), path.name


def test_torch_and_onnxruntime_agree_on_navcam_frames(smoke_export, navcam_frames, tmp_path):
    ort = Segmenter(smoke_export / "model.onnx", "cpu")
    scripted = Segmenter(smoke_export / "model.onnx", "cpu", backend="torch")  # the model.pt beside it
    lone = tmp_path / "lone.onnx"  # no TorchScript twin: converted from the ONNX file at load time
    lone.write_bytes((smoke_export / "model.onnx").read_bytes())
    converted = Segmenter(lone, "cpu", backend="torch")
    for seg in (scripted, converted):
        assert seg.provider == "torch-cpu" and seg.metadata.to_json() == ort.metadata.to_json()
        _logits_agree(ort, seg, navcam_frames)
    # the device-side path (what runs on CUDA), here on the CPU: same logits, same mask where the class is clear
    frame = read_image_file(navcam_frames[0])
    mask, logits = converted.backend.device_segment(frame, None)
    ort_mask, ort_logits = ort.run(frame)
    assert mask.shape == frame.shape and logits.shape == ort_logits.shape
    # the numpy path resizes the uint8 frame with OpenCV (rounded to uint8), the device path averages in float:
    # inputs differ by up to half a grey level, so the logit tolerance is looser than between backends
    report = compare_logits(ort_logits, logits, rtol=2e-2)
    assert report["ok"], report
    decisive = top2_margin(ort_logits) > report["tolerance"]
    decisive = cv2.resize(decisive.astype(np.uint8), frame.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    assert (mask[decisive] == ort_mask[decisive]).all()


def test_the_shipped_float_model_runs_on_the_pytorch_backend(navcam_frames):
    """No TorchScript twin ships: backend torch converts models/ai4mars_unet_r18.onnx (float16-stored) itself."""
    float_model = SHIPPED / "ai4mars_unet_r18.onnx"
    assert not float_model.with_suffix(".pt").exists()
    ort = Segmenter(float_model, "cpu")
    seg = Segmenter(float_model, "cpu", backend="torch")
    assert seg.provider == "torch-cpu" and seg.metadata.model_version == ort.metadata.model_version
    _logits_agree(ort, seg, navcam_frames)


def test_backend_choice_errors(smoke_export, tmp_path):
    with pytest.raises(ModelLoadError, match="PyTorch model"):
        Segmenter(smoke_export / "model.pt", "cpu", backend="onnxruntime")
    with pytest.raises(ModelLoadError, match="quantized .int8. model"):  # int8 is for ONNX Runtime on a CPU
        Segmenter(SHIPPED / "ai4mars_unet_r18_int8.onnx", "cpu", backend="torch")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        Segmenter(bad, "cpu", backend="torch")
    assert Segmenter(smoke_export / "model.pt", "cpu").provider == "torch-cpu"  # by suffix


@pytest.mark.parametrize("classes", [4, 5])
def test_notebook_learner_pickle_needs_the_opt_in(notebook_learner, classes):
    pkl = notebook_learner(classes)
    with pytest.raises(ModelLoadError, match="runs code from the file"):
        Segmenter(pkl, "cpu")
    seg = Segmenter(pkl, "cpu", allow_pickle=True)
    assert seg.metadata.null_class == (4 if classes == 5 else None) and seg.input_size == (64, 64)
    mask = seg.segment(np.full((100, 120), 128, np.uint8))
    assert mask.shape == (100, 120) and set(np.unique(mask)) <= {0, 1, 2, 3, 255}
    assert "get_label" not in dir(sys.modules["__main__"])
