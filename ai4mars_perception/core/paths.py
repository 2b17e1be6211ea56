"""Where the package's shared files are: config/, models/ (colcon install, pip/venv install, or a checkout)."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "ai4mars_perception"
DEFAULT_MODEL = "ai4mars_unet_r18.onnx"


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


def default_model_path() -> Path:
    """The shipped model, ``models/ai4mars_unet_r18.onnx`` in the share folder or checkout."""
    return share_dir() / "models" / DEFAULT_MODEL
