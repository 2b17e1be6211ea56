"""``ai4mars-perception bench-gpu``: the PyTorch backend's device-side frame path (1024² mono8 frame in, mask at
the frame size out, batch 1) per model file and variant: fp32 and fp16, each eager and as a CUDA graph.
Frames/s, latency p50/p99, peak GPU memory. On a CPU only the fp32 variant runs (the plumbing check)."""

from __future__ import annotations

import json
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

    from ai4mars_perception.core.backends import TorchBackend

    backend = TorchBackend(model, device, **VARIANTS[variant])
    cuda = backend.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        backend.device_segment(frame, backend.metadata.null_class)
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
        "mask_shape": list(mask.shape),
    }  # fmt: skip


def command(args) -> int:
    import torch

    from ai4mars_perception.core.image_codec import read_image_file

    frame = read_image_file(args.image) if args.image else np.random.default_rng(0).integers(0, 256, (1024, 1024),
                                                                                              np.uint8)  # fmt: skip
    cuda = torch.cuda.is_available() and args.device != "cpu"
    rows = []
    for model in map(Path, args.models):
        for variant in VARIANTS if cuda else ("fp32",):
            rows.append(bench_variant(model, variant, frame, args.repeats, "cuda" if cuda else "cpu"))
            r = rows[-1]
            print(
                f"{r['model']:<24} {r['model_input']:>5}² {r['variant']:<16} {r['frames_per_s']:>8.1f} frames/s  "
                f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  GPU peak {r['peak_gpu_mb']} MB",
                flush=True,
            )
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "torch": torch.__version__, "rows": rows}, indent=2))
    return 0
