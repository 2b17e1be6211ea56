"""The rclpy layer: lifecycle node, message conversion, QoS choice, diagnostics, process environment."""
