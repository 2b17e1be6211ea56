"""What several training tests share: the smoke-fit options, the reference notebook's script, the demo frames."""

from __future__ import annotations

import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "navcam"
# one epoch at 64², no encoder weights: a smoke model in seconds (later options override these, e.g. --epochs)
FIT = ["--size", "64", "--epochs", "1", "--no-pretrained", "--bs", "4", "--valid-pct", "0.25"]

NOTEBOOK = textwrap.dedent(
    """
    # What the reference notebook does: label function in __main__, unet_learner, learn.export().
    import sys
    from pathlib import Path
    from fastai.vision.all import *

    root = Path(sys.argv[1])
    def get_label(x):
        return root / "msl" / "labels" / "train" / f"{x.stem}.png"

    codes = ["soil", "bedrock", "sand", "big_rock"] + (["null"] if sys.argv[3] == "5" else [])
    files = get_image_files(root / "msl" / "images" / "edr")
    dls = SegmentationDataLoaders.from_label_func(root, files, get_label, codes=codes, bs=4, item_tfms=Resize(64))
    learn = unet_learner(dls, resnet18, pretrained=False, n_out=len(codes))
    learn.export(Path(sys.argv[2]))
    """
)
