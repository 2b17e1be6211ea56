"""Run an exported AI4Mars model with ONNX Runtime: frame in, class mask out (ROS-free)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ai4mars_perception.core.classes import IGNORE_INDEX
from ai4mars_perception.core.model_metadata import METADATA_KEY, MetadataError, ModelMetadata

log = logging.getLogger(__name__)

_INTERPOLATION = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}
DEVICES = ("auto", "cpu", "cuda")


class ModelLoadError(RuntimeError):
    """The model file is missing, unreadable, or lacks the metadata this package needs."""


class InferenceError(RuntimeError):
    """The model produced unusable output (NaN or Inf logits) for a frame."""


@dataclass
class Timings:
    """Seconds spent in each stage of one :meth:`Segmenter.segment` call."""

    preprocess: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0


def select_providers(device: str, available: list[str]) -> list[str]:
    """Choose ONNX Runtime execution providers for ``device`` (auto | cpu | cuda)."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    gpu = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" and not gpu:
        raise ModelLoadError("device 'cuda' requested but onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    return gpu + ["CPUExecutionProvider"]


class Segmenter:
    """Loads an ONNX model with its metadata and segments grayscale frames of any size.

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
    ) -> None:
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers = select_providers(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as e:  # onnxruntime raises several private exception types
            raise ModelLoadError(f"{path} is not a loadable ONNX model: {str(e).splitlines()[0]}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ModelLoadError(f"{path} has no '{METADATA_KEY}' metadata; export it with ai4mars-train export")
        try:
            self.metadata = ModelMetadata.from_json(props[METADATA_KEY])
        except MetadataError as e:
            raise ModelLoadError(f"{path}: {e}") from None
        self.path = path
        self.provider = self.session.get_providers()[0]
        self.flip_tta = flip_tta
        inp = self.session.get_inputs()[0]
        self._input_name = inp.name
        self._output_name = self.session.get_outputs()[0].name
        self._input_dtype = np.float16 if "float16" in inp.type else np.float32
        spec = self.metadata.input
        shape = inp.shape
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != spec.channels):
            raise ModelLoadError(f"{path}: input shape {shape} does not match {spec.channels} channels in metadata")
        fixed = [d for d in shape[2:] if isinstance(d, int)]
        if len(fixed) == 2 and fixed != [spec.height, spec.width]:
            raise ModelLoadError(f"{path}: input shape {shape} does not match {spec.height}x{spec.width} in metadata")
        self._interp = _INTERPOLATION[spec.resize]
        std = np.asarray(spec.std, np.float32)
        self._gain = (spec.scale / std).reshape(-1, 1, 1).astype(np.float32)
        self._bias = (-np.asarray(spec.mean, np.float32) / std).reshape(-1, 1, 1)
        self._rover_cache: dict[tuple[int, int], np.ndarray] = {}
        self._rover_mask: np.ndarray | None = None
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
        return x[None].astype(self._input_dtype, copy=False)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a preprocessed batch; returns float32 logits ``(N, C, h, w)``."""
        out = self.session.run([self._output_name], {self._input_name: batch})[0]
        if self.flip_tta:
            flipped = self.session.run([self._output_name], {self._input_name: batch[..., ::-1].copy()})[0]
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

    def segment(self, gray: np.ndarray, timings: Timings | None = None) -> np.ndarray:
        """Segment one uint8 grayscale frame; returns a uint8 mask of the same size."""
        return self.run(gray, timings)[0]
