"""What travels to and from the lent GPU machine: the limits of a device call, the weights in checksummed fp16
parts (at most 8 files of at most 16 MiB come back), and the size of what a call would send."""

from __future__ import annotations

import hashlib
import io
import subprocess
from pathlib import Path

import torch

from ai4mars_training.errors import TrainingError

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


def check_outgoing(out: Path) -> list[Path]:
    """The output folder must come back whole: at most 8 files of at most 16 MiB, at most 2 folders down."""
    files = [p for p in out.rglob("*") if p.is_file()]
    too_big = [p.name for p in files if p.stat().st_size > MAX_PART_BYTES]
    too_deep = [str(p.relative_to(out)) for p in files if len(p.relative_to(out).parts) > 3]
    if len(files) > MAX_FILES or too_big or too_deep:
        raise TrainingError(f"{out} would not come back whole: {len(files)} files (max {MAX_FILES}), "
                            f"too big: {too_big}, too deep: {too_deep}")  # fmt: skip
    return files


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
