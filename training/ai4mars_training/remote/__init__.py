"""remote: the release-model shot on a lent GPU (training/gpu/*.sh run it) and its local half."""
