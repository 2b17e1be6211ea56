"""fit: the fastai learner (U-Net ResNet-18), its callbacks, optimizers, profiling and start weights."""
