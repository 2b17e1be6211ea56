"""``ai4mars-perception bench-gpu``: the PyTorch backend's device-side frame path (1024² mono8 frame in, mask at
the frame size out, batch 1) per model file and variant: fp32 and fp16, each eager and as a CUDA graph.
Frames/s, latency p50/p99, peak GPU memory. On a CPU only the fp32 variant runs (the plumbing check)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ai4mars_perception.tools.bench_device import VARIANTS, bench_variant
from ai4mars_perception.tools.errors import ToolError


def command(args) -> int:
    try:
        import torch
    except ImportError:
        raise ToolError("bench-gpu times the PyTorch backend: pip install 'ai4mars_perception[torch]'") from None
    from ai4mars_perception.core.image_codec import read_image_file

    frame = read_image_file(args.image) if args.image else np.random.default_rng(0).integers(0, 256, (1024, 1024),
                                                                                              np.uint8)  # fmt: skip
    cuda = torch.cuda.is_available() and args.device != "cpu"
    rows = []
    for model in map(Path, args.models):
        if not model.is_file():
            raise ToolError(f"model file not found: {model}")
        for variant in VARIANTS if cuda else ("fp32",):
            try:  # one failing variant (a CUDA graph capture, say) must not cost the others
                rows.append(bench_variant(model, variant, frame, args.repeats, "cuda" if cuda else "cpu",
                                          warmup=10 if cuda else 1))  # fmt: skip
            except Exception as e:
                rows.append({"model": model.name, "variant": variant, "error": f"{type(e).__name__}: {e}"})
                print(f"{model.name:<24} {variant:<16} failed: {rows[-1]['error']}", flush=True)
                continue
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
