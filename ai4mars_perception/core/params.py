"""The one parameter table (node, ``bag process``, ``segment``, demo) and the node's YAML params file (ROS-free).

The rclpy node declares exactly these parameters with these descriptions, ranges and read-only flags; the
tools read the same YAML (``--params-file``) into the same :class:`~ai4mars_perception.core.pipeline.PipelineConfig`,
so offline results equal online ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "terrain_segmentation"


GROUPS = ("model", "validity", "input", "output", "traversability", "ground", "node")


@dataclass(frozen=True)
class Param:
    """One parameter: its group (which run-time config holds it), default (its type is the parameter's type),
    description, whether it may change at run time, an inclusive numeric range or the allowed choices."""

    group: str
    default: Any
    description: str
    dynamic: bool = False
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None


_UNIT = (0.0, 1.0)

#: Every parameter, declared once.
PARAMETERS: dict[str, Param] = {
    # -- model: the model and how it runs (PipelineConfig)
    "model_path": Param("model", "", "ONNX model exported by ai4mars-train (empty: the shipped model, int8 for "
                        "ONNX Runtime on the CPU, float on a GPU or with backend torch)"),
    "device": Param("model", "auto", "auto | cpu | cuda (auto: TensorRT/CUDA when available, else CPU)",
                    choices=("auto", "cpu", "cuda")),
    "backend": Param("model", "auto", "auto | onnxruntime | torch (auto: ONNX Runtime on a GPU, else PyTorch on a "
                     "GPU, else ONNX Runtime on the CPU; torch converts the float ONNX model at load time)",
                     choices=("auto", "onnxruntime", "torch")),
    "allow_pickle": Param("model", False, "allow a fastai learner .pkl as model_path (unpickling runs code from "
                          "the file)"),
    "intra_op_threads": Param("model", 0, "ONNX Runtime intra-op threads (0: one per core)", range=(0, 256)),
    "flip_tta": Param("model", False, "average the prediction with a horizontally flipped frame (2x compute)"),
    "max_pixels": Param("model", 4096 * 4096, "frames larger than this many pixels are rejected (before decoding)",
                        range=(1, 1 << 28)),
    "rover_mask_path": Param("model", "", "optional image; non-zero pixels (rover body) are reported unknown (255)"),
    # -- validity: which pixels can be terrain at all (PipelineConfig)
    "use_geometry": Param("validity", True, "pixels whose ray misses the ground (sky) or meets it beyond max_range "
                          "are unknown (flat ground from camera_info/tf2 or the camera_* parameters; with depth, "
                          "its 3D points)", True),
    "max_range": Param("validity", 30.0, "pixels farther than this from the camera are unknown, m (AI4Mars labels "
                       "stop at 30 m)", True, (0.5, 1000.0)),
    # -- input: the image subscription and its side inputs (the node only)
    "transport": Param("input", "raw", "raw: subscribe image (sensor_msgs/Image); compressed: image/compressed",
                       choices=("raw", "compressed")),
    "input_reliability": Param("input", "auto", "input QoS reliability: auto (follow the publishers), best_effort "
                               "or reliable", choices=("auto", "best_effort", "reliable")),
    "input_depth": Param("input", 1, "input QoS history depth", range=(1, 100)),
    "use_exclusion_mask": Param("input", False, "also subscribe exclusion_mask (mono8, the frame's size, non-zero = "
                                "not terrain, e.g. the rover body from its kinematics), matched to frames by stamp"),
    "use_depth": Param("input", False, "also subscribe depth (32FC1 m or 16UC1 mm, aligned with the camera), matched "
                       "to frames by stamp: real range, 3D points for the costmap and the cloud"),
    "side_input_timeout": Param("input", 0.2, "how long a frame waits for its exclusion mask or depth, s (then it is "
                                "processed without, and diagnostics say so)", range=(0.0, 5.0)),
    # -- output: the published images (PipelineConfig)
    "overlay_alpha": Param("output", 0.5, "overlay opacity of class colours", True, _UNIT),
    "cloud_decimation": Param("output", 4, "~/ground_cloud keeps every N-th pixel in both directions (1: organized "
                              "like the image)", True, (1, 64)),
    # -- traversability: the verdicts (TraversabilityConfig)
    "go_min_traversable": Param("traversability", 0.8, "verdict go needs at least this traversable fraction",
                                True, _UNIT),
    "stop_below_traversable": Param("traversability", 0.5, "verdict stop below this traversable fraction", True,
                                    _UNIT),
    "stop_above_big_rock": Param("traversability", 0.1, "verdict stop above this big-rock fraction of known "
                                 "pixels", True, _UNIT),
    "min_known_fraction": Param("traversability", 0.3, "verdict at most caution when fewer pixels are known", True,
                                _UNIT),
    "near_field_fraction": Param("traversability", 0.5, "bottom fraction of the frame split into sectors", True,
                                 (0.05, 1.0)),
    "sectors": Param("traversability", 3, "number of near-field sectors, left to right", range=(1, 16)),
    # -- ground: the camera geometry and the ground costmap (GroundConfig)
    "costmap_frame": Param("ground", "base_link", "frame of ~/costmap: x forward, y left, z up, ground at z = 0 "
                           "(REP-103)"),
    "use_tf": Param("ground", True, "camera pose from tf2 (costmap_frame <- image frame) when tf2_ros is installed"),
    "camera_height": Param("ground", 1.9, "camera height above the ground, m (Navcam on the mast: about 1.9)", True,
                           (0.05, 100.0)),
    "camera_pitch": Param("ground", 25.0, "camera tilt below the horizontal, degrees", True, (-90.0, 90.0)),
    "camera_yaw": Param("ground", 0.0, "camera heading, degrees, left positive", True, (-180.0, 180.0)),
    "camera_roll": Param("ground", 0.0, "camera roll about its viewing direction, degrees", True, (-180.0, 180.0)),
    "camera_x": Param("ground", 0.0, "camera position ahead of the costmap_frame origin, m", True, (-100.0, 100.0)),
    "camera_y": Param("ground", 0.0, "camera position left of the costmap_frame origin, m", True, (-100.0, 100.0)),
    "camera_hfov": Param("ground", 45.0, "horizontal field of view when no camera_info is published, degrees "
                         "(Navcam: 45)", True, (1.0, 179.0)),
    "costmap_resolution": Param("ground", 0.1, "costmap cell size, m", True, (0.01, 10.0)),
    "costmap_size": Param("ground", 0.0, "costmap side, m, a square ahead of the camera (0: the projected "
                          "footprint)", True, (0.0, 1000.0)),
    "costmap_max_range": Param("ground", 30.0, "ground points farther than this from the camera are left unknown, "
                               "m", True, (0.5, 1000.0)),
    # -- node: the node itself
    "diagnostics_period": Param("node", 1.0, "seconds between /diagnostics messages", range=(0.1, 60.0)),
    "stale_timeout": Param("node", 3.0, "warn in diagnostics when no frame arrived for this many seconds", True,
                           (0.1, 3600.0)),
    "autostart": Param("node", True, "configure and activate the lifecycle node at start (false: wait for "
                       "lifecycle calls)"),
}  # fmt: skip

#: Parameters every ROS node has; accepted in params files and ignored here.
ROS_BUILTIN = ("use_sim_time", "start_type_description_service")


class ParamsError(ValueError):
    """A parameter value or params file is invalid; the message says which and why."""


def check_value(name: str, value: Any) -> Any:
    """Return ``value`` converted to the parameter's type, or raise :class:`ParamsError`."""
    if name not in PARAMETERS:
        raise ParamsError(f"unknown parameter {name!r}")
    p = PARAMETERS[name]
    kind = type(p.default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise ParamsError(f"parameter {name} must be a {kind.__name__}, got {value!r}")
    if p.range is not None and not p.range[0] <= value <= p.range[1]:
        raise ParamsError(f"parameter {name} must lie in [{p.range[0]}, {p.range[1]}], got {value}")
    if p.choices is not None and value not in p.choices:
        raise ParamsError(f"parameter {name} must be one of {', '.join(p.choices)}, got {value!r}")
    return value


def parse_value(name: str, text: str) -> Any:
    """A value given as text (a launch argument, a command-line ``name:=value``) as the parameter's type."""
    kind = type(PARAMETERS[name].default) if name in PARAMETERS else bool if name in ROS_BUILTIN else str
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ParamsError(f"parameter {name} must be true or false, got {text!r}")
        value: Any = text.lower() == "true"
    elif kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            raise ParamsError(f"parameter {name} must be a {kind.__name__}, got {text!r}") from None
    else:
        value = text
    return check_value(name, value) if name in PARAMETERS else value


def launch_overrides(given: dict[str, str]) -> dict[str, Any]:
    """The launch rule: the params file is the source of truth, and a launch argument overrides its parameter
    only when the user gave it (an empty string means "not given"). Returns the typed overrides."""
    return {name: parse_value(name, text) for name, text in given.items() if text != ""}


def group_names(*groups: str) -> tuple[str, ...]:
    """The parameters of ``groups``, in table order."""
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown parameter group(s): {sorted(unknown)}")
    return tuple(name for name, p in PARAMETERS.items() if p.group in groups)


def config_fields(*groups: str) -> list[tuple[str, type, Any]]:
    """``dataclasses.make_dataclass`` fields of ``groups``: each parameter with its type and default, so that a
    run-time config class is generated from the table and never repeats a name or a default."""
    return [(n, type(PARAMETERS[n].default), field(default=PARAMETERS[n].default)) for n in group_names(*groups)]


def config_base(name: str, *groups: str, extra: list | None = None) -> type:
    """A frozen dataclass with the parameters of ``groups`` as fields (plus ``extra`` fields): the base of a
    run-time config class (e.g. ``class GroundConfig(config_base("_Ground", "ground"))``)."""
    return make_dataclass(name, [*config_fields(*groups), *(extra or [])], frozen=True)


def check_values(values: dict[str, Any]) -> dict[str, Any]:
    """Every value checked by :func:`check_value` (type, range, choices: the table's, checked here only)."""
    return {name: check_value(name, value) for name, value in values.items()}


def defaults() -> dict[str, Any]:
    """Every parameter at its default."""
    return {name: p.default for name, p in PARAMETERS.items()}


def _node_keys(node_name: str, namespace: str) -> list[str]:
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return ["/**", "**", node_name, f"{ns}/{node_name}", f"/{node_name}"]


def load_params_file(path: str | Path, node_name: str = NODE_NAME, namespace: str = "") -> dict[str, Any]:
    """Read a ROS 2 params YAML as the node would: sections ``/**`` and the node's name (with or without its
    namespace) are merged in that order over the defaults. Returns every parameter's value."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ParamsError(f"params file {path} cannot be read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"params file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"params file {path} has no '<node name>: ros__parameters:' section")
    values, found = defaults(), False
    for key in dict.fromkeys(_node_keys(node_name, namespace)):
        section = data.get(key)
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
            continue
        found = True
        for name, value in section["ros__parameters"].items():
            if name in ROS_BUILTIN:
                continue
            try:
                values[name] = check_value(name, value)
            except ParamsError as e:
                raise ParamsError(f"params file {path}: {e}") from None
    if not found:
        raise ParamsError(
            f"params file {path} has no section for node {node_name!r} ('/**:' or '{node_name}:' with ros__parameters)"
        )
    return values
