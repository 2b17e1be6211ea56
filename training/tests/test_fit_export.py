"""fit → evaluate → export on real and synthetic data at 64², on CPU; torchrun; reference-notebook learners."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from ai4mars_training.cli import main
from helpers import FIT, SAMPLES

from ai4mars_perception.core.image_codec import read_image_file
from ai4mars_perception.core.model.metadata import METADATA_KEY, ModelMetadata
from ai4mars_perception.core.model.parity import compare_logits
from ai4mars_perception.core.segmenter import Segmenter


def _fit_export(data: Path, tmp: Path) -> tuple[Path, Path]:
    run, exp = tmp / "run", tmp / "export"
    assert main(["fit", "--data", str(data), "--out", str(run), *FIT]) == 0
    assert main(["export", "--run", str(run), "--out", str(exp), "--frames", str(SAMPLES)]) == 0
    return run, exp


def _check_run_export_evaluate(run: Path, exp: Path, data: Path, tmp: Path) -> dict:
    """What fit and export wrote, then evaluate on the ONNX model and on the learner: the same numbers."""
    history = list(csv.DictReader((run / "history.csv").open()))
    assert len(history) == 1 and 0.0 <= float(history[0]["miou"]) <= 1.0
    assert (run / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the curves, drawn
    report = json.loads((exp / "export.json").read_text())
    assert report["parity_ok"] and report["decisive_argmax_agreement"] == 1.0
    ev = tmp / "eval"
    assert main(["evaluate", "--model", str(exp / "model.onnx"), "--data", str(data), "--out", str(ev),
                 "--valid-pct", "0.25"]) == 0  # fmt: skip
    metrics = json.loads((ev / "metrics.json").read_text())
    assert set(metrics["iou"]) == {"soil", "bedrock", "sand", "big_rock"}
    assert (ev / "confusion.png").stat().st_size > 1000 and (ev / "worst.png").stat().st_size > 1000
    # the learner evaluates through the same core, at its training size: same numbers as the shipped ONNX
    ev_pkl = tmp / "eval_pkl"
    args = ["evaluate", "--model", str(run / "learner.pkl"), "--data", str(data), "--out", str(ev_pkl)]
    assert main([*args, "--valid-pct", "0.25"]) == 0
    from_pkl = json.loads((ev_pkl / "metrics.json").read_text())
    assert abs(from_pkl["miou"] - metrics["miou"]) < 1e-3 and from_pkl["pixels"] == metrics["pixels"]
    return {"run": run, "export": exp, "metrics": metrics, "report": report}


def _check_onnx_drives_core(onnx_path: Path) -> None:
    meta = ModelMetadata.from_json({p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}[METADATA_KEY])
    assert meta.input.height == 64 and meta.class_names == ["soil", "bedrock", "sand", "big_rock"]
    seg = Segmenter(onnx_path, "cpu")
    frame = read_image_file(sorted(SAMPLES.glob("*.JPG"))[0])
    mask = seg.segment(frame)
    assert mask.shape == (1024, 1024) and set(np.unique(mask)) <= {0, 1, 2, 3}


def test_synthetic_fit_evaluate_export(synthetic_set, tmp_path):
    out = _check_run_export_evaluate(*_fit_export(synthetic_set, tmp_path), synthetic_set, tmp_path)
    _check_onnx_drives_core(out["export"] / "model.onnx")
    run = json.loads((out["run"] / "run.json").read_text())
    assert run["data"]["pretrained"] == "none" and run["data"]["train_pairs"] + run["data"]["valid_pairs"] == 24


def test_real_fit_evaluate_export_and_fresh_process_load(real_subset, smoke_run, smoke_export, tmp_path):
    out = _check_run_export_evaluate(smoke_run, smoke_export, real_subset, tmp_path)
    _check_onnx_drives_core(out["export"] / "model.onnx")
    meta = Segmenter(out["export"] / "model.onnx", "cpu").metadata
    assert "miou" in meta.metrics and meta.training["config"]["size"] == 64
    # learner.pkl loads in a fresh process that has only fastai and this package
    code = "from fastai.learner import load_learner; import sys; print(type(load_learner(sys.argv[1]).model).__name__)"
    r = subprocess.run(
        [sys.executable, "-c", code, str(out["export"] / "learner.pkl")], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert "DynamicUnet" in r.stdout


def test_resume_continues_from_last_checkpoint(synthetic_set, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = Path("run")  # relative run folders work too
    assert main(["fit", "--data", str(synthetic_set), "--out", str(run), *FIT]) == 0
    assert main(["fit", "--data", str(synthetic_set), "--out", str(run), *FIT, "--resume"]) == 0
    rows = [r for r in csv.reader((run / "history.csv").open()) if r and r[0] != "epoch"]
    assert len(rows) == 2


def test_resume_without_checkpoint_is_a_clear_error(synthetic_set, tmp_path, capsys):
    assert main(["fit", "--data", str(synthetic_set), "--out", str(tmp_path / "new"), *FIT, "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_offline_pretrained_stops_with_a_clear_message(synthetic_set, tmp_path):
    env = dict(
        os.environ, TORCH_HOME=str(tmp_path / "hub"), HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9"
    )
    r = subprocess.run(
        [sys.executable, "-m", "ai4mars_training.cli", "fit", "--data", str(synthetic_set),
         "--out", str(tmp_path / "r"), "--size", "64", "--epochs", "1"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert "--no-pretrained" in r.stderr and "Traceback" not in r.stderr


def test_local_pretrained_weights_are_loaded(synthetic_set, tmp_path):
    import torch
    from ai4mars_training.fit.train import FitConfig, prepare
    from torchvision.models import resnet18

    torch.manual_seed(5)
    state = resnet18(weights=None).state_dict()
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    learn, info = prepare(
        FitConfig(data=str(synthetic_set), out=str(tmp_path / "r"), size=64, pretrained_weights=str(path))
    )
    assert info["pretrained"] == "file"
    assert torch.equal(learn.model[0][0].weight, state["conv1.weight"])
    assert torch.equal(learn.model[0][7][1].conv2.weight, state["layer4.1.conv2.weight"])
    bad = tmp_path / "bad.pth"
    torch.save({"foo": torch.zeros(1)}, bad)
    with pytest.raises(Exception, match="not a torchvision resnet18 state dict"):
        prepare(FitConfig(data=str(synthetic_set), out=str(tmp_path / "r2"), size=64, pretrained_weights=str(bad)))


def test_torchrun_two_gloo_processes(synthetic_set, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    r = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "ai4mars_training.cli", "fit",
         "--data", str(synthetic_set), "--out", str(tmp_path / "ddp"), *FIT],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert run["world_size"] == 2
    assert (tmp_path / "ddp" / "learner.pkl").is_file()


@pytest.mark.parametrize("classes", [4, 5])
def test_convert_reference_notebook_learner(notebook_learner, tmp_path, classes):
    pkl = notebook_learner(classes)
    out = tmp_path / "converted"
    assert main(["export", "--learner", str(pkl), "--out", str(out), "--size", "64"]) == 0
    seg = Segmenter(out / "model.onnx", "cpu")
    assert seg.metadata.null_class == (4 if classes == 5 else None)
    mask = seg.segment(np.full((100, 120), 128, np.uint8))
    assert mask.shape == (100, 120)
    assert "get_label" not in dir(sys.modules["__main__"])


def test_export_of_missing_or_bad_learner(tmp_path, capsys):
    assert main(["export", "--learner", str(tmp_path / "none.pkl"), "--out", str(tmp_path / "o")]) == 2
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a pickle")
    assert main(["export", "--learner", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "not a loadable fastai learner" in err


def test_init_from_an_earlier_run_loads_every_weight(synthetic_set, tmp_path, capsys):
    import torch
    from ai4mars_training.fit.train import FitConfig, prepare

    torch.manual_seed(3)
    first, _ = prepare(FitConfig(data=str(synthetic_set), out=str(tmp_path / "a"), size=64, pretrained=False))
    best = Path(first.save("best", with_opt=False))  # what SaveModelCallback writes: models/best.pth
    torch.manual_seed(4)  # another random start: equality below comes from the file
    learn, info = prepare(FitConfig(data=str(synthetic_set), out=str(tmp_path / "b"), size=64, init_from=str(best)))
    assert info["pretrained"] == "none" and info["init_from"]["path"] == str(best.resolve())
    for (name, a), b in zip(first.model.state_dict().items(), learn.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # the CLI trains from it (a fresh one-cycle, no frozen phase) and records the start weights
    out = tmp_path / "c"
    assert main(["fit", "--data", str(synthetic_set), "--out", str(out), *FIT, "--init-from", str(best)]) == 0
    assert json.loads((out / "run.json").read_text())["data"]["init_from"]["sha256"] == info["init_from"]["sha256"]
    # weights of another class count: one sentence, exit 2
    args = ["fit", "--data", str(synthetic_set), "--out", str(tmp_path / "d"), *FIT, "--init-from", str(best)]
    assert main([*args, "--null-class"]) == 2
    err = capsys.readouterr().err
    assert "does not fit this U-Net" in err and "Traceback" not in err
    assert main([*args[:-1], str(tmp_path / "missing.pth")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_init_from_an_exported_onnx_model_rebuilds_the_unet(synthetic_set, tmp_path, capsys):
    """Fine-tuning a shipped model: its ONNX (BatchNorms folded into the convolutions, fp32 or fp16-stored)
    becomes a trainable U-Net that computes the same logits."""
    import torch
    from ai4mars_training.export.export import export_onnx, store_weights_fp16
    from ai4mars_training.fit.train import FitConfig, prepare

    torch.manual_seed(5)
    first, _ = prepare(FitConfig(data=str(synthetic_set), out=str(tmp_path / "a"), size=64, pretrained=False))
    model = first.model
    with torch.no_grad():  # non-trivial BatchNorms, as after training: random affine, statistics of real batches
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
        model.train()
        for xb, _ in first.dls.train:
            model(xb)
    meta = ModelMetadata(model_version="test-64")
    fp32, fp16 = tmp_path / "m.onnx", tmp_path / "m16.onnx"
    export_onnx(model, fp32, 64, meta)
    export_onnx(model, fp16, 64, meta)
    store_weights_fp16(fp16)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = model.eval()(x)
    for path, atol in ((fp32, 1e-3), (fp16, 5e-2)):
        torch.manual_seed(6)  # another random start: the weights come from the file
        learn, info = prepare(FitConfig(data=str(synthetic_set), out=str(tmp_path / path.stem), size=64,
                                        init_from=str(path)))  # fmt: skip
        report = info["init_from"]["onnx"]
        n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in learn.model.modules())
        assert report["batchnorms_kept"] > 0 and report["batchnorms_rebuilt"] + report["batchnorms_kept"] == n_bn
        assert report["argmax_agreement"] >= 0.95  # what prepare() itself demands; the exact check follows
        with torch.no_grad():
            got = learn.model.eval()(x)
        # logits within atol of the largest, the same class wherever the margin exceeds that: true on any CPU
        same = compare_logits(want.numpy(), got.numpy(), rtol=atol)
        assert same["ok"], (path.name, same)
        # training mode (batch statistics) starts close to the original too: the rebuilt BatchNorms are not identities
        bn = next(m for m in learn.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    # another class count: one sentence, exit 2
    args = ["fit", "--data", str(synthetic_set), "--out", str(tmp_path / "d"), *FIT, "--init-from", str(fp32)]
    assert main([*args, "--null-class"]) == 2
    err = capsys.readouterr().err
    assert "does not fit this U-Net" in err and "Traceback" not in err
    int8 = Path(__file__).resolve().parents[2] / "models" / "ai4mars_unet_r18_int8.onnx"  # the shipped CPU model
    assert main([*args[:-1], str(int8)]) == 2
    assert "is an int8 model" in capsys.readouterr().err
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    assert main([*args[:-1], str(tmp_path / "bad.onnx")]) == 2
    assert "is not a readable ONNX model" in capsys.readouterr().err
