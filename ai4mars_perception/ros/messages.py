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
OUTPUTS = ("mask", "overlay", "traversability", "confidence", "costmap")
LAZY = ("overlay", "confidence", "costmap")


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
