"""CPU training features: bf16 autocast callback, native-scale crops, the time budget, the throughput bench."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ai4mars_training.cli import main
from ai4mars_training.fit.callbacks import BF16Autocast, TimeBudget, cpu_has_bf16, resolve_precision
from ai4mars_training.fit.train import FitConfig, prepare
from fastai.callback.core import Callback
from helpers import FIT


def test_precision_choice(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n")
    assert cpu_has_bf16(info)
    info.write_text("processor: 0\nflags\t\t: fpu sse2 avx2\n")
    assert not cpu_has_bf16(info)
    assert not cpu_has_bf16(tmp_path / "missing")
    assert resolve_precision("auto", cuda=False, bf16_cpu=True) == "bf16"
    assert resolve_precision("auto", cuda=False, bf16_cpu=False) == "fp32"
    assert resolve_precision("auto", cuda=True, bf16_cpu=False) == "fp16"
    assert resolve_precision("bf16", cuda=False, bf16_cpu=False) == "bf16"
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        resolve_precision("fp16", cuda=False)


def test_fp16_on_cpu_is_a_clear_cli_error(synthetic_set, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    args = ["fit", "--data", str(synthetic_set), "--out", str(tmp_path / "r"), *FIT, "--precision", "fp16"]
    assert main(args) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_bf16_callback_runs_the_forward_in_bf16_channels_last(synthetic_set, tmp_path):
    learn, _ = prepare(FitConfig(data=str(synthetic_set), out=str(tmp_path / "r"), size=64, batch_size=4,
                                 pretrained=False, epochs=1))  # fmt: skip
    learn.unfreeze()
    seen = {}

    def hook(module, inputs, output):
        if module.training:
            seen["dtype"], seen["cl"] = output.dtype, inputs[0].is_contiguous(memory_format=torch.channels_last)

    handle = learn.model[0][0].register_forward_hook(hook)
    learn.add_cb(BF16Autocast())
    learn.fit(1, 1e-4)
    handle.remove()
    assert seen == {"dtype": torch.bfloat16, "cl": True}
    # master weights stay fp32 and the model is back in the default layout after the fit
    assert all(p.dtype == torch.float32 for p in learn.model.parameters())
    assert learn.model[0][0].weight.is_contiguous()
    assert np.isfinite(learn.recorder.values[-1][0])


def test_crops_train_windows_and_validate_whole_frames(synthetic_set, tmp_path):
    cfg = FitConfig(data=str(synthetic_set), out=str(tmp_path / "r"), size=64, batch_size=4, pretrained=False,
                    crop=32, augment=False)  # fmt: skip
    learn, _ = prepare(cfg)
    xb, yb = learn.dls.train.one_batch()
    assert xb.shape[-2:] == (32, 32) and yb.shape[-2:] == (32, 32)
    xv, yv = learn.dls.valid.one_batch()
    assert xv.shape[-2:] == (64, 64) and yv.shape[-2:] == (64, 64)
    # image and label were cut from the same window: rocks (label 3) are dark, sand (2) is bright
    gray = learn.dls.train.decode((xb, yb))[0].float().mean(1)
    if (yb == 3).any() and (yb == 2).any():
        assert gray[yb == 3].mean() < 80 < gray[yb == 2].mean()
    with pytest.raises(Exception, match="--crop"):
        prepare(FitConfig(data=str(synthetic_set), out=str(tmp_path / "r2"), size=64, pretrained=False, crop=96))


class _Tick(Callback):
    """A test clock for TimeBudget: every training epoch 'takes' ``seconds[epoch]`` (the last entry repeats),
    spread evenly over its batches."""

    order = 60  # before TimeBudget (70) reads the clock after an epoch

    def __init__(self, seconds: list[float]) -> None:
        self.now, self.seconds = 0.0, seconds

    def after_batch(self) -> None:
        if self.training:
            self.now += self.seconds[min(self.epoch, len(self.seconds) - 1)] / len(self.dls.train)


@pytest.mark.parametrize(
    ("epoch_seconds", "start", "decided"),
    [
        ([2.0], 0.0, [3, 3, 3]),  # 2 s per epoch, 6 s: 3 epochs, decided after every epoch
        ([2.0, 6.0], 0.0, [3, 2]),  # the machine slows down in epoch 2 (8 s used): the run ends there
        ([2.0], -2.0, [2, 2]),  # an earlier phase used 2 s of the budget
    ],
)
def test_time_budget_decides_the_epoch_count_from_the_clock(synthetic_set, tmp_path, epoch_seconds, start, decided):
    """TimeBudget on a real fastai fit, with an injected clock: its decisions are the test, not elapsed time."""
    learn, _ = prepare(FitConfig(data=str(synthetic_set), out=str(tmp_path / "r"), size=64, batch_size=4, epochs=1,
                                 valid_pct=0.25, pretrained=False, precision="fp32", limit=12))  # fmt: skip
    tick = _Tick(epoch_seconds)
    budget = TimeBudget(0.1, start=start, clock=lambda: tick.now)
    learn.unfreeze()
    learn.fit_one_cycle(200, 1e-3, cbs=[tick, budget])
    assert budget.decided == decided
    assert len(learn.recorder.values) == decided[-1]  # the epochs that ran
    # the one-cycle schedule was stretched over the decided count: the last epoch ends at its end
    assert learn.pct_train == pytest.approx(1.0)


def test_time_budget_from_the_command_line_and_resume_works(synthetic_set, tmp_path):
    out = tmp_path / "budget"
    args = ["fit", "--data", str(synthetic_set), "--out", str(out), *FIT, "--epochs", "200", "--crop", "32"]
    assert main([*args, "--time-budget", "0.1"]) == 0
    run = json.loads((out / "run.json").read_text())
    decided = run["time_budget"]["epochs_decided"]
    assert run["precision"] == ("bf16" if cpu_has_bf16() else "fp32") and run["data"]["precision_reason"]
    assert run["config"]["crop"] == 32 and run["config"]["time_budget"] == 0.1
    # the one-cycle schedule ended with the decided epoch count (what the decisions were depends on this machine)
    assert len(run["history"]) == decided[-1] == len(decided) and decided[-1] <= 200
    # --resume continues with the same options
    assert main([*args, "--epochs", "1", "--resume"]) == 0
    assert len(json.loads((out / "run.json").read_text())["history"]) == decided[-1] + 1


def test_profile_steps_summarise_where_a_step_goes_and_a_shot_skips_last_checkpoints(synthetic_set, tmp_path):
    from ai4mars_training.fit.train import fit

    cfg = FitConfig(data=str(synthetic_set), out=str(tmp_path / "p"), size=64, batch_size=4, epochs=2, valid_pct=0.25,
                    pretrained=False, precision="fp32", profile_steps=2, save_last=False)  # fmt: skip
    run = fit(cfg)
    prof = run["profile"]
    assert prof["steps"] == 2 and prof["epoch"] == 0 and prof["wall_ms_per_step"] > 0
    assert prof["device_busy_fraction"] is None  # no GPU here: CPU operator times only
    ops = [row["op"] for row in prof["top"]]
    assert any("convolution" in op for op in ops), ops  # a U-Net step is mostly convolutions
    assert sum(row["self_ms_per_step"] for row in prof["top"]) <= prof["wall_ms_per_step"] * 1.05
    assert (tmp_path / "p" / "models" / "best.pth").is_file() and not (tmp_path / "p" / "models" / "last.pth").exists()


def test_profile_summary_counts_each_kernel_once():
    """On CUDA, key_averages() lists each operator (host, with the device time of the kernels it launched) and each
    kernel (device): the busy fraction must sum the kernels only (the first GPU profile summed both, busy 1.1)."""
    from types import SimpleNamespace as E

    from ai4mars_training.fit.profiling import summarise
    from torch.autograd import DeviceType

    events = [
        E(key="aten::cudnn_convolution", count=4, device_type=DeviceType.CPU, self_device_time_total=30_000.0,
          self_cpu_time_total=2_000.0),
        E(key="aten::add_", count=8, device_type=DeviceType.CPU, self_device_time_total=10_000.0,
          self_cpu_time_total=1_000.0),
        E(key="sm90_xmma_fprop", count=4, device_type=DeviceType.CUDA, self_device_time_total=30_000.0,
          self_cpu_time_total=0.0),
        E(key="elementwise_kernel", count=8, device_type=DeviceType.CUDA, self_device_time_total=10_000.0,
          self_cpu_time_total=0.0),
    ]  # fmt: skip
    s = summarise(events, steps=2, wall_s=0.080, cuda=True)
    assert s["device_kernel_ms_per_step"] == 20.0 and s["device_busy_fraction"] == 0.5 and s["wall_ms_per_step"] == 40
    assert [row["op"] for row in s["top"]] == ["aten::cudnn_convolution", "aten::add_"]  # operators name the rows
    assert s["top"][0]["self_ms_per_step"] == 15.0


def test_fused_adamw_makes_the_same_update_as_fastai_adam(synthetic_set, tmp_path):
    """--optimizer adamw-fused (one fused kernel for all parameters) is fastai's Adam update: the same betas
    (0.9, 0.99), eps, and decoupled weight decay only where fastai applies it (not BatchNorm or bias). Checked
    exactly: the learner's own optimizers, float64, the same gradients fed to both for five steps. (Comparing two
    float32 training runs instead compares each CPU's rounding, amplified by the network from step 2 on; an earlier
    version did, and failed on an AVX2 machine; it also hid that torch's AdamW decayed BatchNorm and bias.)"""
    torch.manual_seed(0)
    steps = [None] * 5
    start, after, types = None, [], []
    for name in ("adam", "adamw-fused"):
        cfg = FitConfig(data=str(synthetic_set), out=str(tmp_path / name), size=64, batch_size=4, valid_pct=0.25,
                        pretrained=False, precision="fp32", optimizer=name)  # fmt: skip
        learn, _ = prepare(cfg)
        learn.model.double()
        params = dict(learn.model.named_parameters())
        if start is None:
            start = {k: p.detach().clone() for k, p in params.items()}
            gen = torch.Generator().manual_seed(1)
            steps = [{k: torch.randn(p.shape, generator=gen, dtype=torch.float64) * 1e-3 for k, p in params.items()}
                     for _ in steps]  # fmt: skip
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(start[k])
        learn.create_opt()
        learn.opt.set_hyper("lr", 1e-2)
        for grads in steps:
            for k, p in params.items():
                p.grad = grads[k].clone()
            learn.opt.step()
            learn.opt.zero_grad()
        after.append({k: p.detach().clone() for k, p in params.items()})
        types.append(type(learn.opt).__name__)
    assert types == ["Optimizer", "FusedAdamW"]
    moved = {k: (after[0][k] - start[k]).abs().max().item() for k in start}
    assert min(moved.values()) > 1e-3  # every parameter took real steps
    differ = max((after[0][k] - after[1][k]).abs().max().item() for k in start)
    assert differ < 1e-12 * max(moved.values()), differ
    # the weight-decay rule mattered: with torch's decay on every parameter the BatchNorm weights differ
    bn = next(k for k in start if k.endswith(".weight") and start[k].ndim == 1)
    decayed_anyway = start[bn] * (1 - 1e-2 * 0.01) ** len(steps)
    assert (decayed_anyway - start[bn]).abs().max().item() > 1e3 * differ


