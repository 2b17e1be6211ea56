"""Load a pickled fastai learner (e.g. the AI4Mars reference notebook's ``learn.export()``) on the CPU, and read
its model contract (class count, input size) into :class:`ModelMetadata`: written once, for the PyTorch backend,
export and evaluate.

Unpickling runs code from the file: callers ask for an explicit opt-in first. A notebook's pickle refers to
functions defined in its ``__main__`` (such as ``get_label``); they are provided as placeholders while loading
(inference never calls them) and removed afterwards. Needs fastai; imported only here.
"""

from __future__ import annotations

import json
import pickle
import re
import sys
from pathlib import Path

from ai4mars_perception.core.model.metadata import InputSpec, ModelLoadError, ModelMetadata

_MISSING_ATTR = re.compile(r"Can't get attribute '([A-Za-z_][A-Za-z0-9_]*)' on <module '__main__'")


def _placeholder(name: str):
    def label_function(*_args, **_kwargs):
        raise RuntimeError(f"{name} was defined in the notebook that trained this learner; it is not needed here")

    label_function.__name__ = label_function.__qualname__ = name
    return label_function


def load_learner_file(path: Path):
    """``fastai.learner.load_learner(path, cpu=True)`` with notebook functions stood in; raises
    :class:`~ai4mars_perception.core.model.metadata.ModelLoadError` with one sentence on failure."""
    try:
        from fastai.learner import load_learner
    except ImportError:
        raise ModelLoadError("a fastai learner .pkl needs fastai installed (pip install fastai)") from None
    if not path.is_file():
        raise ModelLoadError(f"learner file {path} does not exist")
    main = sys.modules["__main__"]
    added: list[str] = []
    try:
        for _ in range(20):
            try:
                return load_learner(path, cpu=True)
            except AttributeError as e:
                m = _MISSING_ATTR.search(str(e))
                if not m or hasattr(main, m.group(1)):
                    raise ModelLoadError(f"{path} could not be loaded: {e}") from None
                setattr(main, m.group(1), _placeholder(m.group(1)))
                added.append(m.group(1))
            except (EOFError, ValueError, RuntimeError, ModuleNotFoundError, pickle.UnpicklingError) as e:
                raise ModelLoadError(f"{path} is not a loadable fastai learner: {e}") from None
        raise ModelLoadError(f"{path} needs too many notebook functions: {added}")
    finally:
        for name in added:
            delattr(main, name)


def learner_outputs(learn) -> int:
    """The network's output channels: 4 classes, or 5 with the reference notebook's null class."""
    import torch

    with torch.no_grad():
        n_out = int(learn.model.eval()(torch.zeros(1, 3, 64, 64)).shape[1])
    if n_out not in (4, 5):
        raise ModelLoadError(f"the learner predicts {n_out} classes; AI4Mars models predict 4 (or 5 with a null class)")
    return n_out


def learner_input_size(learn, path: Path) -> int:
    """The size a learner was trained at: the run.json beside it (written by fit), its fastai Resize, or 256."""
    run = path.parent / "run.json"
    if run.is_file():
        return int(json.loads(run.read_text())["config"]["size"])
    for tfm in getattr(learn.dls.after_item, "fs", []):
        if type(tfm).__name__ == "Resize":
            return int(tfm.size[0])
    return 256


def learner_metadata(learn, path: Path, model_version: str | None = None) -> ModelMetadata:
    """The metadata of a fastai segmentation learner loaded from ``path`` (ImageNet statistics, as fastai uses)."""
    size = learner_input_size(learn, path)
    return ModelMetadata(model_version=model_version or f"fastai-learner:{path.name}",
                         null_class=4 if learner_outputs(learn) == 5 else None,
                         input=InputSpec(height=size, width=size))  # fmt: skip
