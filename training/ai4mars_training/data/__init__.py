"""Training data: the AI4Mars folder layout (scan, split, labels) and the packed form carried to a GPU."""
