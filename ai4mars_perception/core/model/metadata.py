"""The metadata contract between the training package and the node.

Every ONNX model this project writes carries one ``metadata_props`` entry, key :data:`METADATA_KEY`,
whose value is a JSON object of this form (schema 1)::

    {
      "schema": 1,
      "model_version": "2026.11.24-r18-256",
      "architecture": "fastai DynamicUnet, resnet18 encoder",
      "classes": [{"id": 0, "name": "soil", "color": [194, 122, 62]}, ...],
      "null_class": null,             # id of an extra "no label" class the model predicts, if any
      "input": {
        "height": 256, "width": 256, "channels": 3,
        "color": "gray_replicated",   # the grayscale frame copied into all channels
        "scale": 0.00392156862745098, # pixel * scale, then (x - mean) / std per channel
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "resize": "area"              # how a frame is brought to height x width
      },
      "output": {"layout": "NCHW", "kind": "logits"},
      "training": {...},              # free-form: data, recipe, command line
      "metrics": {...}                # free-form: validation metrics
    }

The ONNX graph takes ``float32[N, channels, height, width]`` and returns ``float32[N, C, height, width]``
logits, C = number of classes (+1 with a null class).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ai4mars_perception.core.classes import CLASS_NAMES, TERRAIN_CLASSES

METADATA_KEY = "ai4mars_perception"
SCHEMA_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MetadataError(ValueError):
    """The model's metadata is missing or does not follow the schema."""


class ModelLoadError(RuntimeError):
    """The model file is missing, unreadable, or lacks the metadata this package needs."""


@dataclass
class InputSpec:
    """How a frame becomes the network input."""

    height: int = 256
    width: int = 256
    channels: int = 3
    color: str = "gray_replicated"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize: str = "area"


@dataclass
class ModelMetadata:
    """Everything the node needs to know about a model, stored inside the ONNX file."""

    model_version: str
    classes: list[dict[str, Any]] = field(
        default_factory=lambda: [{"id": c.id, "name": c.name, "color": list(c.color)} for c in TERRAIN_CLASSES]
    )
    null_class: int | None = None
    input: InputSpec = field(default_factory=InputSpec)
    architecture: str = "fastai DynamicUnet, resnet18 encoder"
    output: dict[str, str] = field(default_factory=lambda: {"layout": "NCHW", "kind": "logits"})
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @property
    def num_outputs(self) -> int:
        """Number of output channels the network produces."""
        return len(self.classes) + (1 if self.null_class is not None else 0)

    @property
    def class_names(self) -> list[str]:
        """Names of the terrain classes, in id order."""
        return [c["name"] for c in self.classes]

    @property
    def class_colors(self) -> list[tuple[int, int, int]]:
        """RGB colours of the terrain classes, in id order."""
        return [tuple(int(v) for v in c["color"]) for c in self.classes]

    def to_json(self) -> str:
        """Serialise to the JSON stored under :data:`METADATA_KEY`."""
        d = asdict(self)
        d["input"]["mean"] = list(self.input.mean)
        d["input"]["std"] = list(self.input.std)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        """Parse and validate the JSON stored under :data:`METADATA_KEY`."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise MetadataError(f"model metadata is not valid JSON: {e}") from None
        if not isinstance(d, dict) or d.get("schema") != SCHEMA_VERSION:
            raise MetadataError(f"model metadata schema must be {SCHEMA_VERSION}, got {d.get('schema')!r}")
        try:
            spec = InputSpec(**{**d["input"], "mean": tuple(d["input"]["mean"]), "std": tuple(d["input"]["std"])})
            meta = cls(**{**d, "input": spec})
        except (KeyError, TypeError) as e:
            raise MetadataError(f"model metadata is incomplete: {e}") from None
        meta.validate()
        return meta

    def validate(self) -> None:
        """Raise :class:`MetadataError` when fields are inconsistent."""
        ids = [c.get("id") for c in self.classes]
        if ids != list(range(len(ids))) or not ids:
            raise MetadataError(f"class ids must be 0..N-1, got {ids}")
        if len(self.classes) > 254:
            raise MetadataError("at most 254 classes fit in a mono8 mask with 255 = unknown")
        if self.null_class is not None and self.null_class != len(self.classes):
            raise MetadataError("null_class must be the id right after the last terrain class")
        spec = self.input
        if spec.channels not in (1, 3):
            raise MetadataError(f"input channels must be 1 or 3, got {spec.channels}")
        if len(spec.mean) != spec.channels or len(spec.std) != spec.channels or min(spec.std) <= 0:
            raise MetadataError("input mean/std must have one positive entry per channel")
        if spec.height <= 0 or spec.width <= 0:
            raise MetadataError("input height and width must be positive")
        if spec.color != "gray_replicated":
            raise MetadataError(f"input color must be gray_replicated, got {spec.color!r}")
        if self.output.get("layout") != "NCHW" or self.output.get("kind") != "logits":
            raise MetadataError(f"output must be NCHW logits, got {self.output}")
        if spec.resize not in ("area", "linear", "nearest"):
            raise MetadataError(f"input resize must be area, linear or nearest, got {spec.resize!r}")
        if self.class_names[: len(CLASS_NAMES)] != list(CLASS_NAMES):
            raise MetadataError(f"classes must start with the AI4Mars classes {list(CLASS_NAMES)}")
