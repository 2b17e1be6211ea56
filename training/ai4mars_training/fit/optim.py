"""Optimizers for ``fit --optimizer``: fastai's Adam, or the same update with PyTorch's fused AdamW.

fastai's Adam runs a Python loop over the parameters (several small kernels each). ``adamw-fused`` runs PyTorch's
fused AdamW (one kernel for all parameters, less host work per step on a GPU) behind fastai's ``OptimWrapper``, with
fastai's hyper-parameters (betas 0.9/0.99, eps 1e-5, decoupled weight decay 0.01). fastai exempts BatchNorm and
bias parameters from weight decay (``wd_bn_bias=False`` marks them ``do_wd=False``); torch's AdamW decays every
parameter of a group. So the decay is applied here, before the Adam step as in fastai, only to the parameters
fastai marks for it, and torch's own ``weight_decay`` stays 0: the two make the same update (tested in float64).
"""

from __future__ import annotations

from functools import partial

import torch
from fastai.optimizer import Adam, OptimWrapper, pytorch_hp_map

from ai4mars_training.errors import TrainingError

OPTIMIZERS = ("adam", "adamw-fused")
DECAY_KEY = "decoupled_wd"  # fastai's ``wd`` hyper-parameter, kept in torch's param groups under this key


class FusedAdamW(OptimWrapper):
    """fastai's Adam update computed by ``torch.optim.AdamW(fused=True)``, with fastai's weight-decay rules."""

    def __init__(self, params, lr: float = 1e-3, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5,
                 wd: float = 0.01) -> None:  # fmt: skip
        params = list(params)  # fastai passes its splitter's groups (lists of parameters); plain parameters work too
        lists = [params] if not params or isinstance(params[0], torch.Tensor) else [list(g) for g in params]
        groups = [{"params": g} for g in lists]
        opt = torch.optim.AdamW(groups, lr=lr, betas=(mom, sqr_mom), eps=eps, weight_decay=0.0, fused=True)
        for group in opt.param_groups:
            group[DECAY_KEY] = wd
        hp_map = {**pytorch_hp_map, DECAY_KEY: "wd", "weight_decay": "torch_weight_decay"}
        super().__init__(opt=opt, hp_map=hp_map)

    def step(self, closure=None):
        """Decoupled weight decay ``p *= 1 - lr * wd`` on the parameters with a gradient that fastai marks for it,
        then torch's fused Adam step."""
        for group in self.opt.param_groups:
            factor = 1.0 - group["lr"] * group[DECAY_KEY]
            decay = [p for p in group["params"] if p.grad is not None and self.state[p].get("do_wd", True)]
            if decay and factor != 1.0:
                with torch.no_grad():
                    torch._foreach_mul_(decay, factor)
        return self.opt.step(closure)


def optimizer_func(name: str):
    """fastai's ``opt_func`` for ``--optimizer name``."""
    if name == "adam":
        return Adam
    if name == "adamw-fused":
        return partial(FusedAdamW)
    raise TrainingError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
