"""Face detection: where the faces are in an RGB image.

>>> boxes = detect_faces(rgb)                       # dlib HOG, no upsampling
>>> boxes = detect_faces(rgb, model="mmod", upsample=1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from openlfr.vision import models

DetectorName = Literal["hog", "mmod"]


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


def detect_faces(
    rgb: np.ndarray, *, model: DetectorName = "hog", upsample: int = 0
) -> list[Detection]:
    """Detect faces; ``upsample`` doubles the image that many times to find smaller faces.

    HOG finds frontal faces of about 80 px and more (40 px with ``upsample=1``) quickly;
    MMOD (dlib's CNN) also finds turned faces but is far slower on a CPU.
    """
    height, width = rgb.shape[:2]
    if model == "hog":
        rects, scores, _ = models.hog_detector().run(rgb, upsample, 0.0)
        found = [(r, float(s)) for r, s in zip(rects, scores, strict=True)]
    elif model == "mmod":
        found = [(d.rect, float(d.confidence)) for d in models.mmod_detector()(rgb, upsample)]
    else:
        raise ValueError(f"unknown detector {model!r}: use 'hog' or 'mmod'")
    detections = []
    for rect, score in found:
        x1, y1 = max(rect.left(), 0), max(rect.top(), 0)
        x2, y2 = min(rect.right() + 1, width), min(rect.bottom() + 1, height)
        if x2 > x1 and y2 > y1:
            detections.append(Detection(x1, y1, x2, y2, score))
    return sorted(detections, key=lambda d: -d.score)
