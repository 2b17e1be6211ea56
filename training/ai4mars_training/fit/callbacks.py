"""fastai callbacks: bf16 autocast + channels_last, a wall-clock budget, throughput, checkpoints."""

from __future__ import annotations

import math
import time

import torch
from fastai.callback.core import Callback, CancelFitException

from ai4mars_perception.core.model.cpu_info import cpu_description, cpu_has_bf16

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(choice: str, cuda: bool, bf16_cpu: bool | None = None) -> str:
    """``auto`` → fp16 on a GPU, bf16 on a CPU with native bf16, fp32 elsewhere; explicit choices are checked."""
    return explain_precision(choice, cuda, bf16_cpu)[0]


def explain_precision(choice: str, cuda: bool, bf16_cpu: bool | None = None) -> tuple[str, str]:
    """(resolved precision, the reason in a sentence) for ``--precision choice``."""
    if choice not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    if choice == "fp16" and not cuda:
        raise ValueError("fp16 mixed precision needs a CUDA GPU; on the CPU use --precision bf16 or fp32")
    if choice != "auto":
        return choice, f"--precision {choice} was asked for"
    if cuda:
        return "fp16", "auto: a CUDA GPU is present, so fp16 mixed precision"
    cpu = cpu_description()["summary"]
    if cpu_has_bf16() if bf16_cpu is None else bf16_cpu:
        return "bf16", f"auto: this CPU computes bf16 natively (AVX512_BF16/AMX), so bf16 autocast [{cpu}]"
    return "fp32", f"auto: this CPU has no native bf16 (bf16 autocast would be emulated and slower), so fp32 [{cpu}]"


class BF16Autocast(Callback):
    """bf16 mixed precision, written for the CPU (fastai's MixedPrecision is CUDA-only): the forward pass and the
    loss input run under ``torch.autocast('cpu', bfloat16)`` with channels_last tensors; weights, gradients and the
    optimizer stay fp32, so no loss scaling is needed (bf16 has fp32's exponent range)."""

    order = 10  # after TrainEvalCallback, before the model sees the batch

    def before_fit(self) -> None:
        self.learn.model.to(memory_format=torch.channels_last)
        self._ctx = None

    def before_batch(self) -> None:
        self.learn.xb = tuple(
            x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x for x in self.learn.xb
        )
        self._ctx = torch.autocast(self.learn.xb[0].device.type, dtype=torch.bfloat16)
        self._ctx.__enter__()

    def after_pred(self) -> None:
        self.learn.pred = self.learn.pred.float()

    def _exit(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None

    def after_loss(self) -> None:
        self._exit()

    def after_cancel_batch(self) -> None:
        self._exit()

    def after_fit(self) -> None:
        self._exit()
        self.learn.model.to(memory_format=torch.contiguous_format)


class TimeBudget(Callback):
    """Fit the one-cycle schedule into ``minutes`` of wall-clock time.

    Start ``fit_one_cycle`` with the largest epoch count allowed. During the first epoch the schedule advances
    with elapsed time; after each epoch (training + validation) the epoch count is re-decided from the measured
    mean epoch time, so the schedule ends with the last epoch that fits — slower epochs (a busy CPU) shorten the
    run instead of overrunning it. ``decided`` records each decision. ``clock`` (seconds, monotonic) is
    injectable so that the decisions can be tested without waiting.
    """

    order = 70  # after the recorder, SaveModelCallback and SaveLast have seen the epoch

    def __init__(self, minutes: float, start: float | None = None, clock=time.monotonic) -> None:
        if minutes <= 0:
            raise ValueError("the time budget must be positive")
        self.total, self.start, self.clock = minutes * 60.0, start, clock
        self.decided: list[int] = []

    def before_fit(self) -> None:
        self.t0 = self.clock()
        # what is left of the budget when this fit starts (an earlier frozen phase has used some)
        self.budget = max(self.total - (self.t0 - (self.start if self.start is not None else self.t0)), 1.0)
        self.max_epochs = self.learn.n_epoch
        self.first = True

    def after_batch(self) -> None:  # after TrainEvalCallback's own step; the scheduler reads it next batch
        if self.training and self.first:
            self.learn.pct_train = min((self.clock() - self.t0) / self.budget, 0.5)

    def after_epoch(self) -> None:
        done = self.epoch + 1
        elapsed = self.clock() - self.t0
        per_epoch = elapsed / done
        n = min(self.max_epochs, max(done, math.floor(self.budget / per_epoch)))
        self.first = False
        self.decided.append(n)
        self.learn.n_epoch = n
        self.learn.pct_train = done / n
        bar = getattr(getattr(self.learn, "progress", None), "mbar", None)
        if bar is not None:
            bar.total = n
        if done >= n:
            raise CancelFitException()


class Throughput(Callback):
    """Per training epoch: images/s, seconds, and the share of the time spent waiting for the data loader
    (host time from the end of one step until the next batch is in hand). ``epochs`` holds one dict each."""

    # first in every event: other callbacks' before_batch work is not counted as waiting; their after_batch work
    # (the recorder's running loss, a few microseconds) is
    order = -10

    def before_fit(self) -> None:
        self.epochs: list[dict] = []

    def before_train(self) -> None:
        self.images, self.wait = 0, 0.0
        self.t0 = self.mark = time.perf_counter()

    def before_batch(self) -> None:
        if self.training:
            self.wait += time.perf_counter() - self.mark

    def after_batch(self) -> None:
        if self.training:
            self.images += len(self.learn.yb[0])
            self.mark = time.perf_counter()

    def after_train(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - self.t0
        self.epochs.append({"epoch": self.epoch, "images": self.images, "seconds": round(seconds, 2),
                            "images_per_s": round(self.images / max(seconds, 1e-9), 1),
                            "data_wait_fraction": round(self.wait / max(seconds, 1e-9), 3)})  # fmt: skip


class SaveLast(Callback):
    """Save weights and optimizer state after every epoch as ``models/last.pth`` (for --resume)."""

    order = 61

    def after_epoch(self) -> None:
        self.learn.save("last", with_opt=True)
