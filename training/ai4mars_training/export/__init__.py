"""export: learner → ONNX/TorchScript with the node's metadata, and int8 quantization."""
