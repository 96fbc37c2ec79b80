"""Face detection: where the faces are in an RGB image.

>>> boxes = detect_faces(rgb)                       # dlib HOG, no upsampling
>>> boxes = detect_faces(rgb, model="mmod", upsample=1)

The MMOD (CNN) detector has two backends that give the same boxes: ``onnx`` (dlib's network
converted to ONNX and run by ONNX Runtime, several times faster, see ``openlfr.vision.onnx``)
and ``dlib``. ``OPENLFR_DETECTOR_BACKEND`` picks one; unset, detection follows
``OPENLFR_EMBEDDING_BACKEND`` (default ``onnx``), so ``OPENLFR_EMBEDDING_BACKEND=dlib`` still
means "dlib throughout". ``OPENLFR_DETECTOR_PRECISION=int8`` makes the ``onnx`` backend use
an int8-quantized network: faster, but not dlib's boxes exactly (``openlfr.vision.onnx.
mmod_int8``). HOG always runs in dlib.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from openlfr.vision import dlib_models
from openlfr.vision.backends import Backend, backend_setting, onnx_runtime_available, usable
from openlfr.vision.embed import requested_backend

DetectorName = Literal["hog", "mmod"]

log = logging.getLogger(__name__)


def requested_detector_backend() -> Backend:
    """``$OPENLFR_DETECTOR_BACKEND`` (``onnx`` or ``dlib``); when unset, the embedding
    backend setting (``$OPENLFR_EMBEDDING_BACKEND``, ``onnx`` when unset)."""
    return backend_setting("OPENLFR_DETECTOR_BACKEND") or requested_backend()


# Tests clear this cache to simulate a missing ONNX Runtime; the function is shared.
_onnx_runtime_available = onnx_runtime_available


def active_detector_backend() -> Backend:
    """The backend MMOD detection uses now: the requested one, or dlib if ONNX Runtime
    cannot be imported (warned about once)."""
    return usable(requested_detector_backend())


@dataclass(frozen=True, slots=True)
class Detection:
    """A face box in pixels, ``(x1, y1)`` inclusive and ``(x2, y2)`` exclusive, and its score."""

    x1: int
    y1: int
    x2: int
    y2: int
    score: float

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    def as_list(self) -> list[int]:
        return [self.x1, self.y1, self.x2, self.y2]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes (``Detection.as_list``)."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def detect_faces(
    rgb: np.ndarray,
    *,
    model: DetectorName = "hog",
    upsample: int = 0,
    backend: Backend | None = None,
) -> list[Detection]:
    """Detect faces; ``upsample`` doubles the image that many times to find smaller faces.

    HOG finds frontal faces of about 80 px and more (40 px with ``upsample=1``) quickly;
    MMOD (dlib's CNN) also finds turned faces but is slower on a CPU. ``backend`` overrides
    the MMOD backend setting (``active_detector_backend``); HOG ignores it.
    """
    height, width = rgb.shape[:2]
    # dlib's rectangles: (left, top, right, bottom) inclusive, possibly outside the image.
    found: list[tuple[int, int, int, int, float]]
    if model == "hog":
        rects, scores, _ = dlib_models.hog_detector().run(rgb, upsample, 0.0)
        found = [_corners(r, s) for r, s in zip(rects, scores, strict=True)]
    elif model == "mmod":
        if (backend or active_detector_backend()) == "onnx":
            from openlfr.vision.onnx.detector import onnx_mmod_detector

            found = list(onnx_mmod_detector().detect(rgb, upsample))
        else:
            mmod = dlib_models.mmod_detector()
            found = [_corners(d.rect, d.confidence) for d in mmod(rgb, upsample)]
    else:
        raise ValueError(f"unknown detector {model!r}: use 'hog' or 'mmod'")
    detections = []
    for left, top, right, bottom, score in found:
        x1, y1 = max(left, 0), max(top, 0)
        x2, y2 = min(right + 1, width), min(bottom + 1, height)
        if x2 > x1 and y2 > y1:
            detections.append(Detection(x1, y1, x2, y2, float(score)))
    return sorted(detections, key=lambda d: -d.score)


def _corners(rect: Any, score: float) -> tuple[int, int, int, int, float]:
    """A ``dlib.rectangle`` and its score as plain numbers."""
    return (rect.left(), rect.top(), rect.right(), rect.bottom(), float(score))
