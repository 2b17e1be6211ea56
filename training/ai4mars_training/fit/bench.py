"""``ai4mars-train bench``: training throughput (images/s) of the real fit path per precision and crop size."""

from __future__ import annotations

import time
from dataclasses import replace

from fastai.callback.core import Callback, CancelEpochException, CancelFitException

from ai4mars_training.errors import TrainingError


class _StepTimer(Callback):
    """Times ``steps`` training batches after ``warmup`` (loading + forward + backward + optimizer step), then
    stops the fit before validation."""

    order = 90

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps, self.seen, self.images = warmup, steps, 0, 0
        self.t0 = self.t1 = 0.0

    def before_batch(self) -> None:
        if self.training and self.seen == self.warmup:
            self.t0 = time.perf_counter()

    def after_batch(self) -> None:
        if not self.training:
            return
        self.seen += 1
        if self.seen > self.warmup:
            self.images += len(self.learn.yb[0])
        if self.seen == self.warmup + self.steps:
            self.t1 = time.perf_counter()
            raise CancelFitException()

    def after_epoch(self) -> None:
        if self.seen < self.warmup + self.steps:
            raise CancelEpochException()


def bench(cfg, precisions: list[str], crops: list[int], steps: int = 6, warmup: int = 2,
          loaders: tuple[str, ...] = ("fastai",)) -> list[dict]:  # fmt: skip
    """Run ``steps`` timed training steps for every (loader, precision, crop); returns one row each. The device
    loader's one-off decoding happens before the timed steps (it is reported by fit's log, not here)."""
    import tempfile

    from ai4mars_training.fit.train import prepare, with_precision

    rows = []
    scratch = tempfile.TemporaryDirectory(prefix="ai4mars-bench-")
    for loader, crop, precision in ((lo, c, p) for lo in loaders for c in crops for p in precisions):
        learn, info = prepare(replace(cfg, crop=crop, augment=True, out=scratch.name, loader=loader))
        n_train = info["train_pairs"]
        if n_train < (warmup + steps) * cfg.batch_size:
            raise TrainingError(
                f"bench needs at least {(warmup + steps) * cfg.batch_size} training pairs, found {n_train}"
            )
        learn.unfreeze()
        learn, resolved, _ = with_precision(learn, precision)
        timer = _StepTimer(warmup, steps)
        learn.fit(1, 1e-3, cbs=[timer])
        seconds = timer.t1 - timer.t0
        side = crop or cfg.size
        rows.append(
            {
                "loader": loader,
                "precision": resolved,
                "crop": side,
                "batch": cfg.batch_size,
                "steps": steps,
                "seconds_per_step": round(seconds / steps, 3),
                "images_per_s": round(timer.images / seconds, 2),
                "pixels_per_s_M": round(timer.images * side * side / seconds / 1e6, 3),
            }
        )
        print(
            f"{loader:>6} {resolved:>5} crop {side}² batch {cfg.batch_size}: "
            f"{rows[-1]['seconds_per_step']:.2f} s/step, "
            f"{rows[-1]['images_per_s']:.2f} images/s",
            flush=True,
        )
    scratch.cleanup()
    return rows
