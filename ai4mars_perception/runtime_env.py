"""Process environment the package needs before rclpy starts: DDS transport profile and ament index."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "ai4mars_perception"
PROFILE_FILE = "fastdds_large_shm.xml"


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
    candidates += [Path(sys.prefix) / "share" / PACKAGE, Path(__file__).resolve().parents[1]]
    for c in candidates:
        if (c / "config").is_dir():
            return c
    return candidates[-1]


def config_path(name: str) -> Path:
    """Path of a file shipped in the package's ``config/`` folder."""
    return share_dir() / "config" / name


def default_model_path() -> Path:
    """The shipped model, ``models/ai4mars_unet_r18.onnx`` in the share folder or checkout."""
    return share_dir() / "models" / "ai4mars_unet_r18.onnx"


def prepare_ros_environment() -> None:
    """Set defaults that must be in place before DDS starts (values the user set are kept).

    - ``AMENT_PREFIX_PATH``: the venv prefix, so ament_index finds the ROS wheels and this package.
    - ``FASTDDS_DEFAULT_PROFILES_FILE``: the large shared-memory profile, so 1 MiB frames published
      best-effort by this process are delivered (see config/fastdds_large_shm.xml).
    """
    if not os.environ.get("AMENT_PREFIX_PATH") and (Path(sys.prefix) / "share" / "ament_index").is_dir():
        os.environ["AMENT_PREFIX_PATH"] = sys.prefix
    if "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        profile = config_path(PROFILE_FILE)
        if profile.is_file():
            os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
