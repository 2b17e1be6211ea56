"""Test-side ROS helpers: one rclpy node in the test process, spin-until, node processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ai4mars_perception.ros.environment import child_env
from ai4mars_perception.tools.processes import start_node, stop


def qos(reliable: bool, depth: int = 10) -> QoSProfile:
    return QoSProfile(
        depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    )


class Received(list):
    """Messages received on one subscription (``.subscription`` keeps it alive)."""

    subscription = None


class Harness:
    """A test-process node plus helpers to wait for messages."""

    def __init__(self, name: str) -> None:
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node(name)

    def spin_until(self, cond: Callable[[], bool], timeout: float = 20.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return cond()

    def collect(self, msg_type, topic: str, reliable: bool = True) -> Received:
        got = Received()
        got.subscription = self.node.create_subscription(msg_type, topic, got.append, qos(reliable))
        return got

    def close(self) -> None:
        self.node.destroy_node()


class NodeProcess:
    """terrain_segmentation started through its console script, with a log file for failures."""

    def __init__(self, tmp: Path, params: dict, remaps: dict | None = None, name: str = "node") -> None:
        self.log = tmp / f"{name}.log"
        self.proc = start_node(params, remaps, child_env(), self.log)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> int:
        return stop(self.proc)
