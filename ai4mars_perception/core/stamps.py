"""Message stamps as integer nanoseconds, both ways (rclpy and rosbags messages alike): written once."""

from __future__ import annotations

NS_PER_S = 1_000_000_000


def stamp_ns(header) -> int:
    """Nanoseconds of a header's stamp."""
    return int(header.stamp.sec) * NS_PER_S + int(header.stamp.nanosec)


def sec_nanosec(ns: int) -> tuple[int, int]:
    """(sec, nanosec) of a stamp in nanoseconds, for a ``builtin_interfaces/Time``."""
    return ns // NS_PER_S, ns % NS_PER_S
