"""Landmarks and aligned chips: the 5 points dlib finds, and the 150x150 crop the embedder needs."""

from __future__ import annotations

import numpy as np

from openlfr.vision import models
from openlfr.vision.detect import Detection

CHIP_SIZE = 150
CHIP_PADDING = 0.25


def find_landmarks(rgb: np.ndarray, box: Detection) -> np.ndarray:
    """The 5 landmarks of the face in ``box`` as a ``(5, 2)`` float array of ``(x, y)``.

    dlib's order: right eye outer and inner corner, left eye outer and inner corner, nose base
    (right and left as the person sees them).
    """
    import dlib

    rect = dlib.rectangle(box.x1, box.y1, box.x2 - 1, box.y2 - 1)
    shape = models.landmark_predictor()(rgb, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def align_chip(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face rotated upright and scaled to ``CHIP_SIZE`` square, as dlib's embedder expects."""
    import dlib

    rect = dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)
    points = [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]
    shape = dlib.full_object_detection(rect, points)
    return dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
