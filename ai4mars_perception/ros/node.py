"""``terrain_segmentation``: a lifecycle node, the thin rclpy layer over the core frame pipeline.

configure = load and check the model; activate = subscribe ``image`` (sensor_msgs/Image) or ``image/compressed``
and publish ``~/mask``, ``~/overlay`` (only while subscribed), ``~/traversability``; deactivate = stop subscribing;
cleanup = release the model. ``/diagnostics`` from configure to cleanup. With ``autostart`` (default) the node
configures and activates itself, so ``ros2 run`` behaves like a plain node. Only the newest frame is processed.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from ai4mars_perception.core.image_codec import ImageDecodeError
from ai4mars_perception.core.params import NODE_NAME, PARAMETERS, Param, ParamsError, check_value
from ai4mars_perception.core.pipeline import Pipeline, PipelineConfig
from ai4mars_perception.core.segmenter import InferenceError, ModelLoadError
from ai4mars_perception.ros.camera import CameraGeometry
from ai4mars_perception.ros.diagnostics import FrameStats
from ai4mars_perception.ros.environment import prepare_ros_environment
from ai4mars_perception.ros.messages import LAZY, OUTPUTS, result_messages
from ai4mars_perception.ros.qos import choose_reliability, input_qos, output_qos

MESSAGE_TYPES = {"mask": Image, "overlay": Image, "traversability": PointCloud2, "confidence": Image,
                 "costmap": OccupancyGrid}  # fmt: skip


def _descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description, read_only=not p.dynamic)
    if p.range is not None and isinstance(p.default, float):
        d.floating_point_range = [FloatingPointRange(from_value=p.range[0], to_value=p.range[1], step=0.0)]
    elif p.range is not None and isinstance(p.default, int) and not isinstance(p.default, bool):
        d.integer_range = [IntegerRange(from_value=int(p.range[0]), to_value=int(p.range[1]), step=1)]
    return d


class TerrainSegmentationNode(LifecycleNode):
    """Lifecycle wrapper around the frame pipeline with latest-frame-only processing."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for name, p in PARAMETERS.items():
            self.declare_parameter(name, p.default, _descriptor(p))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.pipeline: Pipeline | None = None
        self.stats = FrameStats()
        self.last_error = ""
        self._sub = self._reliability = self._worker = self._diag_timer = self._qos_timer = self._camera = None
        self._retiring: list = []  # subscriptions replaced by a QoS change, kept until the new one is matched
        self._switched = 0.0
        self._last_key: tuple | None = None
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._pubs: dict[str, object] = {}
        self._slot: tuple[object, float] | None = None
        self._cond = threading.Condition()
        self._running = False

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
        self._diag_timer = self.create_timer(period, self._publish_diagnostics, clock=self._steady)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._running = True
        self._worker = threading.Thread(target=self._work, name="segmentation", daemon=True)
        self._worker.start()
        self._subscribe(choose_reliability(self.param("input_reliability"), [], None))
        self._camera = CameraGeometry(self, self._sub.topic_name, bool(self.param("use_tf")))
        self._qos_timer = self.create_timer(0.25, self._follow_publishers, clock=self._steady)
        self._follow_publishers()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_input(self) -> None:
        for attr in ("_qos_timer",):
            if getattr(self, attr) is not None:
                self.destroy_timer(getattr(self, attr))
                setattr(self, attr, None)
        for sub in [*self._retiring, *([self._sub] if self._sub is not None else [])]:
            self.destroy_subscription(sub)
        self._retiring, self._sub, self._reliability = [], None, None
        if self._camera is not None:
            self._camera.destroy()
            self._camera = None
        with self._cond:
            self._running, self._slot = False, None
            self._cond.notify()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None

    def _release(self) -> None:
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        self.pipeline = None

    # -- input --------------------------------------------------------------------------------
    def _subscribe(self, reliability: str) -> None:
        """Subscribe with ``reliability``; a replaced subscription keeps delivering until the new one has matched
        the publishers, so no frame is lost to the switch (duplicates are recognised by stamp and frame)."""
        if self._sub is not None:
            self._retiring.append(self._sub)
            self._switched = time.monotonic()
        compressed = self.param("transport") == "compressed"
        events = SubscriptionEventCallbacks(
            incompatible_qos=self._on_incompatible_qos, message_lost=self._on_message_lost
        )
        self._sub = self.create_subscription(
            CompressedImage if compressed else Image,
            "image/compressed" if compressed else "image",
            self._on_frame,
            input_qos(reliability, int(self.param("input_depth"))),
            event_callbacks=events,
        )
        self._reliability = reliability
        self.get_logger().info(f"subscribed {self._sub.topic_name} with {reliability} QoS")

    def _follow_publishers(self) -> None:
        if self._sub is None:
            return
        # keep the old subscription a second past the new one's match: the publisher may see the new reader later
        since = time.monotonic() - self._switched
        if self._retiring and ((self._sub.get_publisher_count() > 0 and since > 1.0) or since > 3.0):
            for sub in self._retiring:
                self.destroy_subscription(sub)
            self._retiring = []
        publishers = self.get_publishers_info_by_topic(self._sub.topic_name)
        wanted = choose_reliability(self.param("input_reliability"), publishers, self._reliability)
        if wanted != self._reliability:
            self._subscribe(wanted)

    def _on_incompatible_qos(self, event) -> None:
        with self.stats.lock:
            self.stats.qos_incompatible += 1
        self.get_logger().warn(f"a publisher of {self._sub.topic_name} has incompatible QoS", throttle_duration_sec=5)

    def _on_message_lost(self, event) -> None:
        with self.stats.lock:
            self.stats.lost += int(event.total_count_change)

    def _on_frame(self, msg) -> None:
        now = time.monotonic()
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id)
        if self._retiring and key == self._last_key:
            return  # the same frame through the old and the new subscription during a QoS switch
        self._last_key = key
        with self._cond:
            dropped = self._slot is not None
            self._slot = (msg, now)
            self._cond.notify()
        self.stats.arrived(now, dropped)

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._slot is None and self._running:
                    self._cond.wait(0.5)
                if not self._running:
                    return
                msg, arrived = self._slot
                self._slot = None
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
        result = pipeline.process_message(msg)
        pubs, camera = self._pubs, self._camera
        wanted = tuple(n for n in OUTPUTS if n not in LAZY or pubs[n].get_subscription_count() > 0)
        projector = None
        if "costmap" in wanted and camera is not None:
            pose = camera.pose(msg.header, pipeline.config.ground.costmap_frame)
            projector = pipeline.projector(result.mask.shape, camera.model, pose)
        for name, out in result_messages(result, msg.header, wanted, projector):
            pubs[name].publish(out)
        self.stats.done(time.monotonic(), arrived, result.timings.inference, "overlay" in wanted)

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
            "lifecycle_state": "active" if self._running else "inactive",
            "input_reliability": self._reliability or "none",
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
        node._stop_input()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
