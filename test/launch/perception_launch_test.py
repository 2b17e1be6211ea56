"""launch/perception.launch.py under launch_testing (run by test/test_launch.py with launch_testing's own runner,
where ROS 2 launch is installed): the node comes up with the model passed in, answers a published frame with a
mask of known classes (any model: the tiny test model, the shipped one), keeps the params file's values where
no argument overrides them, and exits cleanly when the launch shuts down. By hand, with the params file that
test_launch.py writes:

    printf '/**:\n  ros__parameters:\n    device: cpu\n    go_min_traversable: 0.9\n    model_path: /nowhere.onnx\n' \
        > /tmp/lt_params.yaml
    python -m launch_testing.launch_test test/launch/perception_launch_test.py \
        model_path:=models/ai4mars_unet_r18_int8.onnx params_file:=/tmp/lt_params.yaml
"""

import time
import unittest
from pathlib import Path

import launch_testing
import launch_testing.actions
import launch_testing.asserts
import numpy as np
import pytest
import rclpy
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from sensor_msgs.msg import Image

from launch import LaunchDescription

LAUNCH_FILE = Path(__file__).resolve().parents[2] / "launch" / "perception.launch.py"
NAMESPACE = "lt"


@pytest.mark.launch_test
def generate_test_description():
    args = {"model_path": LaunchConfiguration("model_path"), "params_file": LaunchConfiguration("params_file"),
            "image_topic": "/lt_cam/image", "namespace": NAMESPACE}  # fmt: skip
    return LaunchDescription(
        [
            DeclareLaunchArgument("model_path", description="the model the node under test loads"),
            DeclareLaunchArgument("params_file", description="params YAML with device: cpu, go_min_traversable: 0.9"),
            IncludeLaunchDescription(PythonLaunchDescriptionSource(str(LAUNCH_FILE)), launch_arguments=args.items()),
            launch_testing.actions.ReadyToTest(),
        ]
    )


class TestMaskAnswered(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("perception_launch_probe")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_mask_for_published_frame(self, proc_output):
        proc_output.assertWaitFor("subscribed", timeout=60)
        got = []
        self.node.create_subscription(Image, f"/{NAMESPACE}/terrain_segmentation/mask", got.append, 10)
        pub = self.node.create_publisher(Image, "/lt_cam/image", 10)
        msg = Image(height=64, width=80, encoding="mono8", step=80)
        msg.data = np.full((64, 80), 96, np.uint8).tobytes()
        msg.header.frame_id = "navcam_left"
        end = time.monotonic() + 30
        while not got and time.monotonic() < end:
            if pub.get_subscription_count() > 0:
                pub.publish(msg)
            rclpy.spin_once(self.node, timeout_sec=0.5)
        self.assertTrue(got, "no mask came back")
        mask = got[0]
        self.assertEqual((mask.width, mask.height, mask.encoding), (80, 64, "mono8"))
        self.assertEqual(mask.header.frame_id, "navcam_left")
        # every pixel is a terrain class or unknown (model-agnostic; the tiny test model calls gray 96 bedrock)
        self.assertLessEqual(set(bytes(mask.data)), {0, 1, 2, 3, 255})

    def test_params_file_wins_unless_an_argument_is_given(self, proc_output):
        """With test_launch.py's params file (device: cpu, go_min_traversable: 0.9, model_path: /nowhere.onnx)."""
        from rcl_interfaces.srv import GetParameters

        proc_output.assertWaitFor("subscribed", timeout=60)
        client = self.node.create_client(GetParameters, f"/{NAMESPACE}/terrain_segmentation/get_parameters")
        self.assertTrue(client.wait_for_service(timeout_sec=10))
        future = client.call_async(GetParameters.Request(names=["device", "go_min_traversable", "model_path"]))
        end = time.monotonic() + 10
        while not future.done() and time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.1)
        device, threshold, model = future.result().values
        self.assertEqual(device.string_value, "cpu")  # from the params file: no device argument was given
        self.assertAlmostEqual(threshold.double_value, 0.9)
        self.assertTrue(model.string_value.endswith(".onnx") and model.string_value != "/nowhere.onnx")


@launch_testing.post_shutdown_test()
class TestCleanExit(unittest.TestCase):
    def test_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
