"""Contact sheets: rows of equally sized RGB tiles with a caption per row (OpenCV only)."""

from __future__ import annotations

import cv2
import numpy as np


def _tile(image: np.ndarray, size: int) -> np.ndarray:
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
    interp = cv2.INTER_AREA if rgb.shape[0] > size else cv2.INTER_NEAREST
    return cv2.resize(rgb, (size, size), interpolation=interp)


def contact_sheet(
    rows: list[list[np.ndarray]], captions: list[str], headers: list[str] | None = None, tile: int = 256
) -> np.ndarray:
    """Stack rows of tiles (gray or RGB, any size) into one RGB image with a caption above each row."""
    bar = 26
    width = tile * max(len(r) for r in rows)
    parts = []
    if headers:
        head = np.full((bar, width, 3), 32, np.uint8)
        for i, h in enumerate(headers):
            cv2.putText(head, h, (i * tile + 6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        parts.append(head)
    for row, caption in zip(rows, captions):
        cap = np.full((bar, width, 3), 16, np.uint8)
        cv2.putText(cap, caption, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
        tiles = [_tile(t, tile) for t in row]
        tiles += [np.zeros((tile, tile, 3), np.uint8)] * (width // tile - len(tiles))
        parts += [cap, np.hstack(tiles)]
    return np.vstack(parts)


def legend(names: list[str], colors: list[tuple[int, int, int]], width: int) -> np.ndarray:
    """A one-line colour legend strip."""
    strip = np.full((24, width, 3), 32, np.uint8)
    x = 6
    for name, color in zip(names, colors):
        cv2.rectangle(strip, (x, 6), (x + 14, 18), tuple(int(c) for c in color), -1)
        cv2.putText(strip, name, (x + 20, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
        x += 30 + 9 * len(name)
    return strip


def save_rgb(path, rgb: np.ndarray) -> None:
    """Write an RGB array as PNG."""
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
