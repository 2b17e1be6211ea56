"""Terrain segmentation for planetary rovers: AI4Mars U-Net (ResNet-18) run with ONNX Runtime.

The package is split into a ROS-free core (``classes``, ``model_metadata``, ``image_codec``,
``segmenter``, ``traversability``, ``overlay``) and a thin rclpy layer (``node``, ``ros_image``,
``bag_*``). Only the rclpy layer imports ROS.
"""

__version__ = "0.1.0"
