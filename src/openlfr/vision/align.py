"""Landmarks and aligned chips: the 5 points dlib finds, and the 150x150 crop the embedder needs."""

from __future__ import annotations

import numpy as np

from openlfr.vision import dlib_models
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
    shape = dlib_models.landmark_predictor()(rgb, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def align_chip(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face rotated upright and scaled to ``CHIP_SIZE`` square, as dlib's embedder expects."""
    import dlib

    rect = dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)
    points = [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]
    shape = dlib.full_object_detection(rect, points)
    return dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)


# ArcFace's 5-point template for a 112x112 chip (x, y): eye centres, nose tip, mouth corners,
# left and right as seen in the image. insightface's arcface_dst.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_CHIP_SIZE = 112


def find_landmarks68(rgb: np.ndarray, box: Detection) -> np.ndarray:
    """dlib's 68 landmarks of the face in ``box`` as a ``(68, 2)`` float array of ``(x, y)``."""
    import dlib

    rect = dlib.rectangle(box.x1, box.y1, box.x2 - 1, box.y2 - 1)
    shape = dlib_models.landmark68_predictor()(rgb, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def five_points_from_68(points68: np.ndarray) -> np.ndarray:
    """ArcFace's 5 points from dlib's 68: the two eye centres (means of each eye's six
    points), the nose tip (point 30) and the mouth corners (48, 54), in template order."""
    p = np.asarray(points68, dtype=np.float32)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]).astype(np.float32)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, shift) taking ``src`` onto
    ``dst``, as a 2x3 matrix: Umeyama's closed form, as insightface's alignment uses."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(covariance)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_c.var(0).sum()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def arcface_chip(rgb: np.ndarray, points5: np.ndarray) -> np.ndarray:
    """The 112x112 chip of ArcFace-trained models: the 5 points warped onto the template."""
    import cv2

    matrix = similarity_transform(points5, ARCFACE_TEMPLATE)
    size = (ARCFACE_CHIP_SIZE, ARCFACE_CHIP_SIZE)
    return cv2.warpAffine(rgb, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
