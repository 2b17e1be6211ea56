"""``fit --ema DECAY``: an exponential moving average of the weights (``torch.optim.swa_utils.AveragedModel``),
updated after every optimizer step; validation, the best checkpoint and therefore the export use the average."""

from __future__ import annotations

import torch
from fastai.callback.core import Callback
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class EMA(Callback):
    """Averages the weights (and BatchNorm statistics) with ``decay`` per step. Before validation the model takes
    the averaged weights; after the epoch's checkpoints (SaveModelCallback, order 60; SaveLast, 61) training goes
    on with its own weights again."""

    order = 62

    def __init__(self, decay: float = 0.999) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError("the EMA decay must lie in (0, 1)")
        self.decay = decay
        self.raw: dict[str, torch.Tensor] | None = None

    def before_fit(self) -> None:
        self.average = AveragedModel(self.learn.model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)

    def after_step(self) -> None:
        self.average.update_parameters(self.learn.model)

    def before_validate(self) -> None:
        self.raw = {k: v.detach().clone() for k, v in self.learn.model.state_dict().items()}
        self.learn.model.load_state_dict(self.average.module.state_dict())

    def after_epoch(self) -> None:
        if self.raw is not None:
            self.learn.model.load_state_dict(self.raw)
            self.raw = None

    def after_fit(self) -> None:
        self.after_epoch()
