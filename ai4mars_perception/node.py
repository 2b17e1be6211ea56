"""``terrain_segmentation``: the ROS 2 node (thin rclpy layer over :mod:`ai4mars_perception.segmenter`).

Subscribes ``image`` (sensor_msgs/Image) or ``image/compressed`` (sensor_msgs/CompressedImage) and
publishes ``~/mask``, ``~/overlay`` (only while subscribed), ``~/traversability`` and ``/diagnostics``.
Only the newest frame is processed: frames that arrive while the model runs replace the waiting one.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from ai4mars_perception.runtime_env import default_model_path, prepare_ros_environment

prepare_ros_environment()

import cv2  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult  # noqa: E402
from rclpy.executors import ExternalShutdownException  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, PointCloud2  # noqa: E402

from ai4mars_perception.image_codec import ImageDecodeError  # noqa: E402
from ai4mars_perception.overlay import overlay  # noqa: E402
from ai4mars_perception.ros_image import array_to_image, compressed_to_gray, image_to_gray  # noqa: E402
from ai4mars_perception.segmenter import ModelLoadError, Segmenter, Timings  # noqa: E402
from ai4mars_perception.traversability import TraversabilityConfig, summarize  # noqa: E402
from ai4mars_perception.traversability_msg import summary_to_msg  # noqa: E402

NODE_NAME = "terrain_segmentation"
THRESHOLDS = ("go_min_traversable", "stop_below_traversable", "stop_above_big_rock", "min_known_fraction")
_UNIT = FloatingPointRange(from_value=0.0, to_value=1.0, step=0.0)


@dataclass
class _Param:
    default: object
    description: str
    read_only: bool = True
    float_range: FloatingPointRange | None = None
    int_range: IntegerRange | None = None


#: Every parameter, declared once. Dynamic ones (read_only=False) change through the parameter callback.
PARAMETERS: dict[str, _Param] = {
    "model_path": _Param("", "ONNX model exported by ai4mars-train (empty: the shipped default model)"),
    "device": _Param("auto", "auto | cpu | cuda (auto: TensorRT/CUDA when available, else CPU)"),
    "intra_op_threads": _Param(
        0, "ONNX Runtime intra-op threads (0: one per core)", int_range=IntegerRange(from_value=0, to_value=256, step=1)
    ),
    "flip_tta": _Param(False, "average the prediction with a horizontally flipped frame (2x compute)"),
    "transport": _Param("raw", "raw: subscribe image (sensor_msgs/Image); compressed: image/compressed"),
    "input_reliability": _Param("best_effort", "input QoS reliability: best_effort (sensor data) or reliable"),
    "input_depth": _Param(1, "input QoS history depth", int_range=IntegerRange(from_value=1, to_value=100, step=1)),
    "max_pixels": _Param(
        4096 * 4096,
        "frames larger than this many pixels are rejected",
        int_range=IntegerRange(from_value=1, to_value=1 << 28, step=1),
    ),
    "rover_mask_path": _Param("", "optional image; non-zero pixels (rover body) are reported unknown (255)"),
    "overlay_alpha": _Param(0.5, "overlay opacity of class colours", False, _UNIT),
    "go_min_traversable": _Param(0.8, "verdict go needs at least this traversable fraction", False, _UNIT),
    "stop_below_traversable": _Param(0.5, "verdict stop below this traversable fraction", False, _UNIT),
    "stop_above_big_rock": _Param(0.1, "verdict stop above this big-rock fraction of known pixels", False, _UNIT),
    "min_known_fraction": _Param(0.3, "verdict at most caution when fewer pixels are known", False, _UNIT),
    "near_field_fraction": _Param(
        0.5,
        "bottom fraction of the frame split into sectors",
        False,
        FloatingPointRange(from_value=0.05, to_value=1.0, step=0.0),
    ),
    "sectors": _Param(
        3, "number of near-field sectors, left to right", int_range=IntegerRange(from_value=1, to_value=16, step=1)
    ),
    "diagnostics_period": _Param(
        1.0,
        "seconds between /diagnostics messages",
        float_range=FloatingPointRange(from_value=0.1, to_value=60.0, step=0.0),
    ),
    "stale_timeout": _Param(
        3.0,
        "warn in diagnostics when no frame arrived for this many seconds",
        False,
        FloatingPointRange(from_value=0.1, to_value=3600.0, step=0.0),
    ),
}


class _Stats:
    """Counters and rolling timings reported in diagnostics (touched from two threads under a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = self.processed = self.dropped = self.errors = self.overlays = 0
        self.last_error = ""
        self.last_input = 0.0
        self.arrivals: deque[float] = deque(maxlen=200)
        self.completions: deque[float] = deque(maxlen=200)
        self.inference: deque[float] = deque(maxlen=50)
        self.latency: deque[float] = deque(maxlen=50)

    @staticmethod
    def rate(times: deque[float], now: float, window: float = 5.0) -> float:
        recent = [t for t in times if now - t <= window]
        return 0.0 if len(recent) < 2 else (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)


class TerrainSegmentationNode(Node):
    """ROS 2 wrapper around :class:`Segmenter` with latest-frame-only processing."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for name, p in PARAMETERS.items():
            self.declare_parameter(
                name,
                p.default,
                ParameterDescriptor(
                    description=p.description,
                    read_only=p.read_only,
                    floating_point_range=[p.float_range] if p.float_range else [],
                    integer_range=[p.int_range] if p.int_range else [],
                ),
            )
        get = lambda n: self.get_parameter(n).value  # noqa: E731
        self.traversability = self._config_from({n: get(n) for n in (*THRESHOLDS, "near_field_fraction", "sectors")})
        self.overlay_alpha = float(get("overlay_alpha"))
        self.max_pixels = int(get("max_pixels"))
        model_path = get("model_path") or str(default_model_path())
        self.segmenter = Segmenter(model_path, get("device"), int(get("intra_op_threads")), bool(get("flip_tta")))
        self.get_logger().info(
            f"model {self.segmenter.path} (version {self.segmenter.metadata.model_version}, "
            f"input {self.segmenter.input_size}) on {self.segmenter.provider}"
        )
        if get("rover_mask_path"):
            rover = cv2.imread(get("rover_mask_path"), cv2.IMREAD_GRAYSCALE)
            if rover is None:
                raise ModelLoadError(f"rover mask {get('rover_mask_path')} is not a readable image")
            self.segmenter.set_rover_mask(rover)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.stats = _Stats()
        self._slot: tuple[object, float] | None = None
        self._cond = threading.Condition()
        self._running = True

        reliability = get("input_reliability")
        if reliability not in ("best_effort", "reliable"):
            raise ValueError("input_reliability must be best_effort or reliable")
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=int(get("input_depth")),
            reliability=ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE,
            durability=qos_profile_sensor_data.durability,
        )
        transport = get("transport")
        if transport == "raw":
            self._decode = lambda m: image_to_gray(m, self.max_pixels)
            self.create_subscription(Image, "image", self._on_frame, qos)
        elif transport == "compressed":
            self._decode = lambda m: compressed_to_gray(m, self.max_pixels)
            self.create_subscription(CompressedImage, "image/compressed", self._on_frame, qos)
        else:
            raise ValueError(f"transport must be raw or compressed, got {transport!r}")
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self.mask_pub = self.create_publisher(Image, "~/mask", out_qos)
        self.overlay_pub = self.create_publisher(Image, "~/overlay", out_qos)
        self.summary_pub = self.create_publisher(PointCloud2, "~/traversability", out_qos)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(float(get("diagnostics_period")), self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name="segmentation", daemon=True)
        self._worker.start()

    # -- parameters ---------------------------------------------------------------------------
    @staticmethod
    def _config_from(values: dict) -> TraversabilityConfig:
        config = TraversabilityConfig(**values)
        config.validate()
        return config

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        values = {n: getattr(self.traversability, n) for n in (*THRESHOLDS, "near_field_fraction", "sectors")}
        alpha = self.overlay_alpha
        for p in params:
            if p.name in values:
                values[p.name] = p.value
            elif p.name == "overlay_alpha":
                alpha = float(p.value)
        try:
            config = self._config_from(values)
            if not 0.0 <= alpha <= 1.0:
                raise ValueError("overlay_alpha must lie in [0, 1]")
        except (TypeError, ValueError) as e:
            return SetParametersResult(successful=False, reason=str(e))
        self.traversability, self.overlay_alpha = config, alpha
        return SetParametersResult(successful=True)

    # -- input --------------------------------------------------------------------------------
    def _on_frame(self, msg) -> None:
        now = time.monotonic()
        with self._cond:
            if self._slot is not None:
                self.stats.dropped += 1
            self._slot = (msg, now)
            self._cond.notify()
        with self.stats.lock:
            self.stats.received += 1
            self.stats.last_input = now
            self.stats.arrivals.append(now)

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
            except Exception as e:  # keep the node alive; count and report
                self._record_error(f"processing failed: {type(e).__name__}: {e}")

    def _record_error(self, text: str) -> None:
        with self.stats.lock:
            self.stats.errors += 1
            self.stats.last_error = text
        self.get_logger().error(text, throttle_duration_sec=2.0)

    def _process(self, msg, arrived: float) -> None:
        gray = self._decode(msg)
        timings = Timings()
        mask = self.segmenter.segment(gray, timings)
        self.mask_pub.publish(array_to_image(mask, "mono8", msg.header))
        if self.overlay_pub.get_subscription_count() > 0:
            rgb = overlay(gray, mask, self.overlay_alpha, self.segmenter.metadata.class_colors)
            self.overlay_pub.publish(array_to_image(rgb, "rgb8", msg.header))
            with self.stats.lock:
                self.stats.overlays += 1
        self.summary_pub.publish(summary_to_msg(summarize(mask, self.traversability), msg.header))
        done = time.monotonic()
        with self.stats.lock:
            self.stats.processed += 1
            self.stats.completions.append(done)
            self.stats.inference.append(timings.inference)
            self.stats.latency.append(done - arrived)

    # -- diagnostics --------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        s = self.stats
        with s.lock:
            stale = s.last_input == 0.0 or now - s.last_input > self.get_parameter("stale_timeout").value
            mean = lambda d: 1000.0 * sum(d) / len(d) if d else 0.0  # noqa: E731
            values = {
                "input_rate_hz": f"{s.rate(s.arrivals, now):.2f}",
                "processed_rate_hz": f"{s.rate(s.completions, now):.2f}",
                "frames_received": str(s.received),
                "frames_processed": str(s.processed),
                "frames_dropped": str(s.dropped),
                "overlays_published": str(s.overlays),
                "errors": str(s.errors),
                "last_error": s.last_error,
                "inference_ms": f"{mean(s.inference):.1f}",
                "latency_ms": f"{mean(s.latency):.1f}",
                "seconds_since_input": "never" if s.last_input == 0.0 else f"{now - s.last_input:.1f}",
                "provider": self.segmenter.provider,
                "model_version": self.segmenter.metadata.model_version,
            }
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if stale else DiagnosticStatus.OK,
            name=f"{self.get_name()}: terrain segmentation",
            message="no input frames (stale)" if stale else "running",
            hardware_id=self.segmenter.provider,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def shutdown(self) -> None:
        """Stop the worker thread."""
        with self._cond:
            self._running = False
            self._cond.notify()
        self._worker.join(timeout=5.0)


def main(args: list[str] | None = None) -> int:
    """Console entry point ``terrain_segmentation`` (accepts ``--ros-args``)."""
    rclpy.init(args=args if args is not None else sys.argv)
    try:
        node = TerrainSegmentationNode()
    except (ModelLoadError, ValueError) as e:
        print(f"terrain_segmentation: cannot start: {e}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
