"""numpy ↔ rclpy messages: images, the traversability table; a frame result → the node's output messages.

The traversability summary travels as a sensor_msgs/PointCloud2 *table* (standard message, typed named
fields), one row ("point") per region: row 0 the whole frame, rows 1..N the near-field sectors left to right.
Fields, in order, all 4 bytes (``point_step`` = 36, little-endian)::

    region       uint32   0 = frame, 1..N = sectors left to right
    verdict      uint32   0 = go, 1 = caution, 2 = stop
    soil         float32  fraction of the region's pixels
    bedrock      float32  fraction of the region's pixels
    sand         float32  fraction of the region's pixels
    big_rock     float32  fraction of the region's pixels
    unknown      float32  fraction of the region's pixels (rover body, null class)
    traversable  float32  fraction of the *known* pixels that are soil or bedrock
    mean_cost    float32  mean traversal cost of the known pixels (NaN if none)

C++ planners read it with ``sensor_msgs::PointCloud2ConstIterator<float> it(msg, "traversable")``;
Python with :func:`table_from_msg` (a NumPy structured array).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sensor_msgs.msg import Image, PointCloud2, PointField
from std_msgs.msg import Header

from ai4mars_perception.core.pipeline import FrameResult
from ai4mars_perception.core.projection import CameraModel, GroundProjector
from ai4mars_perception.core.stamps import sec_nanosec
from ai4mars_perception.core.traversability import TABLE_DTYPE, TABLE_FIELDS

_POINT_FIELD_TYPES = {"u": PointField.UINT32, "f": PointField.FLOAT32}


def image_msg(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """uint8 ``(H, W)`` or ``(H, W, 3)`` array → sensor_msgs/Image (bytes assigned, not an ndarray)."""
    array = np.ascontiguousarray(array)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = array.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = array.strides[0]
    msg.data = array.tobytes()
    return msg


def image_array(msg: Image) -> np.ndarray:
    """A mono8 or rgb8 sensor_msgs/Image → uint8 ``(H, W)`` or ``(H, W, 3)`` (honours ``step``)."""
    channels = 3 if msg.encoding in ("rgb8", "bgr8") else 1
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width * channels]
    return rows.reshape(msg.height, msg.width, channels) if channels == 3 else rows


_SINGLE_CHANNEL = {"mono8": np.uint8, "8UC1": np.uint8, "mono16": np.uint16, "16UC1": np.uint16, "32FC1": np.float32}


def image_array_any(msg) -> np.ndarray:
    """A single-channel Image (mono8, 16UC1, 32FC1, ...; rclpy or rosbags) → ``(H, W)`` array in native byte
    order, honouring ``step`` and ``is_bigendian``; raises ValueError for another encoding or short data."""
    if msg.encoding not in _SINGLE_CHANNEL:
        raise ValueError(f"unsupported encoding {msg.encoding!r} (expected one of {', '.join(_SINGLE_CHANNEL)})")
    dtype = np.dtype(_SINGLE_CHANNEL[msg.encoding]).newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = bytes(msg.data)
    if step < w * dtype.itemsize or len(data) < step * h:
        raise ValueError(f"{w}x{h} {msg.encoding} image with step {step} holds {len(data)} bytes: too few")
    rows = np.frombuffer(data, np.uint8, count=step * h).reshape(h, step)[:, : w * dtype.itemsize]
    return np.ascontiguousarray(rows).view(dtype).reshape(h, w).astype(dtype.newbyteorder("="))


def table_msg(table: np.ndarray, header: Header) -> PointCloud2:
    """Pack a traversability table (:data:`~ai4mars_perception.core.traversability.TABLE_DTYPE`) into a PointCloud2."""
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, len(table)
    msg.fields = [
        PointField(name=n, offset=TABLE_DTYPE.fields[n][1], datatype=_POINT_FIELD_TYPES[TABLE_DTYPE[n].kind], count=1)
        for n in TABLE_FIELDS
    ]
    msg.is_bigendian = False
    msg.point_step = TABLE_DTYPE.itemsize
    msg.row_step = TABLE_DTYPE.itemsize * len(table)
    msg.is_dense = True
    msg.data = table.astype(TABLE_DTYPE, copy=False).tobytes()
    return msg


def table_from_msg(msg: PointCloud2) -> np.ndarray:
    """Read a traversability PointCloud2 back into a structured array (checks the field layout)."""
    names = tuple(f.name for f in msg.fields)
    if names != TABLE_FIELDS or msg.point_step != TABLE_DTYPE.itemsize:
        raise ValueError(f"not an ai4mars traversability table: fields {names}")
    return np.frombuffer(bytes(msg.data), TABLE_DTYPE, count=msg.width * msg.height)


def cloud_msg(points: np.ndarray, header: Header) -> PointCloud2:
    """An organized PointCloud2 (``height`` x ``width`` like the image, decimated) of x, y, z float32 points in the
    camera's optical frame (the image's frame_id); NaN where the pixel is unknown (``is_dense`` false)."""
    h, w = points.shape[:2]
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = h, w
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    msg.is_bigendian = False
    msg.point_step, msg.row_step = 12, 12 * w
    msg.is_dense = False
    msg.data = np.ascontiguousarray(points, "<f4").tobytes()
    return msg


def cloud_from_msg(msg: PointCloud2) -> np.ndarray:
    """``(height, width, 3)`` float32 points of a :func:`cloud_msg` cloud."""
    return np.frombuffer(bytes(msg.data), "<f4", count=msg.height * msg.width * 3).reshape(msg.height, msg.width, 3)


def occupancy_grid_msg(grid: np.ndarray, projector: GroundProjector, header: Header, frame_id: str):
    """nav_msgs/OccupancyGrid of an int8 cost grid, in ``frame_id`` (ground plane z = 0), input stamp."""
    import array

    from nav_msgs.msg import OccupancyGrid

    spec = projector.grid
    msg = OccupancyGrid()
    msg.header.stamp, msg.header.frame_id = header.stamp, frame_id
    msg.info.map_load_time = header.stamp
    msg.info.resolution = float(spec.resolution)
    msg.info.width, msg.info.height = spec.width, spec.height
    msg.info.origin.position.x, msg.info.origin.position.y = spec.origin_x, spec.origin_y
    msg.info.origin.orientation.w = 1.0
    msg.data = array.array("b", np.ascontiguousarray(grid, np.int8).tobytes())
    return msg


def camera_model(info) -> CameraModel | None:
    """Intrinsics of a sensor_msgs/CameraInfo (rclpy or rosbags), or None when it carries none."""
    if not info.width or not info.height or not info.k[0] or not info.k[4]:
        return None
    return CameraModel.from_k(int(info.width), int(info.height), [float(v) for v in info.k])


#: every output of the node, in publishing order; the lazy ones are computed only while someone listens
OUTPUTS = ("mask", "overlay", "traversability", "confidence", "costmap", "ground_cloud")
LAZY = ("overlay", "confidence", "costmap", "ground_cloud")


def result_messages(
    result: FrameResult, header: Header, outputs: tuple[str, ...], projector: GroundProjector | None = None
) -> Iterator[tuple[str, object]]:
    """(name, message) for each of ``outputs`` (names among :data:`OUTPUTS`; ``costmap`` needs the
    ``projector``), all carrying the input stamp, each built only when the previous one has been taken: the node
    publishes the mask before the summary and the other outputs are computed."""
    frame_id = result.config.ground.costmap_frame
    build = {
        "mask": lambda: image_msg(result.mask, "mono8", header),
        "overlay": lambda: image_msg(result.overlay, "rgb8", header),
        "traversability": lambda: table_msg(result.table, header),
        "confidence": lambda: image_msg(result.confidence, "mono8", header),
        "costmap": lambda: occupancy_grid_msg(result.costmap(projector), projector, header, frame_id),
        "ground_cloud": lambda: cloud_msg(result.ground_cloud(), header),
    }
    return ((name, build[name]()) for name in outputs)


def camera_info_msg(header: Header, width: int, height: int, fov_deg: float):
    """A pinhole sensor_msgs/CameraInfo with the given horizontal field of view and no distortion."""
    import math

    from sensor_msgs.msg import CameraInfo

    f = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    msg = CameraInfo(header=header, width=width, height=height, distortion_model="plumb_bob")
    msg.d = [0.0] * 5
    msg.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def header_msg(stamp_ns: int, frame_id: str) -> Header:
    """A std_msgs/Header from a stamp in nanoseconds."""
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = sec_nanosec(stamp_ns)
    return h
