"""The release-model GPU shot (``training/gpu/shot.sh`` calls :func:`shot`) and its local half (:func:`receive`).

On the lent GPU machine: check the packed data, train with a wall-clock budget, keep the best checkpoint by
validation mIoU, and leave in the output folder what may come back (at most 8 files of at most 16 MiB): the best
weights as an fp16 state dict in parts with checksums, ``history.csv``, ``run.json`` (the fit record, the
throughput, the GPU inference benchmark) and the log. Here: reassemble and verify the parts, rebuild the learner
on the original data, and leave a run folder that ``ai4mars-train export --run`` takes like any other.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ai4mars_training.errors import TrainingError
from ai4mars_training.pack import verify
from ai4mars_training.plots import plot_history
from ai4mars_training.train import FitConfig, fit, prepare

#: What may come back from the GPU machine's output folder.
MAX_FILES, MAX_PART_BYTES, MAX_TREE_BYTES = 8, 16 * 2**20, 64 * 2**20
PART_BYTES = 15 * 2**20  # parts stay under the 16 MiB limit with room to spare
WEIGHTS = "weights.fp16.part{}"


def split_state_dict(state: dict, out: Path, part_bytes: int = PART_BYTES) -> dict:
    """Write ``state`` as fp16 (floating tensors) in parts of at most ``part_bytes``; returns their checksums."""
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    buf = io.BytesIO()
    torch.save(half, buf)
    blob = buf.getvalue()
    parts = []
    for i in range(0, len(blob), part_bytes):
        name = WEIGHTS.format(len(parts))
        (out / name).write_bytes(blob[i : i + part_bytes])
        parts.append({"file": name, "sha256": hashlib.sha256(blob[i : i + part_bytes]).hexdigest()})
    return {"parts": parts, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}


def join_state_dict(folder: Path, record: dict) -> dict:
    """Reassemble the parts in ``folder`` described by ``record``; raises when one is missing or damaged."""
    chunks = []
    for p in record["parts"]:
        path = folder / p["file"]
        if not path.is_file():
            raise TrainingError(f"weights part {path} is missing")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != p["sha256"]:
            raise TrainingError(f"weights part {path} is damaged (checksum differs)")
        chunks.append(data)
    blob = b"".join(chunks)
    if len(blob) != record["bytes"] or hashlib.sha256(blob).hexdigest() != record["sha256"]:
        raise TrainingError("the reassembled weights do not match their checksum")
    return {k: v.float() if v.is_floating_point() else v for k, v in torch.load(io.BytesIO(blob)).items()}


def untrained_unet(n_out: int = 4, size: int = 256) -> torch.nn.Module:
    """The recipe's network (``unet_learner(dls, resnet18)``'s model) with random weights: for timings, which do
    not depend on the weight values, where the trained weights cannot travel."""
    from fastai.vision.all import create_unet_model, resnet18

    return create_unet_model(resnet18, n_out, (size, size), pretrained=False)


BENCH_INPUTS = (256, 1024)


def gpu_bench(model: torch.nn.Module, repeats: int, inputs: tuple[int, ...] = BENCH_INPUTS) -> dict:
    """Inference through the core's device path: 1024² mono8 frame in, mask out, at each model input size (256² and
    1024² on the GPU; the CPU rehearsal uses small ones)."""
    from ai4mars_perception.core.device_bench import VARIANTS, bench_variant
    from ai4mars_perception.core.model_metadata import InputSpec, ModelMetadata
    from ai4mars_training.export import export_torchscript

    model = model.eval().float().cpu()
    cuda = torch.cuda.is_available()
    frame = torch.randint(0, 256, (1024, 1024), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in inputs:
            path = Path(tmp) / f"model{size}.pt"
            meta = ModelMetadata(model_version=f"shot-{size}", input=InputSpec(height=size, width=size))
            export_torchscript(model, path, size, meta)
            for variant in VARIANTS if cuda else ("fp32",):
                device, warmup = ("cuda", 10) if cuda else ("cpu", 1)
                try:  # one failing variant (a CUDA graph capture, say) must not cost the others
                    rows.append(bench_variant(path, variant, frame.numpy(), repeats, device, warmup=warmup))
                except Exception as e:
                    rows.append({"model_input": size, "variant": variant, "error": f"{type(e).__name__}: {e}"})
                print("bench", json.dumps(rows[-1]), flush=True)
    return {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__, "rows": rows}


def shot(cfg: FitConfig, out: Path, bench_repeats: int = 200, bench_inputs: tuple[int, ...] = BENCH_INPUTS) -> dict:
    """The GPU half: ``cfg.data`` is a packed folder (its manifest's split is used), ``cfg.time_budget`` the
    training minutes; the run folder is a scratch one and ``out`` receives only what comes back."""
    t0 = time.monotonic()
    pack = Path(cfg.data)
    manifest = verify(pack)
    print(f"shot: packed data verified ({manifest['frames']} frames, {manifest['megabytes']} MiB)", flush=True)
    if not cfg.time_budget:
        raise TrainingError("the GPU shot needs --time-budget MINUTES")
    out.mkdir(parents=True, exist_ok=True)
    cfg = start_weights(cfg)
    with tempfile.TemporaryDirectory(prefix="ai4mars-shot-") as scratch:  # checkpoints, learner.pkl: ~0.6 GB
        work = Path(scratch)
        # last.pth (weights + optimizer, ~0.4 GB a save) is only for --resume: a shot's run folder is discarded
        cfg = replace(cfg, out=str(work / "run"), valid_pct=manifest["valid_pct"], seed=manifest["seed"],
                      save_last=False)  # fmt: skip
        run = fit(cfg)
        record = split_state_dict(torch.load(work / "run" / "models" / "best.pth", map_location="cpu"), out)
        shutil.copy(work / "run" / "history.csv", out / "history.csv")
        run["weights"] = record
        run["pack"] = {k: v for k, v in manifest.items() if k != "files"}
        run["gpu"] = _nvidia_smi()
        (out / "run.json").write_text(json.dumps(run, indent=2))  # written before the benchmark: the weights come first
        try:
            from ai4mars_training.export import load_learner_file

            run["inference_bench"] = gpu_bench(
                load_learner_file(work / "run" / "learner.pkl").model, bench_repeats, bench_inputs
            )
        except Exception as e:  # the trained weights matter more than the benchmark: record and go on
            run["inference_bench"] = {"error": f"{type(e).__name__}: {e}"}
        run["shot_seconds"] = round(time.monotonic() - t0, 1)
        (out / "run.json").write_text(json.dumps(run, indent=2))
    check_outgoing(out)
    return run


def start_weights(cfg: FitConfig) -> FitConfig:
    """Start weights that an earlier command was to leave on the GPU machine (``--init-from``): when they are
    not there (the machine was given back in between), the shot trains from scratch rather than failing."""
    if cfg.init_from and not Path(cfg.init_from).is_file():
        print(f"shot: start weights {cfg.init_from} are not on this machine: training from scratch", flush=True)
        return replace(cfg, init_from=None)
    return cfg


def _nvidia_smi() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def check_outgoing(out: Path) -> list[Path]:
    """The output folder must come back whole: at most 8 files of at most 16 MiB, at most 2 folders down."""
    files = [p for p in out.rglob("*") if p.is_file()]
    too_big = [p.name for p in files if p.stat().st_size > MAX_PART_BYTES]
    too_deep = [str(p.relative_to(out)) for p in files if len(p.relative_to(out).parts) > 3]
    if len(files) > MAX_FILES or too_big or too_deep:
        raise TrainingError(f"{out} would not come back whole: {len(files)} files (max {MAX_FILES}), "
                            f"too big: {too_big}, too deep: {too_deep}")  # fmt: skip
    return files


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
    cfg = FitConfig(**{**{k: v for k, v in run["config"].items() if k in fields}, "data": str(data),
                       "out": str(out), "num_workers": 0, "resume": False, "init_from": None})  # fmt: skip
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


#: Per-file cost of the transfer beyond the bytes (a tar header; measured: 12 001 small files of 57 MiB were refused
#: as over 64 MiB, the same bytes as one archive went through).
FILE_OVERHEAD = 512


def tree_bytes(root: Path, carry: list[str]) -> int:
    """What a device call would send: tracked and untracked-not-ignored files, plus the carried paths, each file
    counted as a tar entry (header + contents padded to 512 bytes)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    files = {root / f for f in listed if f and (root / f).is_file()}
    for c in carry:
        p = root / c
        files |= set(p.rglob("*")) if p.is_dir() else {p}
    return sum(FILE_OVERHEAD + -(-f.stat().st_size // 512) * 512 for f in files if f.is_file())
