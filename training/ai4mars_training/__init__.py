"""Training package for the AI4Mars terrain U-Net: fit, evaluate and export with fastai."""

__version__ = "0.1.0"
