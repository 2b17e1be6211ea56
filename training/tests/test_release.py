"""Pieces of the GPU shot: packed data and its checks, weights in parts, the outgoing-folder limits, Dice loss."""

from __future__ import annotations

import subprocess
import tarfile

import pytest
import torch
from ai4mars_training.cli import main
from ai4mars_training.data.dataset import scan, split
from ai4mars_training.data.pack import verify
from ai4mars_training.errors import TrainingError
from ai4mars_training.fit.learner import SegLoss, soft_dice
from ai4mars_training.remote.transfer import check_outgoing, join_state_dict, split_state_dict, tree_bytes


def test_pack_keeps_the_split_and_detects_damage(real_subset, tmp_path):
    out = tmp_path / "pack"
    assert main(["pack", "--data", str(real_subset), "--out", str(out), "--quality", "75", "--valid-pct", "0.25"]) == 0
    manifest = verify(out)
    _, valid = split(scan(real_subset).samples, 0.25, 42)
    assert {f["id"] for f in manifest["files"] if f["split"] == "valid"} == {s.id for s in valid}
    assert manifest["frames"] == 16 and 0 < manifest["mean_abs_error_gray_levels"] < 6
    jpg = next((out / "msl" / "images" / "edr").glob("*.jpg"))
    assert jpg.read_bytes()[:2] == b"\xff\xd8"
    jpg.write_bytes(jpg.read_bytes()[:-10])
    with pytest.raises(TrainingError, match="damaged"):
        verify(out)
    assert main(["pack", "--data", str(real_subset), "--out", str(out)]) == 2  # exists: refused, nothing overwritten


def test_the_pack_travels_as_one_archive_and_is_counted_per_file(real_subset, tmp_path):
    """A device call refused 12 001 small files of 57 MiB as over 64 MiB: carry-size counts each file as a tar
    entry, and the archive (one file) unpacks to the same verified pack."""
    out = tmp_path / "pack"
    assert main(["pack", "--data", str(real_subset), "--out", str(out), "--valid-pct", "0.25", "--archive"]) == 0
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("*\n")  # only what is carried counts
    files = [p for p in out.rglob("*") if p.is_file()]
    raw = sum(p.stat().st_size for p in files)
    assert tree_bytes(tmp_path, ["pack"]) >= raw + 512 * len(files)
    tgz = tmp_path / "pack.tgz"
    assert tree_bytes(tmp_path, ["pack.tgz"]) < tree_bytes(tmp_path, ["pack"])
    with tarfile.open(tgz) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    assert verify(tmp_path / "unpacked" / "pack")["frames"] == 16


def test_weights_split_into_parts_and_back(tmp_path):
    state = {"w": torch.randn(600, 1000), "n": torch.tensor(7)}
    record = split_state_dict(state, tmp_path, part_bytes=500_000)
    assert len(record["parts"]) == 3 and all((tmp_path / p["file"]).stat().st_size <= 500_000 for p in record["parts"])
    back = join_state_dict(tmp_path, record)
    assert back["w"].dtype == torch.float32 and torch.allclose(back["w"], state["w"], atol=2e-3, rtol=1e-3)
    assert back["n"].item() == 7
    part = tmp_path / record["parts"][1]["file"]
    part.write_bytes(b"x" + part.read_bytes()[1:])
    with pytest.raises(TrainingError, match="damaged"):
        join_state_dict(tmp_path, record)
    part.unlink()
    with pytest.raises(TrainingError, match="missing"):
        join_state_dict(tmp_path, record)


def test_outgoing_folder_limits(tmp_path):
    for i in range(8):
        (tmp_path / f"f{i}").write_bytes(b"1")
    assert len(check_outgoing(tmp_path)) == 8
    (tmp_path / "f8").write_bytes(b"1")
    with pytest.raises(TrainingError, match="9 files"):
        check_outgoing(tmp_path)


def test_dice_loss_prefers_the_right_answer_and_ignores_unlabelled():
    target = torch.tensor([[[0, 3], [3, 255]]])
    right = torch.full((1, 4, 2, 2), -5.0)
    for (y, x), c in {(0, 0): 0, (0, 1): 3, (1, 0): 3, (1, 1): 1}.items():
        right[0, c, y, x] = 5.0
    wrong = right.roll(1, dims=1)
    assert soft_dice(right, target) < 0.05 < 0.5 < soft_dice(wrong, target)
    unlabelled = right.clone()
    unlabelled[0, :, 1, 1] = torch.tensor([9.0, -9, -9, -9])  # the 255 pixel changes nothing
    assert torch.isclose(soft_dice(unlabelled, target), soft_dice(right, target))
    loss = SegLoss(dice=True)
    assert loss(wrong, target) > loss(right, target) > soft_dice(right, target)  # CE + Dice, both counted
