"""evaluate: metrics of a model on labelled frames, through the node's inference core."""
