"""The local half of the GPU shot: reassemble and verify the weight parts, rebuild the learner on the original data,
and leave a run folder that ``ai4mars-train export --run`` takes like any other."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from ai4mars_training.errors import TrainingError
from ai4mars_training.fit.train import FitConfig, prepare
from ai4mars_training.plots import plot_history
from ai4mars_training.remote.transfer import join_state_dict


def receive(shot_dir: Path, data: Path, out: Path) -> dict:
    """The local half: verify and reassemble the weights, rebuild the learner on ``data`` (the original frames),
    and write ``out``/learner.pkl, run.json, history.csv/.png (and the shot's train.log) for ``export --run``."""
    path = shot_dir / "run.json"
    if not path.is_file():
        raise TrainingError(f"{shot_dir} holds no run.json from a GPU shot")
    run = json.loads(path.read_text())
    state = join_state_dict(shot_dir, run["weights"])
    fields = set(FitConfig.__dataclass_fields__)
    # the shot's weights replace any start weights (init_from)
    cfg = FitConfig(
        **{
            **{k: v for k, v in run["config"].items() if k in fields},
            "data": str(data),
            "out": str(out),
            "num_workers": 0,
            "resume": False,
            "init_from": None,
            "loader": "fastai",
        }
    )  # fmt: skip  (no training here: the frames need not be decoded)
    learn, info = prepare(cfg)
    if info["valid_ids_sha1"] != run["data"]["valid_ids_sha1"]:
        raise TrainingError(f"{data} splits into other validation frames than the GPU run's packed data")
    learn.model.load_state_dict(state)
    learn.export("learner.pkl")
    for name in ("history.csv", "train.log"):
        if (shot_dir / name).is_file():
            shutil.copy(shot_dir / name, out / name)
    if (out / "history.csv").is_file():
        plot_history(out / "history.csv", out / "history.png", f"GPU run on {run.get('device')}")
    run["received"] = {"from": str(shot_dir), "data": str(data), "config": asdict(cfg)}
    (out / "run.json").write_text(json.dumps(run, indent=2))
    return run
