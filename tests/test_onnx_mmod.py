"""dlib's MMOD face detector on ONNX Runtime: reading the file, the tiled pyramid, the
first-use conversion, the backend switch, and the proof that it finds dlib's boxes.

The equality bar: the same number of boxes as dlib, each ONNX box matched to a dlib box with
intersection over union >= 0.95 and confidence within 0.05 (measured: identical integer boxes
and confidences within about 1e-6; see docs/onnx.md)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from openlfr.errors import ModelMissingError
from openlfr.vision import detect as detect_module
from openlfr.vision import detect_faces, dlib_models
from openlfr.vision.detect import active_detector_backend
from openlfr.vision.dlib_models import model_path
from openlfr.vision.onnx import convert
from openlfr.vision.onnx.detector import (
    MmodBox,
    OnnxMmodDetector,
    detector_precision,
    non_max_suppression,
    onnx_mmod_detector,
    sum_taps,
)
from openlfr.vision.onnx.dlib_format import DlibFormatError
from openlfr.vision.onnx.mmod import read_network
from openlfr.vision.onnx.pyramid import (
    build_tiled,
    build_tiled_numpy,
    pyramid_up,
    resize_exact,
    resize_planes,
    tiled_layout,
)

MIN_IOU = 0.95
MAX_SCORE_DIFFERENCE = 0.05


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of inclusive (left, top, right, bottom) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inner = max(w, 0) * max(h, 0)

    def area(r: tuple[int, int, int, int]) -> int:
        return (r[2] - r[0] + 1) * (r[3] - r[1] + 1)

    return inner / (area(a) + area(b) - inner)


def dlib_boxes(rgb: np.ndarray, upsample: int = 0) -> list[MmodBox]:
    found = dlib_models.mmod_detector()(rgb, upsample)
    return [
        MmodBox(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence)
        for d in found
    ]


def compare(name: str, rgb: np.ndarray, upsample: int = 0) -> tuple[int, float, float]:
    """Assert ONNX finds dlib's boxes; return (count, worst IoU, worst score difference)."""
    expected = dlib_boxes(rgb, upsample)
    got = onnx_mmod_detector().detect(rgb, upsample)
    assert len(got) == len(expected), f"{name}: dlib {expected}, ONNX {got}"
    worst_iou, worst_score = 1.0, 0.0
    unmatched = list(got)
    for box in expected:
        best = max(unmatched, key=lambda g: iou(g[:4], box[:4]))
        unmatched.remove(best)
        worst_iou = min(worst_iou, iou(best[:4], box[:4]))
        worst_score = max(worst_score, abs(best.score - box.score))
    assert worst_iou >= MIN_IOU, f"{name}: dlib {expected}, ONNX {got}"
    assert worst_score <= MAX_SCORE_DIFFERENCE, f"{name}: dlib {expected}, ONNX {got}"
    return len(expected), worst_iou, worst_score


# --- the file -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dat_bytes() -> bytes:
    return model_path("mmod").read_bytes()


def test_network_reads_whole_file(dat_bytes: bytes) -> None:
    network = read_network(dat_bytes)
    convs = [layer for layer in network.layers if layer.kind == "con"]
    assert [c.params["weight"].shape[0] for c in convs] == [16, 32, 32, 45, 45, 45, 1]
    assert [c.params["padding"] for c in convs] == [0, 0, 0, 2, 2, 2, 4]
    affines = [layer for layer in network.layers if layer.kind == "affine"]
    assert len(affines) == 6 and all(np.isfinite(a.params["gamma"]).all() for a in affines)
    assert [(w.width, w.height) for w in network.options.windows] == [(80, 80)]
    assert network.options.nms_iou == pytest.approx(0.3383, abs=1e-4)
    assert network.options.nms_covered == 1.0
    assert (network.padding, network.outer_padding) == (10, 11)
    np.testing.assert_allclose(network.mean_rgb, [122.782, 117.001, 104.298], atol=1e-4)


