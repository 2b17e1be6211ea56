"""``ai4mars-perception bench --transport``: do 1 MiB frames reach a best-effort subscriber, per publisher set-up?"""

from __future__ import annotations

_PUBLISHER = """
import sys, time, numpy as np, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("transport_bench_pub")
rel = ReliabilityPolicy.RELIABLE if sys.argv[1] == "reliable" else ReliabilityPolicy.BEST_EFFORT
pub = node.create_publisher(Image, "/transport_bench", QoSProfile(depth=1, reliability=rel))
msg = Image(height=1024, width=1024, encoding="mono8", step=1024)
msg.data = np.random.default_rng(0).integers(0, 256, (1024, 1024), np.uint8).tobytes()
end = time.time() + 20
while pub.get_subscription_count() == 0 and time.time() < end:
    time.sleep(0.05)
time.sleep(1.0)
for _ in range(int(sys.argv[2])):
    pub.publish(msg)
    time.sleep(0.1)
time.sleep(1.0)
"""


def bench_transport(frames: int = 20) -> list[dict]:
    """1 MiB mono8 frames at 10 Hz from a publisher process to a best-effort (sensor-data) subscriber here,
    with Fast DDS's default transports and with config/fastdds_large_shm.xml on the publisher."""
    import subprocess
    import sys

    from ai4mars_perception.ros.environment import child_env

    env = child_env()
    profile = env["FASTDDS_DEFAULT_PROFILES_FILE"]
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from ai4mars_perception.tools.processes import RosSession

    got: list[int] = []
    results = []
    with RosSession("transport_bench_sub") as ros:
        ros.node.create_subscription(Image, "/transport_bench", lambda m: got.append(1), qos_profile_sensor_data)
        for use_profile in (False, True):
            for reliability in ("best_effort", "reliable"):
                pub_env = {k: v for k, v in env.items() if k != "FASTDDS_DEFAULT_PROFILES_FILE"}
                if use_profile:
                    pub_env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile
                got.clear()
                cmd = [sys.executable, "-c", _PUBLISHER, reliability, str(frames)]
                proc = subprocess.Popen(cmd, env=pub_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                while proc.poll() is None:
                    ros.spin_once(0.05)
                for _ in range(20):
                    ros.spin_once(0.05)
                results.append(
                    {
                        "publisher_profile": "large_shm" if use_profile else "default",
                        "publisher_qos": reliability,
                        "received": len(got),
                        "sent": frames,
                    }  # fmt: skip
                )
    return results
