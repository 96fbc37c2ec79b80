"""The ``Face`` record and ``find_faces``: every stage of ``openlfr.vision`` in one call.

>>> from openlfr.vision import find_faces
>>> for face in find_faces("group.jpg"):                 # the configured face model
...     print(face.box.as_list(), face.quality.frontalness, face.embedding.shape)
>>> find_faces("group.jpg", model="dlib-resnet-v1")       # or a named one
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from openlfr.vision.detect import Detection
from openlfr.vision.image import ImageSource, detection_view, load_image
from openlfr.vision.models import FaceModel, Landmarked, get_model
from openlfr.vision.quality import Quality, assess_quality


@dataclass(slots=True)
class Face:
    """One face in one image, as it passes between stages.

    ``chip`` and ``embedding`` are biometric data: they live in memory only, unless the face
    is enrolled or raises an alert (DESIGN.md, invariant 1).
    """

    box: Detection
    landmarks: np.ndarray  # (5, 2) float32, in the order of the model's alignment
    quality: Quality
    chip: np.ndarray | None = field(repr=False)  # the model's aligned chip; None once dropped
    embedding: np.ndarray | None = field(default=None, repr=False)  # float32, unit length
    model: str = ""  # the face model that made landmarks, chip and embedding


def analyse_face(model: FaceModel, rgb: np.ndarray, box: Detection, points: np.ndarray) -> Face:
    """Align and measure one located face (no embedding yet)."""
    chip = model.align(rgb, points)
    quality = assess_quality(model.eyes_and_nose(points), chip, box.width)
    return Face(box, points, quality, chip, model=model.name)


def _scaled(found: Landmarked, scale: float) -> tuple[Detection, np.ndarray]:
    """A face found on a ``detection_view`` of ``scale``, in the full image's pixels."""
    box, points = found.box, found.points
    if scale == 1.0:
        return box, points
    x1, y1, x2, y2 = (round(v / scale) for v in (box.x1, box.y1, box.x2, box.y2))
    return Detection(x1, y1, x2, y2, box.score), (points / scale).astype(np.float32)


def resolve_model(model: FaceModel | str | None) -> FaceModel:
    return model if isinstance(model, FaceModel) else get_model(model)


def find_faces(
    image: ImageSource,
    *,
    model: FaceModel | str | None = None,
    upsample: int = 0,
    embed: bool = True,
) -> list[Face]:
    """Detect, align, measure and (unless ``embed=False``) embed every face in an image, with
    ``model`` (a name, a unit, or None for the configured model).

    ``image`` is a path, bytes, a file object or an RGB array; the faces come largest first.
    """
    unit = resolve_model(model)
    rgb = load_image(image)
    # Detection on at most DETECT_PIXELS (a large photo shrunk first: its cost is bounded);
    # alignment and quality on the full image.
    view, scale, upsample = detection_view(rgb, upsample)
    faces = [analyse_face(unit, rgb, *_scaled(f, scale)) for f in unit.find(view, upsample)]
    faces.sort(key=lambda f: -f.box.width)
    if embed and faces:
        for face, vector in zip(faces, unit.embed([f.chip for f in faces]), strict=True):
            face.embedding = vector
    return faces
