"""Inference backends behind one small interface: a batch of preprocessed frames in, float32 logits out.

- :class:`OnnxRuntimeBackend` (default): an exported ``model.onnx``; TensorRT/CUDA providers when present.
- :class:`TorchBackend` (optional, ``pip install .[torch]``): any float ONNX export, converted at load time with
  onnx2torch; the TorchScript ``model.pt`` that ``ai4mars-train export`` writes beside the ONNX (same metadata),
  preferred when present; or, only with ``allow_pickle``, a fastai learner ``.pkl``
  (unpickling runs code from the file). On CUDA it also offers a device-side fast path (uint8 upload, resize,
  normalise, fp16 forward, arg-max and upsampling on the GPU, one copy back), captured as a CUDA graph.

Both carry the model's :class:`~ai4mars_perception.core.model.metadata.ModelMetadata`; torch is imported only
when the torch backend is chosen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ai4mars_perception.core.model.metadata import (
    METADATA_KEY,
    MetadataError,
    ModelLoadError,
    ModelMetadata,
)

BACKENDS = ("auto", "onnxruntime", "torch")
DEVICES = ("auto", "cpu", "cuda")
TORCH_SUFFIXES = (".pt", ".ts", ".pkl")


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


def _parse_metadata(text: str | None, path: Path) -> ModelMetadata:
    if not text:
        raise ModelLoadError(f"{path} has no '{METADATA_KEY}' metadata; export it with ai4mars-train export")
    try:
        return ModelMetadata.from_json(text)
    except MetadataError as e:
        raise ModelLoadError(f"{path}: {e}") from None


class OnnxRuntimeBackend:
    """An ONNX model run by ONNX Runtime."""

    name = "onnxruntime"

    def __init__(self, path: Path, device: str = "auto", intra_op_threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers = select_providers(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as e:  # onnxruntime raises several private exception types
            raise ModelLoadError(f"{path} is not a loadable ONNX model: {str(e).splitlines()[0]}") from None
        self.metadata = _parse_metadata(self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path)
        self.provider = self.session.get_providers()[0]
        inp = self.session.get_inputs()[0]
        self._input_name, self._output_name = inp.name, self.session.get_outputs()[0].name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        spec, shape = self.metadata.input, inp.shape
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != spec.channels):
            raise ModelLoadError(f"{path}: input shape {shape} does not match {spec.channels} channels in metadata")
        fixed = [d for d in shape[2:] if isinstance(d, int)]
        if len(fixed) == 2 and fixed != [spec.height, spec.width]:
            raise ModelLoadError(f"{path}: input shape {shape} does not match {spec.height}x{spec.width} in metadata")

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self._output_name], {self._input_name: batch.astype(self.input_dtype)})[0]


class TorchBackend:
    """A float ONNX export (converted), a TorchScript export (``model.pt``) or, with ``allow_pickle``, a fastai
    learner ``.pkl``, run by PyTorch."""

    name = "torch"

    def __init__(self, path: Path, device: str = "auto", allow_pickle: bool = False, half: bool | None = None,
                 cuda_graph: bool = True) -> None:  # fmt: skip
        try:
            import torch
        except ImportError:
            raise ModelLoadError("backend 'torch' needs PyTorch: pip install 'ai4mars_perception[torch]'") from None
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("device 'cuda' requested but PyTorch sees no CUDA GPU")
        self.torch = torch
        self.device = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
        if path.suffix == ".pkl":
            if not allow_pickle:
                raise ModelLoadError(
                    f"{path} is a pickled fastai learner: loading it runs code from the file; "
                    "set allow_pickle (node parameter) or pass --allow-pickle only for files you trust"
                )
            from ai4mars_perception.core.model.fastai_learner import learner_metadata, load_learner_file

            learn = load_learner_file(path)
            self.metadata, self.model = learner_metadata(learn, path), learn.model
        elif path.suffix == ".onnx":  # a float ONNX export, converted at load time
            from ai4mars_perception.core.model.onnx_torch import torch_module_from_onnx

            self.model, text = torch_module_from_onnx(path)
            self.metadata = _parse_metadata(text, path)
        else:
            extra = {f"{METADATA_KEY}.json": ""}
            try:
                self.model = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            except Exception as e:
                raise ModelLoadError(f"{path} is not a loadable TorchScript model: {str(e).splitlines()[0]}") from None
            self.metadata = _parse_metadata(extra[f"{METADATA_KEY}.json"], path)
        self.half = self.device.type == "cuda" if half is None else half
        self.model = self.model.eval().to(self.device, memory_format=torch.channels_last)
        if self.half:
            self.model = self.model.half()
        self.provider = f"torch-{self.device.type}" + ("-fp16" if self.half else "")
        self.cuda_graph = cuda_graph
        self._graph = None
        # normalisation constants live on the device: no host-to-device copy inside a captured CUDA graph
        spec = self.metadata.input
        self._mean = torch.tensor(spec.mean, device=self.device).view(1, -1, 1, 1)
        self._std = torch.tensor(spec.std, device=self.device).view(1, -1, 1, 1)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device)
            x = x.to(memory_format=torch.channels_last, dtype=torch.float16 if self.half else torch.float32)
            return self.model(x).float().cpu().numpy()

    def _device_forward(self, frame, null_class: int | None):
        """uint8 frame tensor on the device → (labels uint8 at the frame size, float32 logits)."""
        torch, F = self.torch, self.torch.nn.functional
        spec = self.metadata.input
        x = frame[None, None].float()
        if tuple(frame.shape) != (spec.height, spec.width):
            x = F.interpolate(x, size=(spec.height, spec.width), mode="area")
        x = ((x * spec.scale).expand(-1, spec.channels, -1, -1) - self._mean) / self._std
        x = x.contiguous(memory_format=torch.channels_last).to(torch.float16 if self.half else torch.float32)
        logits = self.model(x).float()
        labels = logits.argmax(1, keepdim=True).to(torch.uint8)
        if null_class is not None:  # masked_fill, not boolean indexing: no host sync (CUDA graph capture)
            labels = labels.masked_fill(labels == null_class, 255)
        if tuple(frame.shape) != (spec.height, spec.width):
            labels = F.interpolate(labels.float(), size=tuple(frame.shape), mode="nearest").to(torch.uint8)
        return labels[0, 0], logits[0]

    def device_segment(self, gray: np.ndarray, null_class: int | None) -> tuple[np.ndarray, np.ndarray]:
        """The whole frame path on the device: the uint8 frame goes up, (mask at the frame size, logits) come
        back; resize is area averaging and upsampling nearest, as in the numpy path. On CUDA the path is
        captured once per frame size as a CUDA graph and replayed (one host sync: the copies back)."""
        torch = self.torch
        with torch.inference_mode():
            if self.device.type != "cuda" or not self.cuda_graph:
                frame = torch.from_numpy(np.require(gray, requirements=["C", "W"])).to(self.device)
                labels, logits = self._device_forward(frame, null_class)
                return labels.cpu().numpy(), logits.cpu().numpy()
            if self._graph is None or self._graph[0] != gray.shape:
                static_in = torch.empty(gray.shape, dtype=torch.uint8, device=self.device)
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(3):  # warm-up outside the capture (cuDNN autotuning, allocations)
                        self._device_forward(static_in, null_class)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    static_out = self._device_forward(static_in, null_class)
                self._graph = (gray.shape, graph, static_in, static_out)
            _, graph, static_in, (labels, logits) = self._graph
            static_in.copy_(torch.from_numpy(np.require(gray, requirements=["C", "W"])), non_blocking=False)
            graph.replay()
            return labels.cpu().numpy(), logits.cpu().numpy()


def load_backend(path: Path, backend: str = "auto", device: str = "auto", intra_op_threads: int = 0,
                 allow_pickle: bool = False):  # fmt: skip
    """The backend for a model file: ``.onnx`` → ONNX Runtime, ``.pt``/``.ts``/``.pkl`` → PyTorch. ``backend:
    torch`` with an ``.onnx`` path uses the TorchScript export beside it (same stem, ``.pt``) when there is one,
    else converts the ONNX model (float models only); ``auto`` prefers
    ONNX Runtime on a GPU, else PyTorch on a GPU (when the ``.pt`` is there), else ONNX Runtime on the CPU."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    if path.suffix in TORCH_SUFFIXES:
        if backend == "onnxruntime":
            raise ModelLoadError(f"{path} is a PyTorch model; backend onnxruntime needs the .onnx export")
        return TorchBackend(path, device, allow_pickle)
    twin = path.with_suffix(".pt")
    if backend == "torch":  # the TorchScript export beside it, else the ONNX model converted at load time
        return TorchBackend(twin if twin.is_file() else path, device)
    if backend == "auto" and device != "cpu" and twin.is_file():
        import onnxruntime as ort

        if not select_providers("auto", ort.get_available_providers())[:-1] and _torch_cuda():
            return TorchBackend(twin, device)
    return OnnxRuntimeBackend(path, device, intra_op_threads)


def wants_float_model(device: str = "auto", backend: str = "auto", float_model: Path | None = None) -> bool:
    """Whether these choices run the network on a GPU or in PyTorch, where the float model is the one to load
    (the int8 model is for ONNX Runtime on the CPU). As in :func:`load_backend`, ``auto`` considers PyTorch on a
    GPU only when the float model has its TorchScript export beside it, so torch is not imported otherwise."""
    if backend == "torch" or device == "cuda":
        return True
    if device == "cpu" or backend not in BACKENDS:
        return False
    import onnxruntime as ort

    if select_providers("auto", ort.get_available_providers())[:-1]:
        return True
    return backend == "auto" and float_model is not None and float_model.with_suffix(".pt").is_file() and _torch_cuda()


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
