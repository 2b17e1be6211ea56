"""Metric maths against hand-computed confusion matrices."""

import numpy as np
import pytest
from ai4mars_training.evaluate.metrics import confusion, iou_per_class, summarize

NAMES = ["soil", "bedrock", "sand", "big_rock"]


def test_confusion_ignores_255_and_counts_unknown_predictions():
    target = np.array([0, 0, 1, 1, 2, 255, 255, 3])
    pred = np.array([0, 1, 1, 1, 255, 0, 3, 3])
    cm = confusion(target, pred)
    want = np.zeros((4, 5), int)
    want[0, 0] = 1
    want[0, 1] = 1
    want[1, 1] = 2
    want[2, 4] = 1  # sand predicted unknown: a miss
    want[3, 3] = 1
    assert np.array_equal(cm, want)


def test_iou_by_hand():
    cm = np.array([[8, 2, 0, 0, 0], [1, 4, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 3, 1]])
    ious = iou_per_class(cm)
    assert ious[0] == pytest.approx(8 / (8 + 2 + 1))
    assert ious[1] == pytest.approx(4 / (4 + 1 + 2))
    assert np.isnan(ious[2])  # absent from target and prediction: left out of the mean
    assert ious[3] == pytest.approx(3 / 4)
    s = summarize(cm, NAMES)
    assert s["miou"] == pytest.approx(np.mean([8 / 11, 4 / 7, 3 / 4]))
    assert s["pixel_accuracy"] == pytest.approx(15 / 19)
    assert s["iou"]["sand"] is None


def test_class_predicted_but_absent_has_zero_iou():
    cm = confusion(np.array([0, 0, 0]), np.array([0, 2, 2]))
    ious = iou_per_class(cm)
    assert ious[2] == 0.0 and ious[0] == pytest.approx(1 / 3)


def test_everything_ignored():
    s = summarize(confusion(np.full(5, 255), np.zeros(5)), NAMES)
    assert np.isnan(s["miou"]) and s["pixels"] == 0


def test_fastai_metric_matches_summary():
    from types import SimpleNamespace

    import torch
    from ai4mars_training.fit.learner import ConfusionMetric

    target = torch.tensor([[[0, 0, 1, 3], [255, 2, 2, 3]]])
    pred_ids = torch.tensor([[[0, 1, 1, 3], [0, 2, 0, 3]]])
    logits = torch.nn.functional.one_hot(pred_ids, 4).permute(0, 3, 1, 2).float()
    batch = SimpleNamespace(pred=logits, y=target)  # the two fields fastai hands a metric
    want = summarize(confusion(target.numpy(), pred_ids.numpy()), NAMES)
    got = {}
    for name in ("miou", "pixel_acc", "iou_big_rock"):
        m = ConfusionMetric(name)
        m.reset()
        m.accumulate(batch)
        got[name] = m.value
    assert got["miou"] == pytest.approx(want["miou"]) and got["pixel_acc"] == pytest.approx(
        5 / 7
    )  # 7 labelled pixels, 5 right
    assert got["iou_big_rock"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ConfusionMetric("f1")
