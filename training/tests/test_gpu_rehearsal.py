"""Rehearsal of the release-model GPU shot on the CPU: the very script the device command runs
(training/gpu/shot.sh), in a fresh virtual environment that gets fastai only from the carried wheels (.whl/),
on a tiny packed subset (64 frames) with a 30 s budget; then the local half (receive, export) on what came back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ai4mars_perception.core.segmenter import Segmenter

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "ai4mars-256"
CARRIED = ("fastai", "fastcore", "fastprogress", "fastdownload", "fasttransform", "plum", "beartype")
OURS = ("ai4mars_perception", "ai4mars_training")
START = ROOT / "models" / "ai4mars_unet_r18.onnx"  # warm start: the shipped model, as .data/init carries it


def _wheels() -> Path:
    """.whl/ as ``make gpu-wheels`` fills it (downloaded here when absent)."""
    whl = ROOT / ".whl"
    if not list(whl.glob("fastai-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "py", "--abi", "none", "--platform", "any",
                        "-d", str(whl), "-r", str(ROOT / "requirements" / "gpu-wheels.txt")], check=True)  # fmt: skip
    return whl


def _gpu_like_env(tmp: Path) -> Path:
    """A fresh venv that sees this venv's packages except fastai and its carried dependencies (as the GPU
    machine has torch and friends but no fastai) and except our own packages (the shot runs the checkout's)."""
    shadow = tmp / "shadow"
    shadow.mkdir()
    site = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()))
    for entry in site.iterdir():
        name = entry.name.lower().replace("-", "_")
        if name.startswith(CARRIED) or name.startswith(OURS) or name.endswith(".pth") or name == "__pycache__":
            continue
        (shadow / entry.name).symlink_to(entry)
    env = tmp / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    py = env / "bin" / "python"
    env_site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (Path(env_site) / "gpu_like.pth").write_text(str(shadow) + "\n")
    missing = subprocess.run([str(py), "-c", "import fastai"], capture_output=True)
    assert missing.returncode != 0, "the rehearsal environment must not have fastai before the wheels"
    return py


@pytest.mark.skipif(not (DATA / "msl" / "labels" / "train").is_dir(), reason="shared AI4Mars data not present")
def test_gpu_shot_rehearsal_on_the_cpu(tmp_path):
    whl = _wheels()
    py = _gpu_like_env(tmp_path)
    pack = tmp_path / "pack"
    subprocess.run([sys.executable, "-m", "ai4mars_training.cli", "pack", "--data", str(DATA), "--out", str(pack),
                    "--limit", "64", "--archive"], check=True)  # fmt: skip
    shutil.rmtree(pack)  # the pack travels as one archive; the shot unpacks it
    out = tmp_path / "OUT"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "SHOT_PYTHON": str(py), "SHOT_SITE": str(tmp_path / "site"), "SHOT_PACK": str(pack),
           "TMPDIR": str(scratch)}  # fmt: skip
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(ROOT / "training" / "gpu" / "shot.sh"), str(out), "0.5", "--size", "64", "--bs", "8",
                        "--precision", "bf16", "--workers", "2", "--bench-repeats", "1", "--bench-inputs", "64,128",
                        "--lr", "1e-3",
                        "--loss", "dice", "--class-weights", "0.8,0.71,1.52,3.16", "--init-from", str(START),
                        "--profile-steps", "2", "--optimizer", "adamw-fused", "--loader", "device", "--ema", "0.99"],
                       env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"fastai 2.8.12 from {tmp_path / 'site'}" in r.stdout  # from the carried wheels, nowhere else
    assert not list(scratch.glob("ai4mars-shot-*"))  # the scratch run folder (~0.6 GB at 256²) is removed
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and all((out / f).stat().st_size <= 16 * 2**20 for f in files)
    assert {"run.json", "history.csv", "train.log", "weights.fp16.part0"} <= set(files)
    run = json.loads((out / "run.json").read_text())
    # the budget shaped the run: it ended with the epoch count it last decided (how many depends on the machine;
    # the decisions themselves are tested with an injected clock in test_cpu_training)
    decided = run["time_budget"]["epochs_decided"]
    assert run["time_budget"]["minutes"] == 0.5 and len(run["history"]) == decided[-1] == len(decided)
    assert run["throughput"] and 0 <= run["throughput"][0]["data_wait_fraction"] <= 1
    assert run["config"]["loader"] == "device" and run["config"]["ema"] == 0.99  # the next shot's data path
    assert run["profile"]["steps"] == 2 and run["profile"]["epoch"] == 0 and run["profile"]["top"]
    rows = run["inference_bench"]["rows"]
    assert {row["model_input"] for row in rows} == {64, 128} and not [r for r in rows if "error" in r], rows
    assert run["pack"]["frames"] == 64 and whl.is_dir()
    assert run["data"]["init_from"]["onnx"]["argmax_agreement"] >= 0.95  # the shipped model, rebuilt
    # the local half: reassemble, rebuild, export, run in the core
    received, export = tmp_path / "received", tmp_path / "export"
    assert "shot: unpacked" in r.stdout and (pack / "manifest.json").is_file()
    subprocess.run([sys.executable, "-m", "ai4mars_training.cli", "receive", "--shot", str(out), "--data", str(pack),
                    "--out", str(received)], check=True)  # fmt: skip
    assert (received / "train.log").read_text() == (out / "train.log").read_text()
    assert (received / "history.png").is_file()
    subprocess.run([sys.executable, "-m", "ai4mars_training.cli", "export", "--run", str(received), "--out",
                    str(export), "--fp16-weights", "--model-version", "rehearsal"], check=True)  # fmt: skip
    seg = Segmenter(export / "model.onnx", "cpu")
    assert seg.metadata.model_version == "rehearsal" and seg.input_size == (64, 64)
    mask, _ = seg.run(np.full((300, 200), 120, np.uint8))
    assert mask.shape == (300, 200)
    # the benchmark's own device command, in the same GPU-like environment (fastai from the wheels only)
    bench_out = tmp_path / "BENCH"
    b = subprocess.run([str(ROOT / "training" / "gpu" / "bench.sh"), str(bench_out), "--repeats", "1", "--inputs",
                        "64"], env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert b.returncode == 0, b.stdout[-3000:] + b.stderr[-3000:]
    bench = json.loads((bench_out / "bench.json").read_text())
    assert "random weights" in bench["model"] and (bench_out / "bench.log").is_file()
    assert {row["model_input"] for row in bench["rows"]} == {64}
    assert all(row["frames_per_s"] > 0 and row["mask_shape"] == [1024, 1024] for row in bench["rows"])


def test_a_shot_whose_start_weights_are_missing_trains_from_scratch(tmp_path, capsys):
    """The start weights travel in an earlier command; if the machine was given back in between they are gone,
    and the shot must still train (from scratch) rather than fail."""
    from ai4mars_training.fit.train import FitConfig
    from ai4mars_training.remote.shot import start_weights

    cfg = FitConfig(data="pack", init_from=str(tmp_path / "gone.onnx"))
    assert start_weights(cfg).init_from is None
    assert "training from scratch" in capsys.readouterr().out
    there = tmp_path / "start.onnx"
    there.write_bytes(b"x")
    assert start_weights(FitConfig(data="pack", init_from=str(there))).init_from == str(there)
