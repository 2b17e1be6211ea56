"""Finding pairs, deterministic splits, and bad data: clear errors or counted skips."""

import cv2
import numpy as np
import pytest
from ai4mars_training.cli import main
from ai4mars_training.data.dataset import is_valid, read_label, scan, split
from ai4mars_training.errors import TrainingError
from conftest import make_layout


def _write(edr, lab, name, image_shape=(32, 32), label=None, suffix=".JPG", label_name=None):
    cv2.imwrite(str(edr / f"{name}{suffix}"), np.zeros(image_shape, np.uint8))
    if label is not None:
        cv2.imwrite(str(lab / (label_name or f"{name}.png")), label)


def test_scan_counts_and_skips(tmp_path):
    edr, lab = make_layout(tmp_path)
    ok = np.zeros((32, 32), np.uint8)
    _write(edr, lab, "a", label=ok)
    _write(edr, lab, "b", label=ok, suffix=".jpg")
    _write(edr, lab, "c")  # no label
    _write(edr, lab, "d", label=np.zeros((16, 16), np.uint8))  # size mismatch
    _write(edr, lab, "e", label=np.full((32, 32), 7, np.uint8))  # unknown label value
    s = scan(tmp_path)
    assert sorted(x.id for x in s.samples) == ["a", "b"]
    assert s.unlabelled == 1 and s.skipped["size mismatch"] == 1 and s.skipped["unknown label values"] == 1
    assert "2 labelled pairs, 1 images without a label" in s.summary()


def test_gold_labels_with_merged_suffix(tmp_path):
    edr, _ = make_layout(tmp_path)
    gold = tmp_path / "msl" / "labels" / "test" / "masked-gold-min3-100agree"
    gold.mkdir(parents=True)
    _write(edr, gold, "g1", label=np.ones((32, 32), np.uint8), label_name="g1_merged.png")
    s = scan(tmp_path, "gold")
    assert [x.id for x in s.samples] == ["g1"]


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(TrainingError, match="not an AI4Mars folder"):
        scan(tmp_path)
    make_layout(tmp_path)
    with pytest.raises(TrainingError, match="no images"):
        scan(tmp_path)


def test_only_bad_pairs_is_a_clear_error(tmp_path):
    edr, lab = make_layout(tmp_path)
    _write(edr, lab, "d", label=np.zeros((16, 16), np.uint8))
    with pytest.raises(TrainingError, match="no usable labelled images"):
        scan(tmp_path)


def test_split_is_deterministic_and_stable():
    ids = [f"id{i}" for i in range(1000)]
    a = [i for i in ids if is_valid(i, 0.1, 42)]
    assert 60 < len(a) < 140
    assert a == [i for i in ids[::-1] if is_valid(i, 0.1, 42)][::-1]
    assert a != [i for i in ids if is_valid(i, 0.1, 7)]


def test_split_rejects_bad_fraction():
    with pytest.raises(TrainingError, match="valid-pct"):
        split([], 1.5, 0)


def test_null_class_and_rover_ignore(tmp_path):
    edr, lab = make_layout(tmp_path)
    label = np.zeros((32, 32), np.uint8)
    label[:4] = 255
    _write(edr, lab, "NLA_1EDR_X", label=label)
    mxy = tmp_path / "msl" / "images" / "mxy"
    mxy.mkdir()
    rover = np.zeros((32, 32), np.uint8)
    rover[-4:] = 1
    cv2.imwrite(str(mxy / "NLA_1MXY_X.png"), rover)
    s = scan(tmp_path).samples[0]
    assert s.rover is not None
    assert (read_label(s, null_class=True)[:4] == 4).all()
    lab2 = read_label(s, ignore_rover=True)
    assert (lab2[-4:] == 255).all() and (lab2[4:-4] == 0).all()


def test_cli_bad_data_exits_with_a_sentence(tmp_path, capsys):
    assert main(["fit", "--data", str(tmp_path / "nope"), "--no-pretrained", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ai4mars-train: ") and "Traceback" not in err
