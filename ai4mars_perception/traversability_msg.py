"""The traversability summary as a sensor_msgs/PointCloud2 *table* (standard message, typed named fields).

One row ("point") per region: row 0 is the whole frame, rows 1..N the near-field sectors left to right.
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
Python with :func:`table_to_array` (a NumPy structured array).
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from ai4mars_perception.traversability import TABLE_DTYPE as DTYPE
from ai4mars_perception.traversability import TABLE_FIELDS as FIELD_NAMES
from ai4mars_perception.traversability import FrameSummary, summary_to_array

POINT_FIELD_TYPES = {"u": PointField.UINT32, "f": PointField.FLOAT32}


def summary_to_msg(summary: FrameSummary, header: Header) -> PointCloud2:
    """Pack a :class:`FrameSummary` into a PointCloud2 table carrying ``header``."""
    rows = summary_to_array(summary)
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, len(rows)
    msg.fields = [
        PointField(name=n, offset=DTYPE.fields[n][1], datatype=POINT_FIELD_TYPES[DTYPE[n].kind], count=1)
        for n in FIELD_NAMES
    ]
    msg.is_bigendian = False
    msg.point_step = DTYPE.itemsize
    msg.row_step = DTYPE.itemsize * len(rows)
    msg.is_dense = True
    msg.data = rows.tobytes()
    return msg


def table_to_array(msg: PointCloud2) -> np.ndarray:
    """Read a traversability PointCloud2 back into a structured array (checks the field layout)."""
    names = tuple(f.name for f in msg.fields)
    if names != FIELD_NAMES or msg.point_step != DTYPE.itemsize:
        raise ValueError(f"not an ai4mars traversability table: fields {names}")
    return np.frombuffer(bytes(msg.data), DTYPE, count=msg.width * msg.height)
