"""MTCNN (openlfr.vision.mtcnn): the cascade on LiteRT and on ONNX Runtime, which must agree.

The weights are not in the repository: they come from ``$OPENLFR_MODELS_DIR/mobilefacenet/``
(``openlfr models install``); without them these tests skip. Real photos come from
``$OPENLFR_TEST_DATA``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from openlfr.vision.mtcnn import MtcnnDetector, MtcnnFace, litert_net, nms

NETS = ("pnet", "rnet", "onet")
Factory = Callable[[], MtcnnDetector]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    root = os.environ.get("OPENLFR_MODELS_DIR")
    folder = Path(root) / "mobilefacenet" if root else None
    if folder is None or not (folder / "pnet.tflite").is_file():
        pytest.skip(
            "MTCNN weights absent ($OPENLFR_MODELS_DIR/mobilefacenet/pnet.tflite): "
            "run 'openlfr models install'"
        )
    return folder


@pytest.fixture(scope="module")
def litert_detector(model_dir: Path) -> MtcnnDetector:
    pytest.importorskip("ai_edge_litert", reason="LiteRT (ai-edge-litert) is not installed")
    return MtcnnDetector(*(litert_net((model_dir / f"{n}.tflite").read_bytes()) for n in NETS))


@pytest.fixture(scope="module")
def onnx_detector(model_dir: Path) -> MtcnnDetector:
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed")
    try:
        from openlfr.vision.tflite import convert_tflite
    except ImportError as exc:
        pytest.skip(f"the TFLite-to-ONNX converter is not available: {exc}")
    models = [
        convert_tflite((model_dir / f"{n}.tflite").read_bytes(), dynamic_spatial=n == "pnet")
        for n in NETS
    ]
    return MtcnnDetector.from_onnx(*(m.SerializeToString() for m in models))


@pytest.fixture(params=["onnx", "litert"])
def detector(request: pytest.FixtureRequest) -> MtcnnDetector:
    """Each runtime in turn (the cascade code is the same)."""
    return request.getfixturevalue(f"{request.param}_detector")


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# --- no weights needed ------------------------------------------------------------------------


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array(
        [
            [0, 0, 10, 10, 0.8],
            [1, 1, 11, 11, 0.9],  # IoU with the first 0.68
            [20, 20, 30, 30, 0.7],
            [20, 20, 25, 25, 0.95],  # inside the third: IoU 0.25, over the smaller box 1
        ]
    )
    assert nms(boxes, 0.5, "union").tolist() == [3, 1, 2]
    assert nms(boxes, 0.7, "min").tolist() == [3, 1]
    assert nms(np.zeros((0, 5)), 0.5).tolist() == []


def never(batch: np.ndarray) -> dict[str, np.ndarray]:
    raise AssertionError("a network was called")


def test_pyramid_starts_at_min_face() -> None:
    scales = MtcnnDetector(never, never, never, min_face=40).scales(540, 960)
    assert scales[0] == pytest.approx(12 / 40)
    assert scales[1] == pytest.approx(12 / 40 * 0.709)
    assert 540 * scales[-1] >= 12 > 540 * scales[-1] * 0.709
    with pytest.raises(ValueError):
        MtcnnDetector(never, never, never, min_face=0)


# --- the cascade ------------------------------------------------------------------------------


def test_astronaut_one_face_with_plausible_landmarks(
    detector: MtcnnDetector, astronaut: np.ndarray
) -> None:
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, MtcnnFace)
    box = face.box
    assert 0.95 < box.score <= 1.0
    assert 60 < box.width < 140 and 80 < box.height < 160  # her face is about 100 px
    assert face.points.shape == (5, 2) and face.points.dtype == np.float32
    x, y = face.points[:, 0], face.points[:, 1]
    assert np.all((box.x1 <= x) & (x < box.x2) & (box.y1 <= y) & (y < box.y2))
    left_eye, right_eye, nose, left_mouth, right_mouth = face.points
    assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
    assert left_eye[0] < nose[0] < right_eye[0]


def test_no_face_in_blank_or_noise(detector: MtcnnDetector) -> None:
    rng = np.random.default_rng(0)
    images = [
        np.zeros((240, 320, 3), np.uint8),
        np.full((240, 320, 3), 255, np.uint8),
        np.full((300, 200, 3), 128, np.uint8),
        rng.integers(0, 256, (240, 320, 3), dtype=np.uint8),
        cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 3),
        np.zeros((8, 8, 3), np.uint8),  # smaller than P-Net's window
    ]
    for image in images:
        assert detector.detect(image) == []


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((64, 64), np.uint8),  # grey
        np.zeros((64, 64, 4), np.uint8),  # RGBA
        np.zeros((64, 64, 1), np.uint8),
        np.zeros((64, 64, 3), np.float32),
        np.zeros((2, 64, 64, 3), np.uint8),  # a batch
    ],
    ids=["grey", "rgba", "one-channel", "float", "batch"],
)
def test_bad_input_raises(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        MtcnnDetector(never, never, never).detect(image)


def test_group_photo(detector: MtcnnDetector, test_data: Path) -> None:
    image = read_rgb(test_data / "faces/misc/face_recognition_examples/examples/two_people.jpg")
    faces = detector.detect(image)
    assert len(faces) == 2
    assert all(f.box.score > 0.99 for f in faces)
    assert faces[0].box.score >= faces[1].box.score
    left, right = sorted(faces, key=lambda f: f.box.x1)
    assert left.box.x2 < right.box.x1  # side by side, not overlapping


# --- ONNX Runtime equals LiteRT ---------------------------------------------------------------


def shared_images(root: Path) -> list[Path]:
    examples = sorted((root / "faces/misc/face_recognition_examples/examples").glob("*.jpg"))
    celeba = [
        sorted(p.glob("*.jpg"))[0]
        for p in sorted((root / "faces/celeba-dev").iterdir())
        if p.is_dir()
    ][:8]
    return [*examples, *celeba, root / "video/openmpf-race-crowd-still.jpg"]


def test_onnx_runtime_equals_litert(
    onnx_detector: MtcnnDetector, litert_detector: MtcnnDetector, test_data: Path
) -> None:
    """Same cascade, two runtimes: the networks differ by float rounding only (about 1e-6), so
    the faces must be the same. A box coordinate that lands on a rounding boundary may flip by
    1 px, which moves a crop and its landmarks a little: boxes within 1 px, landmarks within
    0.5 px. Where the boxes are equal the crops are too: landmarks within 0.01 px (measured:
    1.5e-4 px at most, all boxes equal, on these 19 images and 30 faces)."""
    total = equal = 0
    for path in shared_images(test_data):
        image = read_rgb(path)
        ours, reference = onnx_detector.detect(image), litert_detector.detect(image)
        assert len(ours) == len(reference), path.name
        # Scores can tie near 1.0, so match by position, not by rank.
        for face in reference:
            match = min(ours, key=lambda f: _distance(f, face))
            box_diff = np.abs(np.subtract(match.box.as_list(), face.box.as_list())).max()
            point_diff = np.abs(match.points - face.points).max()
            assert box_diff <= 1, (path.name, match.box, face.box)
            assert point_diff <= (0.01 if box_diff == 0 else 0.5), (path.name, point_diff)
            assert match.box.score == pytest.approx(face.box.score, abs=1e-4)
            equal += box_diff == 0
        total += len(reference)
    assert total >= 20  # the comparison saw real faces
    assert equal >= 0.9 * total  # a flipped rounding is rare


def _distance(a: MtcnnFace, b: MtcnnFace) -> float:
    return float(np.abs(np.subtract(a.box.as_list(), b.box.as_list())).sum())
