"""ROS-free core: image decoding, pre/post-processing, overlays, traversability maths, model metadata."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from tiny_model import CENTRES, brightness_model, expected_class, gradient_model

from ai4mars_perception.core.classes import IGNORE_INDEX, TERRAIN_CLASSES, color_lut
from ai4mars_perception.core.image_codec import (
    ImageDecodeError,
    decode_compressed,
    decode_raw,
    read_image_file,
    to_gray8,
)
from ai4mars_perception.core.model.metadata import MetadataError, ModelMetadata
from ai4mars_perception.core.overlay import overlay
from ai4mars_perception.core.segmenter import ModelLoadError, Segmenter, select_providers
from ai4mars_perception.core.traversability import (
    TABLE_DTYPE,
    TraversabilityConfig,
    Verdict,
    summarize,
    summarize_region,
    summary_to_array,
)

RNG = np.random.default_rng(7)
GRAY = RNG.integers(0, 256, (5, 7), np.uint8)
RGB = RNG.integers(0, 256, (5, 7, 3), np.uint8)


def pad_rows(rows: np.ndarray, extra: int) -> tuple[bytes, int]:
    """Bytes of a (H, row_bytes) uint8 array with ``extra`` junk bytes after each row."""
    h = rows.shape[0]
    padded = np.concatenate([rows.reshape(h, -1), np.full((h, extra), 0xAB, np.uint8)], axis=1)
    return padded.tobytes(), padded.shape[1]


@pytest.mark.parametrize("extra", [0, 3])
def test_mono8_with_step_padding(extra):
    data, step = pad_rows(GRAY, extra)
    out = decode_raw(5, 7, "mono8", step, 0, data)
    assert np.array_equal(out, GRAY)


@pytest.mark.parametrize("bigendian", [0, 1])
@pytest.mark.parametrize("extra", [0, 2])
def test_mono16_endianness_and_padding(bigendian, extra):
    values = RNG.integers(0, 65536, (5, 7)).astype(">u2" if bigendian else "<u2")
    data, step = pad_rows(values.view(np.uint8).reshape(5, 14), extra)
    out = decode_raw(5, 7, "mono16", step, bigendian, data)
    assert np.array_equal(out.astype(np.uint32), values.astype(np.uint32))
    assert np.array_equal(to_gray8(out), (values >> 8).astype(np.uint8))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_to_gray(encoding):
    rgb = RGB
    arr = {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "rgba8": np.dstack([rgb, np.full((5, 7), 9, np.uint8)]),
        "bgra8": np.dstack([rgb[..., ::-1], np.full((5, 7), 9, np.uint8)]),
    }[encoding]
    data, step = pad_rows(np.ascontiguousarray(arr).reshape(5, -1), 5)
    out = to_gray8(decode_raw(5, 7, encoding, step, 0, data), encoding)
    want = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert np.array_equal(out, want)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(encoding="yuv422"), "unsupported encoding"),
        (dict(height=0), "empty frame"),
        (dict(width=0), "empty frame"),
        (dict(step=6), "step 6 is smaller"),
        (dict(data=b"\0" * 34), "fewer than step x height"),
        (dict(max_pixels=34), "exceeds the limit"),
    ],
)
def test_bad_raw_frames(kwargs, message):
    args = dict(height=5, width=7, encoding="mono8", step=7, is_bigendian=0, data=GRAY.tobytes())
    args.update(kwargs)
    with pytest.raises(ImageDecodeError, match=message):
        decode_raw(**args)


def test_compressed_roundtrip_and_corrupt():
    ok, png = cv2.imencode(".png", GRAY)
    assert np.array_equal(decode_compressed(png.tobytes()), GRAY)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    assert decode_compressed(jpg.tobytes()).shape == (5, 7, 3)
    with pytest.raises(ImageDecodeError, match="not a readable JPEG or PNG"):
        decode_compressed(jpg.tobytes()[:20] + b"garbage" * 10)
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_compressed(b"")


def test_read_image_file_errors(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageDecodeError, match="not a readable image"):
        read_image_file(bad)


def test_segmenter_matches_closed_form(tiny_model, navcam_frames):
    seg = Segmenter(tiny_model, "cpu")
    assert seg.provider == "CPUExecutionProvider"
    frame = read_image_file(navcam_frames[0])
    mask = seg.segment(frame)
    assert mask.shape == frame.shape and mask.dtype == np.uint8
    small = cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)
    up = lambda a: cv2.resize(a, (1024, 1024), interpolation=cv2.INTER_NEAREST)  # noqa: E731
    # gray levels exactly between two class centres are ties: either class is right
    decided = up((~np.isin(small, [64, 128, 192])).astype(np.uint8)) > 0
    assert decided.mean() > 0.9
    assert np.array_equal(mask[decided], up(expected_class(small))[decided])


def test_preprocess_matches_training_normalisation(tiny_model):
    seg = Segmenter(tiny_model, "cpu")
    frame = np.full((128, 96), 200, np.uint8)
    x = seg.preprocess(frame)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    want = (200 / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.allclose(x[0, :, 0, 0], want, atol=1e-5)


def test_rover_mask_and_null_class(null_model):
    seg = Segmenter(null_model, "cpu")
    frame = np.full((100, 80), 250, np.uint8)  # nearest to the null centre (255)
    frame[:50] = CENTRES[1]
    mask = seg.segment(frame)
    assert set(np.unique(mask[:45])) == {1} and set(np.unique(mask[55:])) == {IGNORE_INDEX}
    rover = np.zeros((10, 10), np.uint8)
    rover[:, :5] = 1
    seg.set_rover_mask(rover)
    mask = seg.segment(frame)
    assert (mask[:, :40] == IGNORE_INDEX).all() and (mask[:45, 40:] == 1).all()


def test_model_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        Segmenter(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx")
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        Segmenter(junk)
    with pytest.raises(ModelLoadError, match="CUDA"):
        select_providers("cuda", ["CPUExecutionProvider"])
    assert select_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"


def test_model_without_metadata(tmp_path, tiny_model):
    import onnx

    m = onnx.load(str(tiny_model))
    del m.metadata_props[:]
    path = tmp_path / "nometa.onnx"
    onnx.save(m, str(path))
    with pytest.raises(ModelLoadError, match="no 'ai4mars_perception' metadata"):
        Segmenter(path)


def test_metadata_roundtrip_and_validation():
    meta = ModelMetadata(model_version="v1", metrics={"miou": 0.5})
    back = ModelMetadata.from_json(meta.to_json())
    assert back == meta and back.num_outputs == 4 and back.class_names[3] == "big_rock"
    assert back.class_colors[0] == TERRAIN_CLASSES[0].color
    with pytest.raises(MetadataError, match="schema"):
        ModelMetadata.from_json('{"schema": 99}')
    with pytest.raises(MetadataError, match="not valid JSON"):
        ModelMetadata.from_json("{")
    bad = ModelMetadata(model_version="v1", null_class=7)
    with pytest.raises(MetadataError, match="null_class"):
        ModelMetadata.from_json(bad.to_json())


def test_overlay_blends_and_keeps_unknown():
    gray = np.full((4, 4), 100, np.uint8)
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = IGNORE_INDEX
    mask[1] = 3
    out = overlay(gray, mask, alpha=0.5)
    assert out.shape == (4, 4, 3)
    assert tuple(out[0, 0]) == (100, 100, 100)
    assert np.allclose(out[1, 0], (np.array(TERRAIN_CLASSES[3].color) + 100) / 2, atol=1)
    assert tuple(color_lut()[2]) == TERRAIN_CLASSES[2].color
    with pytest.raises(ValueError, match="differ in size"):
        overlay(gray, mask[:2])


def test_traversability_fractions_and_verdicts():
    cfg = TraversabilityConfig()
    mask = np.zeros((10, 10), np.uint8)  # all soil
    r = summarize_region("all", mask, cfg)
    assert r.class_fractions["soil"] == 1.0 and r.traversable_fraction == 1.0 and r.verdict == Verdict.GO
    assert r.mean_cost == pytest.approx(TERRAIN_CLASSES[0].cost)
    mask[:3] = 2  # 30 % sand -> traversable 0.7 -> caution
    r = summarize_region("x", mask, cfg)
    assert r.traversable_fraction == pytest.approx(0.7) and r.verdict == Verdict.CAUTION
    mask[:6] = 2  # 60 % sand -> traversable 0.4 -> stop
    assert summarize_region("x", mask, cfg).verdict == Verdict.STOP
    mask[:] = 0
    mask[0, :2] = 3  # 2 % big rock of known -> go; 11 % -> stop
    assert summarize_region("x", mask, cfg).verdict == Verdict.GO
    mask[:2, :6] = 3
    assert summarize_region("x", mask, cfg).verdict == Verdict.STOP
    # unknown pixels do not count against traversability, but too few known pixels -> caution / stop
    mask[:] = IGNORE_INDEX
    mask[9, :] = 0
    r = summarize_region("x", mask, cfg)
    assert r.unknown_fraction == pytest.approx(0.9) and r.traversable_fraction == 1.0 and r.verdict == Verdict.CAUTION
    mask[:] = IGNORE_INDEX
    r = summarize_region("x", mask, cfg)
    assert r.verdict == Verdict.STOP and np.isnan(r.mean_cost)


def test_sectors_split_near_field_left_to_right():
    mask = np.zeros((10, 9), np.uint8)
    mask[5:, 6:] = 3  # big rock in the near-right sector only
    mask[:5, :] = 2  # far field sand does not enter the sectors
    s = summarize(mask)
    assert [r.name for r in s.sectors] == ["left", "centre", "right"]
    assert [r.verdict for r in s.sectors] == [Verdict.GO, Verdict.GO, Verdict.STOP]
    assert s.frame.class_fractions["sand"] == pytest.approx(0.5)
    rows = summary_to_array(s)
    assert rows.dtype == TABLE_DTYPE and list(rows["region"]) == [0, 1, 2, 3]
    assert rows["big_rock"][3] == pytest.approx(1.0) and rows["verdict"][3] == Verdict.STOP


def test_config_validation():
    with pytest.raises(ValueError, match="must not exceed"):
        TraversabilityConfig(go_min_traversable=0.4, stop_below_traversable=0.6).validate()
    with pytest.raises(ValueError, match=r"must lie in \[0.0, 1.0\]"):
        TraversabilityConfig(stop_above_big_rock=1.5).validate()


def test_brightness_model_is_deterministic(tmp_path):
    p = brightness_model(tmp_path / "m.onnx", size=32)
    seg = Segmenter(p, "cpu")
    levels = np.full((32, 32), 255, np.uint8)
    levels[:, :7] = [0, 60, 70, 130, 150, 200, 255]
    assert seg.input_size == (32, 32)
    assert list(seg.segment(levels)[0, :7]) == [0, 0, 1, 2, 2, 3, 3]


def test_flip_tta_averages_flipped_prediction(tmp_path, navcam_frames):
    """TTA = the mean of the prediction on the frame and, mirrored back, on its mirror image. A per-pixel model is
    mirror-equivariant (TTA changes nothing); a horizontal-gradient model is not (TTA cancels its gradient), so
    this fails when TTA is off or averages the wrong way round."""
    frame = read_image_file(navcam_frames[3])
    p = brightness_model(tmp_path / "m.onnx", size=64)
    plain, tta = Segmenter(p, "cpu"), Segmenter(p, "cpu", flip_tta=True)
    x = plain.preprocess(frame)
    assert np.allclose(tta.logits(x), plain.logits(x), atol=1e-4)
    assert np.array_equal(tta.segment(frame), plain.segment(frame))
    g = gradient_model(tmp_path / "g.onnx", size=64)
    plain, tta = Segmenter(g, "cpu"), Segmenter(g, "cpu", flip_tta=True)
    x = plain.preprocess(frame)
    mirrored_back = plain.logits(np.ascontiguousarray(x[..., ::-1]))[..., ::-1]
    assert np.allclose(tta.logits(x), (plain.logits(x) + mirrored_back) / 2, atol=1e-5)
    inner = (slice(None), slice(None), slice(None), slice(1, -1))  # the padded border columns are not odd
    assert np.abs(plain.logits(x)[inner]).max() > 0.1  # the frame has gradients ...
    assert np.allclose(tta.logits(x)[inner], np.arange(4, dtype=np.float32)[None, :, None, None] * 0.01, atol=1e-4)


def test_metadata_must_match_graph_input_size(tmp_path):
    import onnx

    p = brightness_model(tmp_path / "m.onnx", size=64)
    m = onnx.load(str(p))
    for d, v in zip(m.graph.input[0].type.tensor_type.shape.dim[2:], (32, 32)):
        d.dim_value = v  # graph fixed at 32x32, metadata says 64x64
    onnx.save(m, str(p))
    with pytest.raises(ModelLoadError, match="does not match 64x64"):
        Segmenter(p, "cpu")
