"""``python -m ai4mars_training.cli``: the same as ``ai4mars-train``."""

import sys

from ai4mars_training.cli import main

sys.exit(main())
