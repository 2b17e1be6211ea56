"""rosbag2 reading and writing shared by ``bag make | play | process`` and the demo (``rosbags`` + rclpy CDR)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from ai4mars_perception.tools.errors import ToolError

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
IMAGE_TYPES = (IMAGE, COMPRESSED)


class BagError(ToolError):
    """A bag cannot be read or written as asked; the message says why."""


def typestore():
    """The ROS 2 Kilted type store of ``rosbags`` (message definitions for new connections, CDR reading)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def storage_plugin(name: str):
    from rosbags.rosbag2 import StoragePlugin

    try:
        return {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[name]
    except KeyError:
        raise BagError(f"storage must be mcap or sqlite3, got {name!r}") from None


def serialize(msg) -> bytes:
    """CDR bytes of an rclpy message, as a recorder would store them."""
    from rclpy.serialization import serialize_message

    return serialize_message(msg)


@contextlib.contextmanager
def staged_output(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Write a bag under a hidden staging folder and move it to ``out`` only when complete.

    An interrupted (even killed) run leaves no ``out``; the next run clears the stale staging folder.
    """
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging / out.name
        if out.exists() and overwrite:
            shutil.rmtree(out)
        (staging / out.name).rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def open_reader(path: Path):
    """Open a bag for reading, turning every failure into one :class:`BagError` sentence."""
    from rosbags.rosbag2 import Reader

    if not path.exists():
        raise BagError(f"{path} does not exist")
    reader = Reader(path)
    try:
        reader.open()
    except Exception as e:  # rosbags raises ReaderError and storage-specific errors
        raise BagError(f"{path} is not a readable rosbag2 bag: {e}") from None
    return reader


def image_connections(reader, topics: list[str] | None = None) -> list:
    """The bag's image connections (all of them, or the named topics, which must be image topics)."""
    by_topic = {c.topic: c for c in reader.connections}
    if topics:
        missing = [t for t in topics if t not in by_topic]
        if missing:
            raise BagError(
                f"topic(s) {', '.join(missing)} not in the bag; it has {', '.join(sorted(by_topic)) or 'none'}"
            )
        wrong = [f"{t} ({by_topic[t].msgtype})" for t in topics if by_topic[t].msgtype not in IMAGE_TYPES]
        if wrong:
            raise BagError(f"topic(s) {', '.join(wrong)} are not sensor_msgs Image or CompressedImage")
        return [by_topic[t] for t in topics]
    side = ("/exclusion_mask", "/depth")  # side inputs of an image topic, not frames (tools/side_files.py)
    conns = [c for c in reader.connections if c.msgtype in IMAGE_TYPES and not c.topic.endswith(side)]
    if not conns:
        raise BagError("the bag has no sensor_msgs/Image or CompressedImage topic")
    return conns


def iter_messages(reader, conns) -> Iterator[tuple]:
    """(connection, timestamp_ns, raw bytes), failing with :class:`BagError` on a corrupt bag."""
    try:
        yield from reader.messages(connections=conns)
    except BagError:
        raise
    except Exception as e:
        raise BagError(f"the bag is corrupt or truncated: {type(e).__name__}: {e}") from None


def read_frames(path: Path) -> dict[int, object]:
    """{stamp_ns: gray frame} of every image message of a bag (the demo's contact sheet)."""
    from ai4mars_perception.core.image_codec import gray_from_message

    ts, frames = typestore(), {}
    reader = open_reader(path)
    try:
        for conn, stamp, data in iter_messages(reader, image_connections(reader)):
            frames[stamp] = gray_from_message(ts.deserialize_cdr(data, conn.msgtype))
    finally:
        reader.close()
    return frames
