"""Start terrain_segmentation beside a camera driver, optionally with RViz.

ros2 launch ai4mars_perception perception.launch.py image_topic:=/navcam/left/image_raw use_rviz:=true
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("ai4mars_perception")
    profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", os.path.join(share, "config", "fastdds_large_shm.xml"))
    args = [
        DeclareLaunchArgument("image_topic", default_value="/navcam/left/image_raw", description="input image topic"),
        DeclareLaunchArgument("model_path", default_value=os.path.join(share, "models", "ai4mars_unet_r18.onnx")),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "perception.yaml")),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda"),
        DeclareLaunchArgument("use_sim_time", default_value="false"),
        DeclareLaunchArgument("use_rviz", default_value="false"),
    ]
    node = Node(
        package="ai4mars_perception",
        executable="terrain_segmentation",
        name="terrain_segmentation",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model_path": LaunchConfiguration("model_path"),
                "device": LaunchConfiguration("device"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("image/compressed", [LaunchConfiguration("image_topic"), "/compressed"]),
        ],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", os.path.join(share, "config", "ai4mars.rviz")],
        parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    # Large shared-memory segment so 1 MiB best-effort frames are delivered (config/fastdds_large_shm.xml).
    return LaunchDescription([*args, SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile), node, rviz])
