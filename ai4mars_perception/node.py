"""``python -m ai4mars_perception.node``: the same as the ``terrain_segmentation`` console script."""

import sys

from ai4mars_perception.ros.node import main

if __name__ == "__main__":
    sys.exit(main())
