"""The core's two backends on the same exported model: ONNX Runtime and PyTorch (TorchScript), the device-side
path, and fastai learner pickles behind an explicit opt-in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ai4mars_training.cli import main
from test_fit_export import FIT, NOTEBOOK

from ai4mars_perception.core.image_codec import read_image_file
from ai4mars_perception.core.model_metadata import ModelLoadError
from ai4mars_perception.core.segmenter import Segmenter

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "navcam"


@pytest.fixture(scope="module")
def exported(real_subset, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("backends")
    assert main(["fit", "--data", str(real_subset), "--out", str(tmp / "run"), *FIT]) == 0
    assert main(["export", "--run", str(tmp / "run"), "--out", str(tmp / "export"), "--frames", str(SAMPLES)]) == 0
    return tmp / "export"


def test_torch_and_onnxruntime_agree_on_navcam_frames(exported):
    ort = Segmenter(exported / "model.onnx", "cpu")
    torch_seg = Segmenter(exported / "model.onnx", "cpu", backend="torch")  # the model.pt beside it
    assert ort.provider == "CPUExecutionProvider" and torch_seg.provider == "torch-cpu"
    assert torch_seg.metadata.to_json() == ort.metadata.to_json()
    agree = total = 0
    for path in sorted(SAMPLES.glob("*.JPG")):
        frame = read_image_file(path)
        a, b = ort.segment(frame), torch_seg.segment(frame)
        agree, total = agree + int((a == b).sum()), total + a.size
    assert agree / total >= 0.999
    # the device-side path (what runs on CUDA), here on the CPU: same masks
    frame = read_image_file(sorted(SAMPLES.glob("*.JPG"))[0])
    mask, logits = torch_seg.backend.device_segment(frame, None)
    assert mask.shape == frame.shape and logits.shape[0] == 4
    assert (mask == ort.segment(frame)).mean() >= 0.999


def test_backend_choice_errors(exported, tmp_path):
    with pytest.raises(ModelLoadError, match="PyTorch model"):
        Segmenter(exported / "model.pt", "cpu", backend="onnxruntime")
    lone = tmp_path / "lone.onnx"
    lone.write_bytes((exported / "model.onnx").read_bytes())
    with pytest.raises(ModelLoadError, match="TorchScript export"):
        Segmenter(lone, "cpu", backend="torch")
    assert Segmenter(exported / "model.pt", "cpu").provider == "torch-cpu"  # by suffix


@pytest.mark.parametrize("classes", [4, 5])
def test_notebook_learner_pickle_needs_the_opt_in(synthetic_set, tmp_path, classes):
    script = tmp_path / "notebook.py"
    script.write_text(NOTEBOOK)
    pkl = tmp_path / "export.pkl"
    r = subprocess.run([sys.executable, str(script), str(synthetic_set), str(pkl), str(classes)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    with pytest.raises(ModelLoadError, match="runs code from the file"):
        Segmenter(pkl, "cpu")
    seg = Segmenter(pkl, "cpu", allow_pickle=True)
    assert seg.metadata.null_class == (4 if classes == 5 else None) and seg.input_size == (64, 64)
    mask = seg.segment(np.full((100, 120), 128, np.uint8))
    assert mask.shape == (100, 120) and set(np.unique(mask)) <= {0, 1, 2, 3, 255}
    assert "get_label" not in dir(sys.modules["__main__"])
