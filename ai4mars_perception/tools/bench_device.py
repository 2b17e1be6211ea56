"""Timing of the PyTorch backend's device-side frame path (ROS-free, used by ``ai4mars-perception bench-gpu`` and
by the training package's GPU shot): a mono8 frame in, the mask at the frame size out, batch 1."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "fp32": {"half": False, "cuda_graph": False},
    "fp32+cuda_graph": {"half": False, "cuda_graph": True},
    "fp16": {"half": True, "cuda_graph": False},
    "fp16+cuda_graph": {"half": True, "cuda_graph": True},
}


def bench_variant(model: Path, variant: str, frame: np.ndarray, repeats: int, device: str, warmup: int = 10) -> dict:
    """Time ``repeats`` frames through :meth:`TorchBackend.device_segment` after ``warmup`` frames."""
    import torch

    from ai4mars_perception.core.model.backends import TorchBackend

    backend = TorchBackend(model, device, **VARIANTS[variant])
    cuda = backend.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        backend.device_segment(frame, backend.metadata.null_class)
    warm_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    if cuda:  # the steady state apart from the warm-up (cuDNN autotuning tries large workspaces)
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        mask, _ = backend.device_segment(frame, backend.metadata.null_class)  # the copy back is the sync
        times.append(time.perf_counter() - t)
    ms = np.sort(np.array(times) * 1000)
    return {
        "model": model.name, "model_input": backend.metadata.input.height, "variant": variant,
        "device": str(backend.device), "frames_per_s": round(1000 / ms.mean(), 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        "peak_gpu_mb_warmup": round(warm_peak, 1) if cuda else None,
        "mask_shape": list(mask.shape),
    }  # fmt: skip
