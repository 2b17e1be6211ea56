"""Command-line tools on top of the core and the ROS layer: segment, bags, bench, demo."""
