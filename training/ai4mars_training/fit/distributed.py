"""Data-parallel training under torchrun: fastai's DDP pieces, also on CPUs (gloo)."""

from __future__ import annotations

import contextlib

import torch
from fastai.callback.progress import ProgressCallback
from fastai.distributed import DistributedDL, DistributedTrainer, rank_distrib


class _DistributedDL(DistributedDL):
    """fastai's distributed loader, also on CPU: broadcast the shuffled indices with gloo, not NCCL."""

    def _broadcast(self, t, rank):
        t = torch.LongTensor(t)
        if torch.cuda.is_available():
            t = t.cuda()
        torch.distributed.broadcast(t, rank)
        return t.cpu().tolist()


class _DistributedTrainer(DistributedTrainer):
    """fastai's DDP callback, also on CPU: a gloo-wrapped model has no ``.device``, so use the loader's."""

    def _wrap_dl(self, dl):
        if isinstance(dl, DistributedDL):
            return dl
        return _DistributedDL(dl, device=getattr(self.learn.model, "device", None))


@contextlib.contextmanager
def data_parallel(learn):
    """Train with DistributedDataParallel under torchrun (NCCL on GPUs, gloo on CPU)."""
    cuda = torch.cuda.is_available()
    learn.add_cb(_DistributedTrainer(sync_bn=cuda, cpu=not cuda))  # cpu=True: accelerate's MULTI_CPU (gloo)
    if rank_distrib():
        learn.remove_cb(ProgressCallback)
    try:
        yield learn
    finally:
        learn.remove_cb(_DistributedTrainer)
