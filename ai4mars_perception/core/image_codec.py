"""Decode camera frames (raw sensor_msgs/Image buffers or compressed bytes) into NumPy arrays.

ROS-free: the fields of a sensor_msgs/Image are read by name, so the same code serves rclpy messages
(the node), ``rosbags`` messages (bag tools) and plain objects (tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}

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


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def header_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) read from the first bytes of a PNG (IHDR) or JPEG (SOF marker); None when not found."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24 and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        if marker in _JPEG_SOF:
            return int.from_bytes(head[i + 7 : i + 9], "big"), int.from_bytes(head[i + 5 : i + 7], "big")
        i += 2 + int.from_bytes(head[i + 2 : i + 4], "big")
    return None


def check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    """Raise :class:`ImageDecodeError` for an empty frame or one over ``max_pixels``."""
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{what} is empty ({width}x{height})")
    if width * height > max_pixels:
        raise ImageDecodeError(f"{what} is {width}x{height}, over the limit of {max_pixels} pixels (not decoded)")


def _open(source, max_pixels: int, what: str, formats: tuple[str, ...] | None = None) -> np.ndarray:
    """Decode with Pillow after checking the size in the header (decompression bombs are refused before any
    pixel is decoded; decoder problems become exceptions, never stderr output)."""
    from PIL import Image, UnidentifiedImageError

    kinds = " or ".join(formats) if formats else "image"
    try:
        with Image.open(source) as im:
            if formats is not None and im.format not in formats:
                raise ImageDecodeError(f"{what} is {im.format}, not a {kinds}")
            check_size(*im.size, max_pixels, what)
            im.load()
            if im.mode in ("L", "RGB", "I;16", "I;16L", "I;16B"):
                out = np.asarray(im)
            elif im.mode == "I":
                out = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
            elif im.mode in ("LA", "1"):
                out = np.asarray(im.convert("L"))
            else:  # RGBA, P, CMYK, YCbCr, ...
                out = np.asarray(im.convert("RGB"))
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{what} is not a readable {kinds}") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"{what} is not a readable {kinds}: {e}") from None
    return out.astype(np.uint16, copy=False) if out.dtype.itemsize == 2 else out  # native byte order


def decode_compressed(data: bytes | bytearray | memoryview, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode JPEG/PNG bytes into ``(H, W)`` gray or ``(H, W, 3)`` RGB uint8/uint16; the size is checked from the
    header before decoding. Raises :class:`ImageDecodeError`."""
    import io

    if len(data) == 0:
        raise ImageDecodeError("compressed frame is empty")
    what = f"compressed frame of {len(data)} bytes"
    size = header_size(bytes(data[:65536]))
    if size is not None:
        check_size(*size, max_pixels, what)
    return _open(io.BytesIO(bytes(data)), max_pixels, what, ("JPEG", "PNG"))


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


def read_image_file(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as 8-bit grayscale (size checked before decoding); raise :class:`ImageDecodeError`."""
    if not Path(path).is_file():
        raise ImageDecodeError(f"{path}: no such file")
    with open(path, "rb") as f:
        size = header_size(f.read(65536))
    if size is not None:
        check_size(*size, max_pixels, str(path))
    image = _open(path, max_pixels, str(path))
    return to_gray8(image, "rgb8")


def gray_from_message(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A sensor_msgs/Image or CompressedImage (rclpy, rosbags, or any object with those fields) → uint8 gray
    ``(H, W)``. Raises :class:`ImageDecodeError`."""
    if hasattr(msg, "format"):  # CompressedImage
        return to_gray8(decode_compressed(msg.data, max_pixels), "rgb8")
    frame = decode_raw(msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian, msg.data, max_pixels)
    return to_gray8(frame, msg.encoding)


def collect_images(inputs: list[str]) -> list[Path]:
    """Files named directly, plus image files (any case of suffix) inside named folders, sorted."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(item)
    return files
