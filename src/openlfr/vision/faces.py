"""The ``Face`` record and ``find_faces``: every stage of ``openlfr.vision`` in one call.

>>> from openlfr.vision import find_faces
>>> for face in find_faces("group.jpg"):
...     print(face.box.as_list(), face.quality.frontalness, face.embedding.shape)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from openlfr.vision.align import align_chip, find_landmarks
from openlfr.vision.detect import Detection, DetectorName, detect_faces
from openlfr.vision.embed import embed_chips
from openlfr.vision.image import ImageSource, load_image
from openlfr.vision.quality import Quality, assess_quality


@dataclass(slots=True)
class Face:
    """One face in one image, as it passes between stages.

    ``chip`` and ``embedding`` are biometric data: they live in memory only, unless the face
    is enrolled or raises an alert (DESIGN.md, invariant 1).
    """

    box: Detection
    landmarks: np.ndarray  # (5, 2) float32, dlib's order
    quality: Quality
    chip: np.ndarray | None = field(repr=False)  # (150, 150, 3) uint8, aligned; None once dropped
    embedding: np.ndarray | None = field(default=None, repr=False)  # (128,) float32, unit length


def find_faces(
    image: ImageSource,
    *,
    detector: DetectorName = "hog",
    upsample: int = 0,
    embed: bool = True,
) -> list[Face]:
    """Detect, align, measure and (unless ``embed=False``) embed every face in an image.

    ``image`` is a path, bytes, a file object or an RGB array; the faces come largest first.
    """
    rgb = load_image(image)
    faces = []
    for box in detect_faces(rgb, model=detector, upsample=upsample):
        landmarks = find_landmarks(rgb, box)
        chip = align_chip(rgb, landmarks)
        faces.append(Face(box, landmarks, assess_quality(landmarks, chip, box.width), chip))
    faces.sort(key=lambda f: -f.box.width)
    if embed and faces:
        for face, vector in zip(faces, embed_chips([f.chip for f in faces]), strict=True):
            face.embedding = vector
    return faces
