"""Where a training step's time goes: torch.profiler over a few steps of a run (``fit --profile-steps N``).

The GPU shot's per-epoch "data wait" is host time until the next batch is in hand; on CUDA that includes the
batch's copy to the device, which waits for the previous step's kernels. The profile tells compute from input:
device kernel time against wall time over the same steps, and the operators that take it.
"""

from __future__ import annotations

import time

import torch
from fastai.callback.core import Callback
from torch.autograd import DeviceType


def _device_time_us(event) -> float:
    return float(getattr(event, "self_device_time_total", 0.0) or getattr(event, "self_cuda_time_total", 0.0) or 0.0)


def summarise(events, steps: int, wall_s: float, cuda: bool, rows: int = 12) -> dict:
    """Per-step figures from ``key_averages()``: kernels (device events) are counted once for the busy fraction;
    operators (host events) carry the device time of the kernels they launched and name the table's rows."""
    ops = [e for e in events if e.device_type == DeviceType.CPU]
    key = _device_time_us if cuda else (lambda e: float(e.self_cpu_time_total))
    top = sorted(ops, key=key, reverse=True)[:rows]
    device_ms = sum(_device_time_us(e) for e in events if e.device_type == DeviceType.CUDA) / 1000 if cuda else None
    wall_ms = wall_s * 1000
    return {
        "steps": steps, "wall_ms_per_step": round(wall_ms / steps, 2),
        "device_kernel_ms_per_step": None if device_ms is None else round(device_ms / steps, 2),
        "device_busy_fraction": None if device_ms is None else round(device_ms / wall_ms, 3),
        "top": [{"op": e.key, "calls": e.count, "self_ms_per_step": round(key(e) / 1000 / steps, 3)} for e in top],
    }  # fmt: skip


class StepProfiler(Callback):
    """Profile ``steps`` training steps of the first epoch after ``warmup`` steps (cuDNN autotuning, worker start;
    fewer when the epoch is short), so that even a run of one epoch is profiled: the busiest operators go to the
    log, a summary to ``summary`` (run.json ``profile``). A diagnostic: when the profiler fails, the run goes on
    and the summary records the error."""

    order = -9  # right after Throughput: the profiled window holds the whole step

    def __init__(self, steps: int, rows: int = 12, warmup: int = 20) -> None:
        self.steps, self.rows, self.warmup = steps, rows, warmup
        self.summary: dict | None = None
        self._prof = None

    def before_batch(self) -> None:
        if not self.training or self.summary is not None or self._prof is not None:
            return
        if self.epoch == 0 and self.iter == min(self.warmup, max(self.n_iter - self.steps, 0)):
            self.cuda = self.learn.xb[0].is_cuda
            acts = [torch.profiler.ProfilerActivity.CPU]
            try:
                if self.cuda:
                    acts.append(torch.profiler.ProfilerActivity.CUDA)
                    torch.cuda.synchronize()
                self._prof = torch.profiler.profile(activities=acts)
                self._prof.__enter__()
            except Exception as e:
                self._give_up(e)
                return
            self._t0, self._done = time.perf_counter(), 0

    def after_batch(self) -> None:
        if self._prof is None or not self.training:
            return
        self._done += 1
        if self._done >= self.steps or self.iter == self.n_iter - 1:
            self._finish()

    def after_fit(self) -> None:
        if self._prof is not None:  # cancelled mid-window: summarise what was seen
            self._finish()

    def _give_up(self, e: Exception) -> None:
        self._prof = None
        self.summary = {"error": f"{type(e).__name__}: {e}"}
        print(f"profile: skipped ({self.summary['error']})")

    def _finish(self) -> None:
        try:
            if self.cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - self._t0
            self._prof.__exit__(None, None, None)
            events, self._prof = self._prof.key_averages(), None
            self.summary = {**summarise(events, self._done, wall, self.cuda, self.rows), "epoch": self.epoch}
        except Exception as e:
            self._give_up(e)
            return
        s = self.summary
        print(f"profile: {self._done} steps, {s['wall_ms_per_step']} ms/step wall, device kernels "
              f"{s['device_kernel_ms_per_step']} ms/step (busy {s['device_busy_fraction']})")  # fmt: skip
        for row in s["top"]:
            print(f"profile:   {row['self_ms_per_step']:9.3f} ms/step  {row['calls']:5d} calls  {row['op'][:70]}")
