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
        self.pose_source = "camera_* parameters"  # what the last costmap used, for diagnostics
        self._tf_errors: tuple[type[BaseException], ...] = ()
        if use_tf:
            try:
                import tf2_ros
            except ImportError:
                tf2_ros = None
            if tf2_ros is not None:
                self.buffer = tf2_ros.Buffer()
                self.listener = tf2_ros.TransformListener(self.buffer, node)
                # what a lookup raises when the transform is not (yet) there; anything else is a real fault
                self._tf_errors = (tf2_ros.LookupException, tf2_ros.ConnectivityException,
                                   tf2_ros.ExtrapolationException)  # fmt: skip

    def _on_info(self, msg: CameraInfo) -> None:
        self.model = camera_model(msg)

    @property
    def source(self) -> str:
        """Where the geometry of the last costmap came from, for diagnostics."""
        intrinsics = "camera_info" if self.model is not None else "camera_hfov parameter"
        return f"{intrinsics}; pose from {self.pose_source}"

    def pose(self, header, frame: str) -> tuple[np.ndarray, tuple[float, float, float]] | None:
        """(ground-from-optical rotation, camera position) from tf2, or None to use the parameters; records
        which one was used (and why tf2 was not) in :attr:`pose_source`."""
        if self.buffer is None or not header.frame_id:
            self.pose_source = "camera_* parameters" + ("" if self.buffer is None else " (the image has no frame_id)")
            return None
        try:
            t = self.buffer.lookup_transform(frame, header.frame_id, header.stamp).transform
        except self._tf_errors as e:
            self.pose_source = f"camera_* parameters (tf2: {type(e).__name__} {frame} <- {header.frame_id})"
            return None
        self.pose_source = f"tf2 ({frame} <- {header.frame_id})"
        q, p = t.rotation, t.translation
        return rotation_from_quaternion(q.x, q.y, q.z, q.w), (p.x, p.y, p.z)

    def destroy(self) -> None:
        """Release the camera_info subscription and the tf2 listener (its /tf and /tf_static subscriptions):
        called on deactivate, so re-activations do not pile them up."""
        self.node.destroy_subscription(self.sub)
        if self.listener is not None:
            self.listener.unregister()
        self.listener = self.buffer = None
