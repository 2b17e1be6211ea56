"""Run an exported AI4Mars model: frame in, class mask out (ROS-free). The network itself runs in a backend
(:mod:`ai4mars_perception.core.model.backends`: ONNX Runtime by default, PyTorch optionally)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ai4mars_perception.core.classes import IGNORE_INDEX
from ai4mars_perception.core.model.backends import ModelLoadError, load_backend, select_providers

__all__ = ["InferenceError", "ModelLoadError", "Segmenter", "Timings", "select_providers"]

log = logging.getLogger(__name__)

_INTERPOLATION = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


class InferenceError(RuntimeError):
    """The model produced unusable output (NaN or Inf logits) for a frame."""


@dataclass
class Timings:
    """Seconds spent in each stage of one :meth:`Segmenter.segment` call."""

    preprocess: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0
    validity: float = 0.0  # the pipeline's geometry, depth and exclusion-mask step


class Segmenter:
    """Runs a model through its backend (:func:`~ai4mars_perception.core.model.backends.load_backend`: ONNX Runtime,
    or PyTorch for a float ONNX file, a TorchScript export or a learner) and segments grayscale frames of any size.

    Preprocessing matches training: resize to the model input, replicate gray to the input channels,
    scale to [0, 1] and normalise with the stored mean/std. Postprocessing takes the arg-max class at
    model resolution and resizes it (nearest neighbour) to the frame size.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        device: str = "auto",
        intra_op_threads: int = 0,
        flip_tta: bool = False,
        backend: str = "auto",
        allow_pickle: bool = False,
    ) -> None:
        path = Path(model_path)
        self.backend = load_backend(path, backend, device, intra_op_threads, allow_pickle)
        self.metadata = self.backend.metadata
        self.path = path
        self.provider = self.backend.provider
        self.flip_tta = flip_tta
        spec = self.metadata.input
        self._interp = _INTERPOLATION[spec.resize]
        std = np.asarray(spec.std, np.float32)
        self._gain = (spec.scale / std).reshape(-1, 1, 1).astype(np.float32)
        self._bias = (-np.asarray(spec.mean, np.float32) / std).reshape(-1, 1, 1)
        self._rover_cache: dict[tuple[int, int], np.ndarray] = {}
        self._rover_mask: np.ndarray | None = None
        # the device-side path (PyTorch on CUDA) when nothing needs the numpy one (area resize, no TTA)
        self._device_path = (
            getattr(self.backend, "device", None) is not None
            and self.backend.device.type == "cuda"
            and spec.resize == "area"
            and not flip_tta
        )
        log.info("loaded %s (version %s) on %s", path.name, self.metadata.model_version, self.provider)

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the network input."""
        return self.metadata.input.height, self.metadata.input.width

    def set_rover_mask(self, mask: np.ndarray | None) -> None:
        """Pixels where ``mask`` is non-zero (rover body) are reported as unknown (255)."""
        self._rover_mask = None if mask is None else (mask > 0).astype(np.uint8)
        self._rover_cache.clear()

    def preprocess(self, gray: np.ndarray) -> np.ndarray:
        """uint8 ``(H, W)`` frame → network input ``(1, C, h, w)``."""
        h, w = self.input_size
        if gray.shape != (h, w):
            gray = cv2.resize(gray, (w, h), interpolation=self._interp)
        x = gray.astype(np.float32)[None] * self._gain + self._bias
        return x[None]

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a preprocessed batch; returns float32 logits ``(N, C, h, w)``."""
        out = self.backend(batch)
        if self.flip_tta:
            flipped = self.backend(batch[..., ::-1].copy())
            out = (out + flipped[..., ::-1]) * 0.5
        return out.astype(np.float32, copy=False)

    def postprocess(self, logits: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
        """Logits ``(C, h, w)`` → uint8 class mask at ``frame_shape`` (255 = unknown).

        Raises :class:`InferenceError` when the logits hold NaN or Inf: no mask is better than a garbage mask.
        """
        if not np.isfinite(logits).all():
            raise InferenceError("the model output contains NaN or Inf values")
        labels = np.argmax(logits, axis=0).astype(np.uint8)
        if self.metadata.null_class is not None:
            labels[labels == self.metadata.null_class] = IGNORE_INDEX
        if labels.shape != frame_shape:
            labels = cv2.resize(labels, frame_shape[::-1], interpolation=cv2.INTER_NEAREST)
        rover = self._rover_for(frame_shape)
        if rover is not None:
            labels[rover > 0] = IGNORE_INDEX
        return labels

    def _rover_for(self, shape: tuple[int, int]) -> np.ndarray | None:
        if self._rover_mask is None:
            return None
        if shape not in self._rover_cache:
            self._rover_cache[shape] = cv2.resize(self._rover_mask, shape[::-1], interpolation=cv2.INTER_NEAREST)
        return self._rover_cache[shape]

    def confidence(self, logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """uint8 confidence of the predicted class (softmax maximum x 255) at the mask's size; 0 where the mask
        is unknown (rover body, null class)."""
        shifted = logits - logits.max(axis=0, keepdims=True)
        p = np.exp(shifted)
        conf = (255.0 / p.sum(axis=0)).astype(np.float32)  # the maximum's own term is exp(0) = 1
        conf = np.clip(conf + 0.5, 0, 255).astype(np.uint8)
        if conf.shape != mask.shape:
            conf = cv2.resize(conf, mask.shape[::-1], interpolation=cv2.INTER_LINEAR)
        conf[mask == IGNORE_INDEX] = 0
        return conf

    def run(self, gray: np.ndarray, timings: Timings | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Segment one uint8 grayscale frame; returns (mask at the frame size, logits ``(C, h, w)``)."""
        if self._device_path:
            return self._run_on_device(gray, timings)
        t0 = time.perf_counter()
        x = self.preprocess(gray)
        t1 = time.perf_counter()
        out = self.logits(x)
        t2 = time.perf_counter()
        mask = self.postprocess(out[0], gray.shape[:2])
        if timings is not None:
            timings.preprocess, timings.inference = t1 - t0, t2 - t1
            timings.postprocess = time.perf_counter() - t2
        return mask, out[0]

    def _run_on_device(self, gray: np.ndarray, timings: Timings | None) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        mask, logits = self.backend.device_segment(gray, self.metadata.null_class)
        if not np.isfinite(logits).all():
            raise InferenceError("the model output contains NaN or Inf values")
        rover = self._rover_for(gray.shape[:2])
        if rover is not None:
            mask[rover > 0] = IGNORE_INDEX
        if timings is not None:
            timings.preprocess, timings.inference, timings.postprocess = 0.0, time.perf_counter() - t0, 0.0
        return mask, logits

    def segment(self, gray: np.ndarray, timings: Timings | None = None) -> np.ndarray:
        """Segment one uint8 grayscale frame; returns a uint8 mask of the same size."""
        return self.run(gray, timings)[0]