def test_bench_reports_images_per_second(synthetic_set, tmp_path, capsys):
    report = tmp_path / "bench.json"
    args = ["bench", "--data", str(synthetic_set), *FIT, "--crops", "32,0", "--steps", "1", "--json", str(report)]
    assert main([*args, "--precisions", "fp32,auto", "--loaders", "fastai,device"]) == 0
    rows = json.loads(report.read_text())["rows"]
    auto = "bf16" if cpu_has_bf16() else "fp32"
    combos = [(c, p) for c in (32, 64) for p in ("fp32", auto)]
    assert [(r["loader"], r["crop"], r["precision"]) for r in rows] == [(lo, *c) for lo in ("fastai", "device")
                                                                        for c in combos]  # fmt: skip
    assert all(r["images_per_s"] > 0 and r["speedup_vs_fp32_same_crop"] > 0 for r in rows)
    assert all(r["speedup_vs_fastai_loader"] > 0 for r in rows)
    out = capsys.readouterr().out
    assert "fastest:" in out and "cpu: " in out and "precision: " in out  # the CPU and the precision choice said


def test_fp16_weight_storage_and_metrics_in_the_metadata(real_subset, smoke_run, smoke_export, tmp_path):
    from ai4mars_perception.core.model.parity import compare_logits
    from ai4mars_perception.core.segmenter import Segmenter

    assert main(["evaluate", "--model", str(smoke_run / "learner.pkl"), "--data", str(real_subset), "--out",
                 str(tmp_path / "eval"), "--valid-pct", "0.25"]) == 0  # fmt: skip
    full, half = smoke_export, tmp_path / "fp16"
    assert main(["export", "--run", str(smoke_run), "--out", str(half), "--model-version", "cpu-interim-test",
                 "--fp16-weights", "--metrics", str(tmp_path / "eval" / "metrics.json")]) == 0  # fmt: skip
    size32, size16 = (full / "model.onnx").stat().st_size, (half / "model.onnx").stat().st_size
    assert 0.45 < size16 / size32 < 0.55
    report = json.loads((half / "export.json").read_text())
    assert report["parity_ok"] and report["fp16_weights"] and report["rtol"] == 2e-2
    meta = Segmenter(half / "model.onnx", "cpu").metadata
    assert meta.model_version == "cpu-interim-test"
    assert meta.training["weights_storage"].startswith("float16")
    assert set(meta.metrics["evaluation"]["iou"]) == {"soil", "bedrock", "sand", "big_rock"}
    # float16-stored weights compute (in float32) logits close to the float32 model's, on any frame
    frame = np.random.default_rng(1).integers(0, 256, (64, 64), np.uint8)
    a = Segmenter(full / "model.onnx", "cpu").run(frame)[1]
    b = Segmenter(half / "model.onnx", "cpu").run(frame)[1]
    same = compare_logits(a, b, rtol=2e-2)
    assert same["ok"], same
    missing = ["export", "--run", str(smoke_run), "--out", str(tmp_path / "x"), "--metrics", str(tmp_path / "no.json")]
    assert main(missing) == 2
