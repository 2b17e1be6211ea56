"""launch/perception.launch.py under launch_testing: runs where ROS 2 launch is installed, skipped otherwise
(launch is not on PyPI). The file's structure is checked everywhere in test_cli_and_runtime.py."""

from __future__ import annotations

from pathlib import Path

import pytest

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "perception.launch.py"

launch = pytest.importorskip("launch", reason="ROS 2 launch is not installed (not on PyPI)")
launch_ros = pytest.importorskip("launch_ros")
launch_testing = pytest.importorskip("launch_testing")


@pytest.mark.launch_test
def generate_test_description():
    import launch_testing.actions
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    return launch.LaunchDescription(
        [
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(LAUNCH_FILE)), launch_arguments={"device": "cpu"}.items()
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


def test_node_starts(proc_output):
    proc_output.assertWaitFor("on CPUExecutionProvider", timeout=60)
