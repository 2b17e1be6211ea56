"""``ai4mars-perception bench --transport``: how many 1 MiB frames reach a subscriber, per publisher and subscriber
Fast DDS set-up and QoS. Publisher and subscriber each run in a process of their own (Fast DDS reads its profile
once per process), on loopback, 10 frames/s."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

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

_SUBSCRIBER = """
import sys, time, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("transport_bench_sub")
rel = ReliabilityPolicy.RELIABLE if sys.argv[1] == "reliable" else ReliabilityPolicy.BEST_EFFORT
got = []
node.create_subscription(Image, "/transport_bench", got.append, QoSProfile(depth=1, reliability=rel))
end = time.time() + float(sys.argv[2])
while time.time() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
print(len(got), flush=True)
"""

#: A subscriber-side variant: the package's profile plus 4 MiB UDP socket buffers (the kernel caps them at
#: net.core.rmem_max / wmem_max).
_UDP_BUFFERS = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <transport_descriptors>
    <transport_descriptor><transport_id>shm</transport_id><type>SHM</type>
      <segment_size>33554432</segment_size></transport_descriptor>
    <transport_descriptor><transport_id>udp</transport_id><type>UDPv4</type>
      <sendBufferSize>4194304</sendBufferSize><receiveBufferSize>4194304</receiveBufferSize></transport_descriptor>
  </transport_descriptors>
  <participant profile_name="big_udp_buffers" is_default_profile="true"><rtps>
    <useBuiltinTransports>false</useBuiltinTransports>
    <userTransports><transport_id>shm</transport_id><transport_id>udp</transport_id></userTransports>
    <listenSocketBufferSize>4194304</listenSocketBufferSize><sendSocketBufferSize>4194304</sendSocketBufferSize>
  </rtps></participant>
</profiles></dds>
"""

CASES = (  # (publisher profile, publisher QoS, subscriber profile, subscriber QoS)
    ("default", "best_effort", "large_shm", "best_effort"),
    ("default", "reliable", "large_shm", "best_effort"),
    ("default", "reliable", "large_shm", "reliable"),
    ("default", "best_effort", "default", "best_effort"),
    ("default", "best_effort", "udp_buffers_4MiB", "best_effort"),
    ("large_shm", "best_effort", "large_shm", "best_effort"),
    ("large_shm", "best_effort", "default", "best_effort"),
)


def bench_transport(frames: int = 20) -> list[dict]:
    """Frames received per case of :data:`CASES` (1 MiB mono8 frames at 10 Hz)."""
    from ai4mars_perception.ros.environment import child_env

    env = child_env()
    with tempfile.TemporaryDirectory() as tmp:
        udp = Path(tmp) / "udp_buffers.xml"
        udp.write_text(_UDP_BUFFERS)
        profiles = {"default": None, "large_shm": env["FASTDDS_DEFAULT_PROFILES_FILE"], "udp_buffers_4MiB": str(udp)}
        results = []
        for pub_profile, pub_qos, sub_profile, sub_qos in CASES:

            def env_with(profile: str | None) -> dict[str, str]:
                e = {k: v for k, v in env.items() if k != "FASTDDS_DEFAULT_PROFILES_FILE"}
                return e if profile is None else {**e, "FASTDDS_DEFAULT_PROFILES_FILE": profile}

            sub = subprocess.Popen([sys.executable, "-c", _SUBSCRIBER, sub_qos, str(frames * 0.1 + 12)],
                                   env=env_with(profiles[sub_profile]), stdout=subprocess.PIPE, text=True)  # fmt: skip
            time.sleep(1.0)
            pub = subprocess.Popen([sys.executable, "-c", _PUBLISHER, pub_qos, str(frames)],
                                   env=env_with(profiles[pub_profile]))  # fmt: skip
            pub.wait(60)
            out, _ = sub.communicate(timeout=60)
            results.append({"publisher_profile": pub_profile, "publisher_qos": pub_qos, "subscriber_profile":
                            sub_profile, "subscriber_qos": sub_qos, "received": int(out.split()[-1]),
                            "sent": frames})  # fmt: skip
    return results
