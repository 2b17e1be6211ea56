"""Colour overlays of class masks, for RViz and contact sheets."""

from __future__ import annotations

import cv2
import numpy as np

from ai4mars_perception.core.classes import color_lut


def colorize(mask: np.ndarray, colors: list[tuple[int, int, int]] | None = None) -> np.ndarray:
    """Map a class-id mask to an RGB image (unknown = black)."""
    return color_lut(colors)[mask]


def overlay(
    gray: np.ndarray,
    mask: np.ndarray,
    alpha: float = 0.5,
    colors: list[tuple[int, int, int]] | None = None,
    ignore_value: int = 255,
) -> np.ndarray:
    """Blend class colours over a gray frame: ``rgb = (1 - alpha) * frame + alpha * colour``.

    Pixels whose class is ``ignore_value`` keep the frame unchanged.
    """
    if gray.shape[:2] != mask.shape:
        raise ValueError(f"frame {gray.shape[:2]} and mask {mask.shape} differ in size")
    base = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB) if gray.ndim == 2 else gray
    blended = cv2.addWeighted(base, 1.0 - alpha, colorize(mask, colors), alpha, 0.0)
    unknown = mask == ignore_value
    if unknown.any():
        blended[unknown] = base[unknown]
    return blended


def costmap_image(grid: np.ndarray, scale: int = 2) -> np.ndarray:
    """An RGB top view of an int8 cost grid (rows along +y, columns along +x): forward is up, left is left;
    cost 0 green to 100 red, unknown (-1) dark gray; each cell ``scale`` x ``scale`` pixels."""
    top = grid.T[::-1, ::-1]  # rows: x from far to near; columns: y from left (+y) to right
    known = top >= 0
    hue = (60 * (1.0 - np.clip(top, 0, 100) / 100.0)).astype(np.uint8)  # OpenCV hue: 60 green .. 0 red
    hsv = np.dstack([hue, np.full_like(hue, 230), np.full_like(hue, 230)])
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    rgb[~known] = (48, 48, 48)
    return cv2.resize(rgb, (rgb.shape[1] * scale, rgb.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
