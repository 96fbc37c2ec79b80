"""Faces in an image: load, detect, find landmarks, align, measure quality, embed."""

from openlfr.vision.detect import Detection, detect_faces
from openlfr.vision.embed import embed_chips
from openlfr.vision.faces import Face, find_faces
from openlfr.vision.image import load_image
from openlfr.vision.quality import Quality

__all__ = [
    "Detection",
    "Face",
    "Quality",
    "detect_faces",
    "embed_chips",
    "find_faces",
    "load_image",
]