def test_corrupt_file_is_refused(dat_bytes: bytes) -> None:
    with pytest.raises(DlibFormatError, match="truncated"):
        read_network(dat_bytes[: len(dat_bytes) // 2])
    with pytest.raises(DlibFormatError, match="unexpected bytes"):
        read_network(dat_bytes + b"\x00")
    with pytest.raises(DlibFormatError, match="bn_con2"):
        read_network(dat_bytes.replace(b"\x07bn_con2", b"\x07bn_con3", 1))


def test_missing_or_unexpected_dat_is_a_clear_error(tmp_path: Path, dat_bytes: bytes) -> None:
    with pytest.raises(ModelMissingError, match="MMOD face detector model .* cannot be read"):
        convert.convert(tmp_path / "absent.dat", model=convert.DETECTOR)
    other = tmp_path / "other.dat"
    other.write_bytes(dat_bytes[:-10])
    with pytest.raises(ModelMissingError, match="not the expected dlib MMOD face detector"):
        convert.convert(other, model=convert.DETECTOR)
    # The descriptor's file is not the detector's.
    with pytest.raises(ModelMissingError, match="not the expected dlib MMOD face detector"):
        convert.convert(model_path("descriptor"), model=convert.DETECTOR)


def test_converted_detector_is_cached_and_reverified(tmp_path: Path) -> None:
    first = convert.load_verified_model(tmp_path, model=convert.DETECTOR)
    onnx_file = tmp_path / convert.DETECTOR_ONNX_NAME
    checksum = onnx_file.with_name(onnx_file.name + ".sha256")
    assert onnx_file.read_bytes() == first
    assert checksum.read_text().split() == [convert.sha256_bytes(first), onnx_file.name]
    onnx_file.write_bytes(first[:-1] + b"\x00")  # damaged: rebuilt, not trusted
    assert convert.load_verified_model(tmp_path, model=convert.DETECTOR) == first
    assert not (tmp_path / convert.ONNX_NAME).exists()  # the descriptor is not touched


# --- the pyramid ----------------------------------------------------------------------------


def test_tiled_layout_is_dlibs() -> None:
    layout = tiled_layout(540, 960)
    rects = layout.rects
    assert (layout.rows, layout.cols) == (1999, 982)
    assert (rects[0].left, rects[0].top, rects[0].width, rects[0].height) == (11, 11, 960, 540)
    for prev, rect in zip(rects, rects[1:], strict=False):
        assert (rect.height, rect.width) == (prev.height * 5 // 6, prev.width * 5 // 6)
    assert rects[-1].height >= 5
    for i, a in enumerate(rects):
        assert a.left >= 0 and a.right < layout.cols and a.top >= 0 and a.bottom < layout.rows
        assert not any(a.intersects(b) for b in rects[i + 1 :])
    assert tiled_layout(0, 10).rects == ()


def test_resize_matches_dlib() -> None:
    dlib = pytest.importorskip("dlib")
    rng = np.random.default_rng(3)
    plane = rng.normal(size=(211, 377)).astype(np.float32)
    expected = dlib.resize_image(plane, 175, 314)
    np.testing.assert_array_equal(resize_exact(plane[None], 175, 314)[0], expected)
    np.testing.assert_allclose(resize_planes(plane[None], 175, 314)[0], expected, atol=1e-5)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    np.testing.assert_array_equal(pyramid_up(rgb), dlib.resize_image(rgb, 75, 108))


def test_opencv_pyramid_matches_numpy(astronaut: np.ndarray) -> None:
    """The OpenCV-built tiled tensor is the numpy one to float rounding, zeros included."""
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (270, 480, 3), dtype=np.uint8)
    frame[:256, :256] = astronaut[::2, ::2]
    layout = tiled_layout(*frame.shape[:2])
    mean = np.array([122.782, 117.001, 104.298])
    fast, reference = build_tiled(frame, layout, mean), build_tiled_numpy(frame, layout, mean)
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-4)
    assert np.count_nonzero(fast) == np.count_nonzero(reference)


def test_sum_taps_is_the_last_convolution() -> None:
    """The graph's row taps (1x9, padding 4 left and right), shifted by their row and
    summed, are the 9x9 convolution (padding 4)."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(6, 13, 17)).astype(np.float32)
    weight = rng.normal(size=(1, 6, 9, 9)).astype(np.float32)
    wide = np.pad(x, ((0, 0), (0, 0), (4, 4)))
    taps = np.array(
        [
            [
                [np.sum(weight[0, :, ky] * wide[:, r, c : c + 9]) for c in range(17)]
                for r in range(13)
            ]
            for ky in range(9)
        ]
    )
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4)))
    direct = np.array(
        [
            [np.sum(weight[0] * padded[:, r : r + 9, c : c + 9]) for c in range(17)]
            for r in range(13)
        ]
    )
    got = sum_taps(taps, np.array([0.5], dtype=np.float32), 9, 4)
    np.testing.assert_allclose(got[0], direct + 0.5, rtol=0, atol=1e-3)


def test_nms_uses_dlibs_overlap_test() -> None:
    boxes = np.array([[0, 0, 79, 79], [40, 0, 119, 79], [200, 200, 279, 279], [10, 10, 69, 69]])
    scores = np.array([2.0, 1.0, 0.5, 0.4])
    # Boxes 0 and 1 overlap by 40x80 over a 120x80 bounding box (0.333 < 0.338; their IoU
    # would be 0.2): both kept. Box 3 lies inside box 0: 60x60 over 80x80 (0.56), dropped.
    assert non_max_suppression(boxes, scores, 0.3383, 1.0) == [0, 1, 2]
    assert non_max_suppression(boxes, scores, 0.3, 1.0) == [0, 2]


# --- the same boxes as dlib -----------------------------------------------------------------


def test_astronaut_onnx_equals_dlib(astronaut: np.ndarray) -> None:
    count, worst_iou, worst_score = compare("astronaut", astronaut)
    print(f"astronaut: {count} box(es), worst IoU {worst_iou:.4f}, score diff {worst_score:.1e}")
    assert count == 1


def test_astronaut_upsampled_onnx_equals_dlib(astronaut: np.ndarray) -> None:
    small = np.ascontiguousarray(astronaut[::2, ::2])  # 256x256, upsampled to 513x514
    count, worst_iou, worst_score = compare("astronaut/2, upsample=1", small, upsample=1)
    print(f"astronaut/2 upsample 1: {count} box(es), IoU {worst_iou:.4f}, diff {worst_score:.1e}")
    assert count == 1


def test_no_face_and_tiny_images(astronaut: np.ndarray) -> None:
    detector = onnx_mmod_detector()
    assert detector.detect(np.zeros((120, 160, 3), dtype=np.uint8)) == []
    assert detector.detect(np.zeros((4, 4, 3), dtype=np.uint8)) == []
    with pytest.raises(ValueError, match="RGB"):
        detector.detect(astronaut[:, :, :2])
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(astronaut.astype(np.float32))


def test_greyscale_is_rgb_with_equal_channels(astronaut: np.ndarray) -> None:
    grey = np.ascontiguousarray(astronaut[:, :, 1])
    compare("astronaut, greyscale", grey)  # dlib takes greyscale images too
    assert onnx_mmod_detector().detect(grey) == onnx_mmod_detector().detect(
        np.repeat(grey[:, :, None], 3, axis=2)
    )


def test_detect_faces_backends_agree(
    astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENLFR_DETECTOR_BACKEND", raising=False)
    monkeypatch.delenv("OPENLFR_EMBEDDING_BACKEND", raising=False)
    onnx_found = detect_faces(astronaut, model="mmod")
    dlib_found = detect_faces(astronaut, model="mmod", backend="dlib")
    assert [d.as_list() for d in onnx_found] == [d.as_list() for d in dlib_found]
    assert [d.score for d in onnx_found] == pytest.approx([d.score for d in dlib_found], abs=1e-4)
    assert len(onnx_found) == 1 and onnx_found[0].width > 80


def test_backend_is_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENLFR_DETECTOR_BACKEND", raising=False)
    monkeypatch.delenv("OPENLFR_EMBEDDING_BACKEND", raising=False)
    assert active_detector_backend() == "onnx"
    monkeypatch.setenv("OPENLFR_EMBEDDING_BACKEND", "dlib")  # followed when unset
    assert active_detector_backend() == "dlib"
    monkeypatch.setenv("OPENLFR_DETECTOR_BACKEND", "onnx")  # its own setting wins
    assert active_detector_backend() == "onnx"
    monkeypatch.setenv("OPENLFR_DETECTOR_BACKEND", "tensorflow")
    with pytest.raises(ValueError, match="OPENLFR_DETECTOR_BACKEND"):
        active_detector_backend()


def test_without_onnxruntime_dlib_detects_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, astronaut: np.ndarray
) -> None:
    monkeypatch.delenv("OPENLFR_DETECTOR_BACKEND", raising=False)
    monkeypatch.delenv("OPENLFR_EMBEDDING_BACKEND", raising=False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now fails
    detect_module._onnx_runtime_available.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="openlfr.vision.detect"):
            assert active_detector_backend() == "dlib"
            found = detect_faces(astronaut, model="mmod")
            active_detector_backend()
        assert len(found) == 1
        warnings = [r for r in caplog.records if "ONNX Runtime is not available" in r.message]
        assert len(warnings) == 1
    finally:
        detect_module._onnx_runtime_available.cache_clear()


# --- real photos and video ------------------------------------------------------------------

# Photos with several faces: (path, longest side after downscaling, upsample). dlib's MMOD
# takes 1-3 s per 512x512 image on two cores, so the whole set stays under a minute. Where
# the faces are small the photo runs with upsample=1 (at a smaller size): that exercises
# pyramid_up and rect_down, and brings detections close to the threshold (scores of 0.03
# and 0.11 among them).
REAL_IMAGES = [
    ("faces/misc/face_recognition_examples/examples/two_people.jpg", 512, 0),
    ("faces/misc/face_recognition_examples/examples/lin-manuel-miranda.jpg", 512, 0),
    ("faces/misc/faceapi_js/examples/images/bbt1.jpg", 320, 1),
    ("faces/misc/faceapi_js/examples/images/bbt2.jpg", 512, 0),
    ("faces/misc/faceapi_js/examples/images/bbt4.jpg", 512, 0),
    ("faces/misc/faceapi_js/examples/images/bbt4.jpg", 256, 1),
    ("faces/misc/faceapi_js/examples/images/bbt5.jpg", 320, 1),
    ("faces/misc/deepface_tests/tests/unit/dataset/couple.jpg", 512, 0),
    ("faces/misc/deepface_tests/tests/unit/dataset/selfie-many-people.jpg", 512, 0),
    ("faces/misc/deepface_tests/tests/unit/dataset/selfie-many-people.jpg", 256, 1),
    ("video/openmpf-race-crowd-still.jpg", 320, 1),
]
VIDEO = "video/openmpf-indoor-group.mp4"
VIDEO_FRAMES = (0, 45, 89)


def _load_small(path: Path, max_side: int) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    scale = max_side / max(bgr.shape[:2])
    if scale < 1:
        size = (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _video_frames(path: Path) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    for index in VIDEO_FRAMES:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = capture.read()
        assert ok, f"{path}: no frame {index}"
        frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    capture.release()
    return frames


@pytest.mark.slow
def test_real_images_onnx_equals_dlib(test_data: Path) -> None:
    """Every dlib box at dlib's threshold has an ONNX box (IoU >= 0.95), none extra."""
    cases = [
        (f"{name} at {side} px, upsample {up}", _load_small(test_data / name, side), up)
        for name, side, up in REAL_IMAGES
    ]
    frames = _video_frames(test_data / VIDEO)
    cases += [(f"{VIDEO}#{i}", f, 0) for i, f in zip(VIDEO_FRAMES, frames, strict=True)]
    total, worst_iou, worst_score = 0, 1.0, 0.0
    for name, rgb, upsample in cases:
        count, case_iou, case_score = compare(name, rgb, upsample)
        print(f"  {name}: {count} box(es)")
        total += count
        worst_iou, worst_score = min(worst_iou, case_iou), max(worst_score, case_score)
    print(
        f"{len(cases)} real images: {total} dlib boxes, all found by ONNX, none extra; "
        f"worst IoU {worst_iou:.4f}, largest score difference {worst_score:.1e}"
    )
    assert total >= 30


# --- the int8 variant (opt-in) --------------------------------------------------------------

# What int8 keeps of dlib's boxes (it does not pass the equality bar above; mmod_int8.py): a
# box may move by one output stride (8 pixels at its pyramid level: IoU down to about 0.68),
# and boxes scoring near the threshold may come and go.
INT8_MIN_IOU = 0.6
INT8_NEAR_THRESHOLD = 0.1


@pytest.fixture(scope="module")
def int8_detector() -> OnnxMmodDetector:
    return OnnxMmodDetector(convert.convert(model=convert.DETECTOR_INT8))


def compare_int8(
    detector: OnnxMmodDetector, rgb: np.ndarray, upsample: int = 0
) -> tuple[int, int, float, float]:
    """(dlib boxes, boxes one side only, worst IoU, largest score difference) for int8."""
    expected = dlib_boxes(rgb, upsample)
    unmatched = list(detector.detect(rgb, upsample))
    worst_iou, worst_score, lone = 1.0, 0.0, 0
    for box in expected:
        best = max(unmatched, key=lambda g: iou(g[:4], box[:4]), default=None)
        if best is None or iou(best[:4], box[:4]) < INT8_MIN_IOU:
            assert box.score < INT8_NEAR_THRESHOLD, f"int8 misses {box}: {unmatched}"
            lone += 1
            continue
        unmatched.remove(best)
        worst_iou = min(worst_iou, iou(best[:4], box[:4]))
        worst_score = max(worst_score, abs(best.score - box.score))
    assert all(g.score < INT8_NEAR_THRESHOLD for g in unmatched), f"int8 extra: {unmatched}"
    return len(expected), lone + len(unmatched), worst_iou, worst_score


def test_int8_finds_the_astronaut(astronaut: np.ndarray, int8_detector: OnnxMmodDetector) -> None:
    count, lone, worst_iou, worst_score = compare_int8(int8_detector, astronaut)
    print(f"int8 astronaut: IoU {worst_iou:.3f}, score difference {worst_score:.3f}")
    assert (count, lone) == (1, 0) and worst_score < 0.15


def test_precision_is_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENLFR_DETECTOR_PRECISION", raising=False)
    assert detector_precision() == "fp32"
    monkeypatch.setenv("OPENLFR_DETECTOR_PRECISION", "INT8")
    assert detector_precision() == "int8"
    monkeypatch.setenv("OPENLFR_DETECTOR_PRECISION", "fp16")
    with pytest.raises(ValueError, match="OPENLFR_DETECTOR_PRECISION"):
        detector_precision()


def test_int8_model_is_cached_apart(tmp_path: Path) -> None:
    int8 = convert.load_verified_model(tmp_path, model=convert.DETECTOR_INT8)
    assert (tmp_path / convert.DETECTOR_INT8_ONNX_NAME).read_bytes() == int8
    assert (tmp_path / (convert.DETECTOR_INT8_ONNX_NAME + ".sha256")).exists()
    assert not (tmp_path / convert.DETECTOR_ONNX_NAME).exists()
    assert b"QuantizeLinear" in int8


@pytest.mark.slow
def test_real_images_int8_near_dlib(test_data: Path, int8_detector: OnnxMmodDetector) -> None:
    """int8 on the real images: every dlib box scoring above 0.1 found (IoU >= 0.6), nothing
    extra above 0.1; the numbers are printed (docs/onnx.md)."""
    cases = [(_load_small(test_data / name, side), up) for name, side, up in REAL_IMAGES] + [
        (f, 0) for f in _video_frames(test_data / VIDEO)
    ]
    total, lone, worst_iou, worst_score = 0, 0, 1.0, 0.0
    for rgb, upsample in cases:
        count, case_lone, case_iou, case_score = compare_int8(int8_detector, rgb, upsample)
        total, lone = total + count, lone + case_lone
        worst_iou, worst_score = min(worst_iou, case_iou), max(worst_score, case_score)
    print(
        f"int8, {len(cases)} real images: {total} dlib boxes, {lone} near the threshold on one "
        f"side only; worst IoU {worst_iou:.3f}, largest score difference {worst_score:.3f}"
    )
    assert total >= 30
