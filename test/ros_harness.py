"""Test-side ROS helpers: one rclpy node in the test process, spin-until, node processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2

from ai4mars_perception.core.params import NODE_NAME
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
    """terrain_segmentation started through its console script, with a log file for failures.

    ``use_geometry`` is false unless a test sets it (or passes a params file): the closed-form tests check the class
    of every pixel of small synthetic frames, which the flat-ground range cut would otherwise trim at the top;
    the geometry itself is tested in test_validity.py and by the nodes that turn it on."""

    def __init__(self, tmp: Path, params: dict, remaps: dict | None = None, name: str = "node",
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.log = tmp / f"{name}.log"
        if "params_file" not in params:
            params = {"use_geometry": False, **params}
        self.proc = start_node(params, remaps, {**child_env(), **(env or {})}, self.log)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> int:
        return stop(self.proc)


class Topics:
    """Publishers and collectors for one node under test."""

    def __init__(self, h: Harness, image_topic: str, msg_type=Image, reliable: bool = True, node: str = NODE_NAME):
        self.h, self.name, self.ns = h, node, f"/{node}"
        self.pub = h.node.create_publisher(msg_type, image_topic, qos(reliable, 1))
        self.masks = h.collect(Image, f"{self.ns}/mask")
        self.summaries = h.collect(PointCloud2, f"{self.ns}/traversability")
        self.all_diags = h.collect(DiagnosticArray, "/diagnostics")

    @property
    def diags(self) -> list:
        """Diagnostics of this node only (every test node has its own name)."""
        return [d for d in self.all_diags if d.status and d.status[0].name.startswith(f"{self.name}:")]

    def wait_connected(self, timeout: float = 30.0):
        assert self.h.spin_until(
            lambda: self.pub.get_subscription_count() > 0 and self.h.node.count_publishers(f"{self.ns}/mask") > 0,
            timeout,
        ), "node did not come up"
        time.sleep(0.5)

    def send(self, msg, stamp_sec: int):
        msg.header.stamp.sec = stamp_sec
        msg.header.frame_id = "navcam_left"
        self.pub.publish(msg)

    def send_until(self, msg, stamp_sec: int, cond: Callable[[], bool], timeout: float = 20.0) -> bool:
        """Send the frame, again every 2 s, until ``cond()``: the node makes a lazy output (overlay, costmap) only
        once its publisher has matched our subscription, and discovery may finish that after our side."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            self.send(msg, stamp_sec)
            if self.h.spin_until(cond, min(2.0, left)):
                return True
        return False

    def answer_for(self, stamp_sec: int, timeout: float = 20.0):
        ok = self.h.spin_until(lambda: any(m.header.stamp.sec == stamp_sec for m in self.masks), timeout)
        return next(m for m in self.masks if m.header.stamp.sec == stamp_sec) if ok else None

    def diag_values(self) -> dict[str, str]:
        n = len(self.diags)
        assert self.h.spin_until(lambda: len(self.diags) > n, 5), "no diagnostics"
        return {kv.key: kv.value for kv in self.diags[-1].status[0].values}


def mask_array(msg: Image) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width]
