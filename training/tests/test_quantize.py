"""int8 static quantization: calibrated on training frames, metadata kept, speed and mIoU compared."""

from __future__ import annotations

import json
from pathlib import Path

from ai4mars_training.cli import main
from tiny_model import brightness_model

from ai4mars_perception.core.segmenter import Segmenter


def test_quantize_keeps_the_contract_and_reports(synthetic_set, tmp_path):
    fp32 = brightness_model(tmp_path / "m.onnx", size=64)
    out = tmp_path / "m_int8.onnx"
    args = ["quantize", "--model", str(fp32), "--out", str(out), "--data", str(synthetic_set), "--valid-pct", "0.25",
            "--calibration-frames", "8"]  # fmt: skip
    assert main(args) == 0
    seg = Segmenter(out, "cpu")
    assert seg.metadata.model_version == "test-brightness-1-int8"
    recipe = seg.metadata.training["quantization"]
    assert recipe["format"] == "qdq" and recipe["activations"] == "u8" and recipe["calibration_frames"] == 8
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["speedup"] > 0 and abs(report["miou_difference"]) < 0.05
    assert report["validation_images"] == 6 and set(report["int8"]["iou"]) == {"soil", "bedrock", "sand", "big_rock"}
    assert main([*args, "--calibration-frames", "500"]) == 2  # more than the training split holds


def test_compare_times_recipes_round_robin_and_chooses(synthetic_set, tmp_path, capsys):
    fp32 = brightness_model(tmp_path / "m.onnx", size=64)
    out = tmp_path / "cmp"
    names = "qdq u8s8 per-channel minmax,qdq s8s8 per-channel minmax"
    args = ["quantize", "--compare", "--model", str(fp32), "--out", str(out), "--data", str(synthetic_set),
            "--valid-pct", "0.25", "--calibration-frames", "4", "--recipes", names]  # fmt: skip
    assert main(args) == 0
    result = json.loads((out / "comparison.json").read_text())
    assert [r["recipe"] for r in result["recipes"]] == ["fp32", *names.split(",")]
    assert all(r["forward_ms"] > 0 and Path(r["file"]).is_file() for r in result["recipes"])
    assert result["best"] in names.split(",")  # the brightness model quantizes within 0.01 mIoU
    assert set(result["session_settings"]) == {"fp32", "int8"} and len(result["session_settings"]["int8"]) == 5
    assert "| qdq s8s8 per-channel minmax |" in capsys.readouterr().out
    assert main([*args[:-1], "no such recipe"]) == 2
