"""ROS-free core: numpy in, numpy out. Nothing here imports rclpy or ROS messages."""
