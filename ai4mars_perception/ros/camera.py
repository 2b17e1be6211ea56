"""Camera geometry for the costmap: intrinsics from ``camera_info``, pose from tf2 when it is installed."""

from __future__ import annotations

import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo

from ai4mars_perception.core.projection import CameraModel, rotation_from_quaternion
from ai4mars_perception.ros.messages import camera_model


class CameraGeometry:
    """Follows ``<image namespace>/camera_info`` (latest message wins) and, where ``tf2_ros`` is importable
    (a ROS installation; it is not on PyPI), looks up costmap_frame <- the image's frame at the image stamp.
    Whatever is missing falls back to the node's camera_* parameters."""

    def __init__(self, node, image_topic: str, use_tf: bool) -> None:
        self.node = node
        self.model: CameraModel | None = None
        self.topic = image_topic.rsplit("/", 1)[0] + "/camera_info" if "/" in image_topic else "camera_info"
        self.sub = node.create_subscription(CameraInfo, self.topic, self._on_info, qos_profile_sensor_data)
        self.buffer = self.listener = None
        if use_tf:
            try:
                import tf2_ros
            except ImportError:
                tf2_ros = None
            if tf2_ros is not None:
                self.buffer = tf2_ros.Buffer()
                self.listener = tf2_ros.TransformListener(self.buffer, node)

    def _on_info(self, msg: CameraInfo) -> None:
        self.model = camera_model(msg)

    @property
    def source(self) -> str:
        """Where the geometry comes from, for diagnostics."""
        intrinsics = "camera_info" if self.model is not None else "camera_hfov parameter"
        pose = "tf2 (else camera_* parameters)" if self.buffer is not None else "camera_* parameters"
        return f"{intrinsics}; pose from {pose}"

    def pose(self, header, frame: str) -> tuple[np.ndarray, tuple[float, float, float]] | None:
        """(ground-from-optical rotation, camera position) from tf2, or None to use the parameters."""
        if self.buffer is None or not header.frame_id:
            return None
        try:
            t = self.buffer.lookup_transform(frame, header.frame_id, header.stamp).transform
        except Exception:  # no transform (yet): LookupException, ExtrapolationException, ...
            return None
        q, p = t.rotation, t.translation
        return rotation_from_quaternion(q.x, q.y, q.z, q.w), (p.x, p.y, p.z)

    def destroy(self) -> None:
        self.node.destroy_subscription(self.sub)
