"""``terrain_segmentation``: a lifecycle node, the thin rclpy layer over the core frame pipeline.

configure = load and check the model, create the publishers; activate = subscribe ``image`` (sensor_msgs/Image)
or ``image/compressed`` (and ``camera_info``, tf2 where installed) and publish ``~/mask``, ``~/traversability``,
and, only while someone subscribes, ``~/overlay``, ``~/confidence`` and ``~/costmap``; deactivate = stop
subscribing; cleanup = release the model. ``/diagnostics`` from configure to cleanup. With ``autostart``
(default) the node configures and activates itself, so ``ros2 run`` behaves like a plain node.

The node holds the lifecycle only: the newest-frame worker (:mod:`~ai4mars_perception.ros.frame_worker`) and the
subscription that follows the publishers' QoS (:mod:`~ai4mars_perception.ros.input`) are classes of their own.
"""

from __future__ import annotations

import signal
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from ai4mars_perception.core.image_codec import ImageDecodeError
from ai4mars_perception.core.params import NODE_NAME, PARAMETERS, Param, ParamsError, check_value
from ai4mars_perception.core.pipeline import Pipeline, PipelineConfig
from ai4mars_perception.core.segmenter import InferenceError, ModelLoadError
from ai4mars_perception.core.stamps import stamp_ns
from ai4mars_perception.ros.camera import CameraGeometry
from ai4mars_perception.ros.diagnostics import FrameStats
from ai4mars_perception.ros.environment import prepare_ros_environment
from ai4mars_perception.ros.frame_worker import LatestFrameWorker
from ai4mars_perception.ros.input import FollowingSubscription
from ai4mars_perception.ros.messages import LAZY, OUTPUTS, result_messages
from ai4mars_perception.ros.qos import output_qos
from ai4mars_perception.ros.side_inputs import StampMatcher, side_inputs

MESSAGE_TYPES = {"mask": Image, "overlay": Image, "traversability": PointCloud2, "confidence": Image,
                 "costmap": OccupancyGrid, "ground_cloud": PointCloud2}  # fmt: skip


def _descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description, read_only=not p.dynamic)
    if p.range is not None and isinstance(p.default, float):
        d.floating_point_range = [FloatingPointRange(from_value=p.range[0], to_value=p.range[1], step=0.0)]
    elif p.range is not None and isinstance(p.default, int) and not isinstance(p.default, bool):
        d.integer_range = [IntegerRange(from_value=int(p.range[0]), to_value=int(p.range[1]), step=1)]
    return d


