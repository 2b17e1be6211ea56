"""Terrain segmentation for planetary rovers: AI4Mars U-Net (ResNet-18) run with ONNX Runtime.

Layers, imports pointing down only:

- ``core``: ROS-free, numpy in / numpy out (classes and costs, parameters, model metadata, image codec,
  segmenter, the frame pipeline, traversability, overlay);
- ``ros``: the rclpy layer (lifecycle node, message conversion, QoS, diagnostics, process environment);
- ``tools``: command line on top (segment, bag make / play / process, bench, demo).

The training package (``ai4mars_training``) depends on ``core`` only.
"""

__version__ = "0.2.0"
