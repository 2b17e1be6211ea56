"""``ai4mars-perception bag play``: publish a bag's image topics over DDS with the recorded timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from ai4mars_perception.core.stamps import sec_nanosec
from ai4mars_perception.tools.bag_io import (
    CAMERA_INFO,
    COMPRESSED,
    IMAGE,
    IMAGE_TYPES,
    BagError,
    image_connections,
    iter_messages,
    open_reader,
)


class BagPlayer:
    """Publishes a bag's image topics (and camera_info) from an existing rclpy node, with the recorded
    timing, sending the stored CDR bytes as they are (no deserialisation per frame)."""

    def __init__(self, node, path: Path, topics: list[str] | None = None, clock: bool = False, reliable: bool = True):
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        self.reader = open_reader(path)
        self.conns = image_connections(self.reader, topics)
        if topics is None:  # with the frames: camera_info and the side inputs (exclusion_mask, depth)
            side = ("/exclusion_mask", "/depth")
            self.conns += [c for c in self.reader.connections
                           if c.msgtype == CAMERA_INFO or (c.msgtype == IMAGE and c.topic.endswith(side))]  # fmt: skip
        classes = {IMAGE: Image, COMPRESSED: CompressedImage, CAMERA_INFO: CameraInfo}
        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=reliability)
        self.pubs = {c.id: node.create_publisher(classes[c.msgtype], c.topic, qos) for c in self.conns}
        self._clock_type = Clock
        self.clock_pub = node.create_publisher(Clock, "/clock", 10) if clock else None

    def wait_for_subscribers(self, timeout: float) -> bool:
        """Wait until every image topic has a subscriber (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        images = [self.pubs[c.id] for c in self.conns if c.msgtype in IMAGE_TYPES]
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() for p in images):
                return True
            time.sleep(0.05)
        return False

    def play(self, rate: float = 1.0, on_publish: Callable[[object, int], None] | None = None) -> int:
        """One pass over the bag; ``on_publish(connection, stamp_ns)`` after each message. Returns the count."""
        if rate <= 0:
            raise BagError("rate must be positive")
        sent, wall0, bag0 = 0, time.monotonic(), None
        total = sum(c.msgcount for c in self.conns)
        for conn, stamp, data in tqdm(iter_messages(self.reader, self.conns), desc="bag play", unit="msg", total=total):
            bag0 = stamp if bag0 is None else bag0
            due = wall0 + (stamp - bag0) / 1e9 / rate
            while (wait := due - time.monotonic()) > 0:
                if self.clock_pub is not None:
                    self._clock(bag0 + int((time.monotonic() - wall0) * rate * 1e9))
                time.sleep(min(wait, 0.01))
            if self.clock_pub is not None:
                self._clock(stamp)
            self.pubs[conn.id].publish(bytes(data))
            sent += 1
            if on_publish is not None:
                on_publish(conn, stamp)
        return sent

    def _clock(self, stamp_ns: int) -> None:
        msg = self._clock_type()
        msg.clock.sec, msg.clock.nanosec = sec_nanosec(stamp_ns)
        self.clock_pub.publish(msg)

    def close(self) -> None:
        self.reader.close()


def play_bag(
    path: Path,
    rate: float = 1.0,
    loop: bool = False,
    topics: list[str] | None = None,
    clock: bool = False,
    reliable: bool = True,
    wait_for_subscribers: float = 5.0,
) -> int:
    """``bag play``: publish the bag's image topics with the recorded timing; returns the messages sent."""
    from ai4mars_perception.tools.processes import RosSession

    if rate <= 0:
        raise BagError("rate must be positive")
    open_reader(path).close()  # fail before starting DDS
    sent = 0
    with RosSession("ai4mars_bag_player") as ros:
        player = BagPlayer(ros.node, path, topics, clock, reliable)
        try:
            player.wait_for_subscribers(wait_for_subscribers)
            while True:
                sent += player.play(rate)
                if not loop:
                    break
            time.sleep(0.2)  # let the last reliable samples leave
        finally:
            player.close()
    return sent
