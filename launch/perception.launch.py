"""Start terrain_segmentation beside a camera driver, optionally with RViz.

ros2 launch ai4mars_perception perception.launch.py image_topic:=/navcam/left/image_raw use_rviz:=true

The params file (default: the installed config/perception.yaml) is the source of truth; model_path, device and
use_sim_time override it only when given here. An empty model_path means the shipped default model in
share/ai4mars_perception/models. If the node cannot start (no model, bad parameters), the launch stops and exits
non-zero with the node's reason.
"""

import os
import shutil
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, RegisterEventHandler, SetEnvironmentVariable
from launch.event_handlers import OnProcessExit
from launch_ros.actions import Node

from ai4mars_perception.core.params import NODE_NAME, launch_overrides
from launch import LaunchDescription

PACKAGE = "ai4mars_perception"
OVERRIDABLE = ("model_path", "device", "use_sim_time")


def _rviz_config(share: str, image_topic: str, node_prefix: str) -> str:
    """The RViz config with this launch's topics (input image, the node's overlay and mask)."""
    with open(os.path.join(share, "config", "ai4mars.rviz")) as f:
        text = f.read()
    text = text.replace("/navcam/left/image_raw", image_topic).replace(f"/{NODE_NAME}/", f"{node_prefix}/")
    fd, path = tempfile.mkstemp(prefix="ai4mars_", suffix=".rviz")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _node_exited(event, context):
    if event.returncode not in (0, -2, -15) and not context.is_shutdown:
        raise RuntimeError(
            f"{NODE_NAME} exited with status {event.returncode} (its reason is above; "
            "no model? pass model_path:=/path/to/model.onnx)"
        )


def _launch_setup(context):
    share = get_package_share_directory(PACKAGE)
    get = lambda name: context.launch_configurations.get(name, "")  # noqa: E731
    namespace = get("namespace").strip("/")
    params_file = get("params_file") or os.path.join(share, "config", "perception.yaml")
    overrides = launch_overrides({name: get(name) for name in OVERRIDABLE})
    image_topic = get("image_topic")
    node = Node(
        package=PACKAGE,
        executable="terrain_segmentation",
        name=NODE_NAME,
        namespace=namespace,
        output="screen",
        parameters=[params_file, overrides] if overrides else [params_file],
        remappings=[("image", image_topic), ("image/compressed", image_topic + "/compressed")],
    )
    actions = [node, RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_node_exited))]
    if get("use_rviz").lower() == "true":
        if shutil.which("rviz2") is None:
            actions.append(LogInfo(msg="use_rviz:=true but rviz2 is not installed: starting without RViz"))
        else:
            prefix = f"/{namespace}/{NODE_NAME}" if namespace else f"/{NODE_NAME}"
            config = _rviz_config(share, image_topic, prefix)
            sim = {"use_sim_time": overrides.get("use_sim_time", False)}
            actions.append(Node(package="rviz2", executable="rviz2", arguments=["-d", config], parameters=[sim]))
    return actions


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", os.path.join(share, "config", "fastdds_large_shm.xml"))
    args = [
        DeclareLaunchArgument("image_topic", default_value="/navcam/left/image_raw", description="input image topic"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("params_file", default_value="", description="params YAML (default: the installed one)"),
        DeclareLaunchArgument("model_path", default_value="", description="overrides the params file when given"),
        DeclareLaunchArgument("device", default_value="", description="auto | cpu | cuda; overrides when given"),
        DeclareLaunchArgument("use_sim_time", default_value="", description="true | false; overrides when given"),
        DeclareLaunchArgument("use_rviz", default_value="false", description="also start RViz (when installed)"),
    ]
    # Large shared-memory segment so 1 MiB frames published best-effort by the node reach RViz.
    env = SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile)
    return LaunchDescription([*args, env, OpaqueFunction(function=_launch_setup)])
