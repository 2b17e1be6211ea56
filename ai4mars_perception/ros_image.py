"""Conversions between sensor_msgs images and NumPy arrays (the rclpy side of image_codec)."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ai4mars_perception.image_codec import DEFAULT_MAX_PIXELS, decode_compressed, decode_raw, to_gray8


def image_to_gray(msg: Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image (mono8, mono16, rgb8, bgr8, rgba8, bgra8) → uint8 grayscale ``(H, W)``."""
    frame = decode_raw(msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian, msg.data, max_pixels)
    return to_gray8(frame, msg.encoding)


def compressed_to_gray(msg: CompressedImage, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG or PNG) → uint8 grayscale ``(H, W)``."""
    return to_gray8(decode_compressed(msg.data, max_pixels), "rgb8")


def array_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """uint8 ``(H, W)`` or ``(H, W, 3)`` array → sensor_msgs/Image (bytes assigned, not an ndarray)."""
    array = np.ascontiguousarray(array)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = array.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = array.strides[0]
    msg.data = array.tobytes()
    return msg
