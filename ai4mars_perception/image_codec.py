"""Decode camera frames (raw sensor_msgs/Image buffers or compressed bytes) into NumPy arrays.

ROS-free: the fields of a sensor_msgs/Image are passed in as plain values, so the same code serves
the node, the bag tools and the tests.
"""

from __future__ import annotations

import cv2
import numpy as np

#: encoding -> (channels, bytes per channel)
ENCODINGS: dict[str, tuple[int, int]] = {
    "mono8": (1, 1),
    "mono16": (1, 2),
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
}
DEFAULT_MAX_PIXELS = 4096 * 4096


class ImageDecodeError(ValueError):
    """A frame cannot be decoded; the message says why in one sentence."""


def decode_raw(
    height: int,
    width: int,
    encoding: str,
    step: int,
    is_bigendian: bool | int,
    data: bytes | bytearray | memoryview,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Return the frame as a read-only view: ``(H, W)`` for mono encodings, ``(H, W, C)`` otherwise.

    Honours ``step`` (row padding) and ``is_bigendian`` (mono16). Raises :class:`ImageDecodeError`.
    """
    if encoding not in ENCODINGS:
        raise ImageDecodeError(f"unsupported encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"empty frame ({width}x{height})")
    if height * width > max_pixels:
        raise ImageDecodeError(f"frame {width}x{height} exceeds the limit of {max_pixels} pixels")
    channels, depth = ENCODINGS[encoding]
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageDecodeError(f"step {step} is smaller than width x bytes per pixel = {row_bytes}")
    if len(data) < step * height:
        raise ImageDecodeError(f"data has {len(data)} bytes, fewer than step x height = {step * height}")
    rows = np.frombuffer(data, np.uint8, count=step * height).reshape(height, step)[:, :row_bytes]
    if depth == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        rows = np.ascontiguousarray(rows).view(dtype).astype(np.uint16, copy=False)  # native byte order
    return rows.reshape(height, width) if channels == 1 else rows.reshape(height, width, channels)


def decode_compressed(data: bytes | bytearray | memoryview, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode JPEG/PNG bytes into ``(H, W)`` gray or ``(H, W, 3)`` RGB uint8/uint16."""
    if len(data) == 0:
        raise ImageDecodeError("compressed frame is empty")
    buf = np.frombuffer(data, np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageDecodeError(f"compressed frame of {len(data)} bytes is not a readable JPEG or PNG")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageDecodeError(f"frame {image.shape[1]}x{image.shape[0]} exceeds the limit of {max_pixels} pixels")
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def to_gray8(image: np.ndarray, encoding: str = "rgb8") -> np.ndarray:
    """Convert a decoded frame to 8-bit grayscale (Navcam frames are gray; colour frames are converted).

    ``encoding`` names the channel order of a 3/4-channel array (``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``).
    16-bit frames are scaled by 1/256, as cv_bridge does for mono16 → mono8.
    """
    if image.dtype.itemsize == 2:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return image
    codes = {
        "rgb8": cv2.COLOR_RGB2GRAY,
        "bgr8": cv2.COLOR_BGR2GRAY,
        "rgba8": cv2.COLOR_RGBA2GRAY,
        "bgra8": cv2.COLOR_BGRA2GRAY,
    }
    return cv2.cvtColor(np.ascontiguousarray(image), codes[encoding])


def read_image_file(path: str) -> np.ndarray:
    """Read an image file as 8-bit grayscale; raise :class:`ImageDecodeError` if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageDecodeError(f"{path}: not a readable image file")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if image.shape[2] == 4 else image
        return to_gray8(image, "bgr8")
    return to_gray8(image)
