"""Do two runs of a model agree? Logits within a tolerance, and the same arg-max wherever the decision is clear.

Two backends (or two CPUs) round differently, so on pixels where the two best classes nearly tie the arg-max may
flip: that depends on the machine, not on a fault. What holds everywhere: the logits agree within a tolerance,
and wherever the reference's top-2 margin is larger than that tolerance the arg-max agrees.
"""

from __future__ import annotations

import numpy as np


def top2_margin(logits: np.ndarray, axis: int = -3) -> np.ndarray:
    """Best minus second-best logit along the class ``axis`` (``(N, C, H, W)`` or ``(C, H, W)`` → per pixel)."""
    part = np.partition(np.moveaxis(logits, axis, -1), -2, axis=-1)
    return part[..., -1] - part[..., -2]


def compare_logits(reference: np.ndarray, other: np.ndarray, rtol: float = 1e-3) -> dict:
    """Compare ``other`` with ``reference`` (same shape, classes on axis -3).

    The tolerance is ``rtol`` x the reference's largest |logit|. Returns the figures and ``ok``: every logit
    within the tolerance and the same arg-max on every pixel whose reference margin exceeds it."""
    if reference.shape != other.shape:
        raise ValueError(f"logit shapes differ: {reference.shape} vs {other.shape}")
    ref, oth = reference.astype(np.float64), other.astype(np.float64)
    tol = rtol * float(np.abs(ref).max())
    diff = float(np.abs(ref - oth).max())
    decisive = top2_margin(ref) > tol
    same = ref.argmax(axis=-3) == oth.argmax(axis=-3)
    clear = int(decisive.sum())
    return {
        "tolerance": tol,
        "max_abs_logit_diff": diff,
        "decisive_fraction": clear / decisive.size,
        "decisive_argmax_agreement": float(same[decisive].mean()) if clear else 1.0,
        "argmax_agreement": float(same.mean()),
        "ok": bool(diff <= tol and same[decisive].all()),
    }
