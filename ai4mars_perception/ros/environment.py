"""The process environment ROS needs, set once at process entry (never on import)."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from ai4mars_perception.core.model.shipped import config_path

PROFILE_FILE = "fastdds_large_shm.xml"
#: Variables a child ROS process inherits from :func:`child_env` (and a tool copies into its own process).
DDS_VARIABLES = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "FASTDDS_DEFAULT_PROFILES_FILE", "AMENT_PREFIX_PATH")


def domain_id() -> int:
    """``ROS_DOMAIN_ID`` when set, otherwise a random one in 1..100 (tools and tests keep to their own domain)."""
    value = os.environ.get("ROS_DOMAIN_ID", "")
    return int(value) if value.isdigit() else random.randint(1, 100)


def prepare_ros_environment(loopback: bool = False) -> None:
    """Set defaults that must be in place before DDS starts in this process (values the user set are kept).

    - ``AMENT_PREFIX_PATH``: the venv prefix, so ament_index finds the ROS wheels and this package.
    - ``FASTDDS_DEFAULT_PROFILES_FILE``: the large shared-memory profile, so 1 MiB frames published
      best-effort by this process are delivered (see config/fastdds_large_shm.xml).
    - with ``loopback``: discovery on localhost only and a domain of our own (tools that start a node).
    """
    if not os.environ.get("AMENT_PREFIX_PATH") and (Path(sys.prefix) / "share" / "ament_index").is_dir():
        os.environ["AMENT_PREFIX_PATH"] = sys.prefix
    if "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        profile = config_path(PROFILE_FILE)
        if profile.is_file():
            os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    if loopback:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        os.environ["ROS_DOMAIN_ID"] = str(domain_id())


def child_env(base: dict[str, str] | None = None, profile: bool = True) -> dict[str, str]:
    """Environment for a ROS child process: this process's DDS settings (loopback, domain, profile, ament
    index), unbuffered output; without ``profile``, Fast DDS's default transports (like a camera driver)."""
    prepare_ros_environment(loopback=True)
    env = dict(os.environ if base is None else base)
    env.update({k: os.environ[k] for k in DDS_VARIABLES if k in os.environ})
    if not profile:
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env
