"""Where the package's shared files are: config/, models/ (colcon install, pip/venv install, or a checkout)."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "ai4mars_perception"
DEFAULT_MODEL = "ai4mars_unet_r18.onnx"  # float (fp16-stored weights): GPUs, the torch backend
DEFAULT_INT8_MODEL = "ai4mars_unet_r18_int8.onnx"  # int8 (ONNX Runtime on the CPU), shipped when it keeps accuracy


def share_dir() -> Path:
    """The package's share folder: colcon install, pip/venv install (``<prefix>/share``), or a source checkout."""
    candidates = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            candidates.append(Path(get_package_share_directory(PACKAGE)))
        except (PackageNotFoundError, LookupError, KeyError, ValueError, OSError):  # OSError: no AMENT_PREFIX_PATH
            pass
    except ImportError:
        pass
    candidates += [Path(sys.prefix) / "share" / PACKAGE, Path(__file__).resolve().parents[2]]
    for c in candidates:
        if (c / "config").is_dir():
            return c
    return candidates[-1]


def config_path(name: str) -> Path:
    """Path of a file shipped in the package's ``config/`` folder."""
    return share_dir() / "config" / name


def default_model_path(float_model: bool = False) -> Path:
    """The shipped model in the share folder or checkout: ``models/ai4mars_unet_r18_int8.onnx`` for the CPU when
    it is shipped, else (or with ``float_model``) ``models/ai4mars_unet_r18.onnx``."""
    models = share_dir() / "models"
    if not float_model and (models / DEFAULT_INT8_MODEL).is_file():
        return models / DEFAULT_INT8_MODEL
    return models / DEFAULT_MODEL