class TerrainSegmentationNode(LifecycleNode):
    """Lifecycle wrapper around the frame pipeline."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for name, p in PARAMETERS.items():
            self.declare_parameter(name, p.default, _descriptor(p))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.steady_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self.pipeline: Pipeline | None = None
        self.stats = FrameStats()
        self.last_error = ""
        self._pubs: dict[str, object] = {}
        self._diag_timer = self._input = self._camera = None
        self._side: dict[str, tuple] = {}
        self._worker = LatestFrameWorker(self._process_safely)

    def param(self, name: str):
        return self.get_parameter(name).value

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            config = PipelineConfig.from_values({n: self.param(n) for n in PARAMETERS})
            self.pipeline = Pipeline(config)
        except (ModelLoadError, ParamsError) as e:
            self.last_error = str(e)
            self.get_logger().error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        seg = self.pipeline.segmenter
        self.get_logger().info(
            f"model {seg.path} (version {seg.metadata.model_version}, input {seg.input_size}) on {seg.provider}"
        )
        self._pubs = {n: self.create_lifecycle_publisher(MESSAGE_TYPES[n], f"~/{n}", output_qos()) for n in OUTPUTS}
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        period = float(self.param("diagnostics_period"))
        self._diag_timer = self.create_timer(period, self._publish_diagnostics, clock=self.steady_clock)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._worker.start()
        compressed = self.param("transport") == "compressed"
        self._input = FollowingSubscription(
            self, CompressedImage if compressed else Image, "image/compressed" if compressed else "image",
            self.param("input_reliability"), int(self.param("input_depth")), self._on_frame,
            self._on_incompatible_qos, self._on_message_lost,
        )  # fmt: skip
        self._camera = CameraGeometry(self, self._input.topic_name, bool(self.param("use_tf")))
        self._side = {}  # side input name -> (its subscription, its stamp matcher)
        for name, wanted in (("exclusion_mask", "use_exclusion_mask"), ("depth", "use_depth")):
            if self.param(wanted):
                matcher = StampMatcher()
                sub = FollowingSubscription(self, Image, name, "auto", 4, matcher.put, lambda: None, lambda n: None)
                self._side[name] = (sub, matcher)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_input()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_input()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def stop_input(self) -> None:
        """Stop subscribing (image, camera_info, tf2) and processing; what deactivate does. Safe to repeat."""
        if self._input is not None:
            self._input.destroy()
            self._input = None
        if self._camera is not None:
            self._camera.destroy()
            self._camera = None
        for sub, _ in self._side.values():
            sub.destroy()
        self._side = {}
        self._worker.stop()

    def _release(self) -> None:
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        self.pipeline = None

    # -- input --------------------------------------------------------------------------------
    def _on_incompatible_qos(self) -> None:
        with self.stats.lock:
            self.stats.qos_incompatible += 1
        self.get_logger().warn(f"a publisher of {self._input.topic_name} has incompatible QoS", throttle_duration_sec=5)

    def _on_message_lost(self, count: int) -> None:
        with self.stats.lock:
            self.stats.lost += count

    def _on_frame(self, msg) -> None:
        now = time.monotonic()
        self.stats.arrived(now, self._worker.offer(msg, now))

    def _process_safely(self, msg, arrived: float) -> None:
        """The worker's call: one frame; any failure is counted and reported, and the node goes on."""
        try:
            self._process(msg, arrived)
        except ImageDecodeError as e:
            self._record_error(f"bad frame: {e}")
        except InferenceError as e:
            self._record_error(f"bad model output: {e}")
        except Exception as e:  # keep the node alive; count and report
            self._record_error(f"processing failed: {type(e).__name__}: {e}")

    def _record_error(self, text: str) -> None:
        self.stats.error(text)
        self.get_logger().error(text, throttle_duration_sec=2.0)

    def _process(self, msg, arrived: float) -> None:
        pipeline = self.pipeline
        if pipeline is None:
            return
        gray = pipeline.decode(msg)
        side = self._side_inputs(msg, gray.shape[:2]) if self._side else None
        pubs, camera = self._pubs, self._camera
        intrinsics = pose = None
        if camera is not None:
            intrinsics, pose = camera.model, camera.pose(msg.header, pipeline.config.ground.costmap_frame)
        result = pipeline.process(gray, side, intrinsics, pose)
        wanted = tuple(n for n in OUTPUTS if n not in LAZY or pubs[n].get_subscription_count() > 0)
        projector = pipeline.projector(result.mask.shape, intrinsics, pose) if "costmap" in wanted else None
        for name, out in result_messages(result, msg.header, wanted, projector):
            pubs[name].publish(out)
        self.stats.done(time.monotonic(), arrived, result.timings.inference, "overlay" in wanted)

    def _side_inputs(self, msg, shape: tuple[int, int]):
        """The frame's exclusion mask and depth, matched by stamp (waiting at most side_input_timeout each);
        a missing or unusable one is counted and reported, and the frame is processed without it."""
        stamp, timeout = stamp_ns(msg.header), float(self.param("side_input_timeout"))
        found = {name: matcher.take(stamp, timeout) for name, (_, matcher) in self._side.items()}
        side, problems = side_inputs(shape, found.get("exclusion_mask"), found.get("depth"))
        for name, got in found.items():
            unusable = any(p.startswith(name.replace("_", " ")) for p in problems)
            self.stats.side_input(name, "missing" if got is None else "unusable" if unusable else "matched")
        for problem in problems:
            self._record_error(problem)
        return side

    # -- parameters and diagnostics -----------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        try:
            values = {p.name: check_value(p.name, p.value) for p in params if p.name in PARAMETERS}
            current = {n: self.param(n) for n in PARAMETERS}
            PipelineConfig.from_values({**current, **values})  # cross-field checks
            dynamic = {k: v for k, v in values.items() if PARAMETERS[k].dynamic and k != "stale_timeout"}
            if self.pipeline is not None and dynamic:
                self.pipeline.update(dynamic)
        except ParamsError as e:
            return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    def _publish_diagnostics(self) -> None:
        pipeline = self.pipeline
        extra = {
            "lifecycle_state": "active" if self._worker.running else "inactive",
            "input_reliability": (self._input.reliability if self._input is not None else None) or "none",
            "camera_geometry": self._camera.source if self._camera is not None else "",
            "provider": pipeline.segmenter.provider if pipeline else "",
            "model_version": pipeline.metadata.model_version if pipeline else "",
        }
        status = self.stats.status(self.get_name(), time.monotonic(), float(self.param("stale_timeout")), extra)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def main(args: list[str] | None = None) -> int:
    """Console entry point ``terrain_segmentation`` (accepts ``--ros-args``)."""
    prepare_ros_environment()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # rclpy.init installs its handlers over these
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    rclpy.init(args=args if args is not None else sys.argv)
    node = TerrainSegmentationNode()
    code = 0
    try:
        if node.param("autostart"):
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                print(f"terrain_segmentation: cannot start: {node.last_error}", file=sys.stderr)
                return 2
            node.trigger_activate()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop_input()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
