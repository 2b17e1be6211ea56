"""The same configuration on every tool's command line as on the node's: ``--params-file`` (the node's YAML) and
``-p NAME:=VALUE`` overrides (as ``ros2 run ... --ros-args -p``), plus short flags for the common ones. Flags win
over ``-p``, which wins over the file, which wins over the table's defaults."""

from __future__ import annotations

import argparse
from typing import Any

from ai4mars_perception.core.params import NODE_NAME, PARAMETERS, ParamsError, defaults, load_params_file, parse_value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["sectors:=5", "camera_pitch:=30"]`` → typed values; raises :class:`ParamsError` with one sentence."""
    values = {}
    for item in items:
        name, sep, text = item.partition(":=")
        if not sep:
            raise ParamsError(f"-p takes NAME:=VALUE (as ros2 run's -p), got {item!r}")
        if name not in PARAMETERS:
            raise ParamsError(f"unknown parameter {name!r} in -p {item}")
        values[name] = parse_value(name, text)
    return values


def add_config_args(p: argparse.ArgumentParser, overlay: bool = True) -> None:
    """``--params-file``, ``-p NAME:=VALUE`` and the short flags every pipeline tool takes."""
    p.add_argument("--params-file", help="the node's params YAML (same keys; -p and the flags below win over it)")
    p.add_argument("-p", "--param", action="append", metavar="NAME:=VALUE",
                   help="set any node parameter, as ros2 run's -p (repeatable)")  # fmt: skip
    p.add_argument("--model", help="ONNX model (default: model_path of the params file, else the shipped model)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the params file's, else auto")
    p.add_argument("--backend", choices=("auto", "onnxruntime", "torch"), help="default: the params file's, else auto")
    p.add_argument("--allow-pickle", action="store_const", const=True, default=None,
                   help="allow a fastai learner .pkl as --model (unpickling runs code from the file)")  # fmt: skip
    p.add_argument("--rover-mask", help="rover mask image (non-zero = rover), reported as unknown")
    if overlay:
        p.add_argument("--alpha", type=float, help="overlay opacity (default: overlay_alpha of the params file, 0.5)")


def values_from_args(args: argparse.Namespace, node_name: str = NODE_NAME) -> dict[str, Any]:
    """Every parameter's value as the node would have it with the same params file and overrides."""
    values = load_params_file(args.params_file, node_name) if args.params_file else defaults()
    values.update(parse_overrides(getattr(args, "param", None) or []))
    flags = {"model_path": args.model, "device": args.device, "backend": getattr(args, "backend", None),
             "allow_pickle": getattr(args, "allow_pickle", None), "rover_mask_path": getattr(args, "rover_mask", None),
             "overlay_alpha": getattr(args, "alpha", None)}  # fmt: skip
    values.update({k: v for k, v in flags.items() if v is not None})
    return values


def pipeline_from_args(args: argparse.Namespace, node_name: str = NODE_NAME):
    """The frame pipeline the node would build from the same params file and overrides."""
    from ai4mars_perception.core.pipeline import Pipeline, PipelineConfig

    return Pipeline(PipelineConfig.from_values(values_from_args(args, node_name)))
