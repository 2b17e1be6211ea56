"""The model room: what a model file is (metadata contract), where the shipped ones are, and the backends that run
it (ONNX Runtime; PyTorch from the same ONNX file, a TorchScript export or, on request, a fastai learner)."""
