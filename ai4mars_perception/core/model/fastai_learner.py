"""Load a pickled fastai learner (e.g. the AI4Mars reference notebook's ``learn.export()``) on the CPU.

Unpickling runs code from the file: callers ask for an explicit opt-in first. A notebook's pickle refers to
functions defined in its ``__main__`` (such as ``get_label``); they are provided as placeholders while loading
(inference never calls them) and removed afterwards. Needs fastai; imported only here.
"""

from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path

from ai4mars_perception.core.model.metadata import ModelLoadError

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
