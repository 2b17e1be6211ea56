"""Entry point of ``terrain_segmentation`` (console script and ``python -m ai4mars_perception.node``).

A signal that arrives while the node is still importing its libraries ends it quietly with status 0;
from rclpy.init on, rclpy's own handlers take over (see :func:`ai4mars_perception.ros.node.main`).
"""

import os
import signal
import sys


def _stop_early(signum, frame) -> None:
    os._exit(0)  # nothing has started yet; an exception could be swallowed by library import code


def main() -> int:
    signal.signal(signal.SIGINT, _stop_early)
    signal.signal(signal.SIGTERM, _stop_early)
    from ai4mars_perception.ros.node import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())
