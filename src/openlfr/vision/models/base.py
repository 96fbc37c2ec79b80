"""What every face model declares: one unit, chosen by name, with its preprocessing beside it.

A face model here is the whole chain that turns an image into comparable templates: which
detector and landmarks it expects, how it cuts the chip, what network embeds the chip and
how big the embedding is, which runtime runs it, and its calibration (the score rule and the
thresholds measured for it). Templates carry the model's ``name``; two models' templates are
never compared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from openlfr.vision.detect import Detection


@dataclass(frozen=True)
class ModelCard:
    """What a force must know before it chooses a model (docs/models.md has the long form)."""

    title: str
    source: str  # where the weights come from, and how they reach the machine
    licence: str  # the code's and the weights' licences
    training_data: str  # what it was trained on, and that data's terms
    preprocessing: str  # detector, landmarks, chip, pixel scaling
    not_fit_for: str  # what it must not be used for


@dataclass(frozen=True, slots=True)
class Landmarked:
    """A detected face with the 5 points its model aligns on (the model's own order)."""

    box: Detection
    points: np.ndarray  # (5, 2) float32


class FaceModel(ABC):
    """One face model. Subclasses set the class attributes and implement the four stages."""

    name: str  # the template tag, e.g. "dlib-resnet-v1"
    embedding_size: int
    chip_size: int  # square chips of this many pixels
    detector: str  # e.g. "hog"
    landmarks: str  # e.g. "dlib 5-point"
    runtime: str  # e.g. "ONNX Runtime"
    card: ModelCard

    @abstractmethod
    def installed(self) -> bool:
        """Whether everything the model needs is on this machine (nothing is downloaded)."""

    @abstractmethod
    def detect(self, rgb: np.ndarray, upsample: int = 1) -> list[Detection]:
        """The faces' boxes, best first."""

    @abstractmethod
    def locate(self, rgb: np.ndarray, box: Detection) -> np.ndarray:
        """The 5 points the model aligns on, ``(5, 2)`` float32, for the face in ``box``."""

    def find(self, rgb: np.ndarray, upsample: int = 1) -> list[Landmarked]:
        """Detect faces and locate the 5 points of each."""
        return [Landmarked(box, self.locate(rgb, box)) for box in self.detect(rgb, upsample)]

    @abstractmethod
    def align(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        """The model's chip, ``(chip_size, chip_size, 3)`` uint8 RGB."""

    @abstractmethod
    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, embedding_size)`` float32 rows of unit length, compared by cosine similarity."""

    @abstractmethod
    def eyes_and_nose(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The eye on the image's left, the eye on its right, and the nose, from the 5 points:
        what quality needs (size, roll, frontalness) whatever the model's point order."""

    def warm_up(self) -> None:
        """Load the networks now (a live pipeline does this before its first frame)."""
        blank = np.zeros((160, 160, 3), np.uint8)
        self.detect(blank)
        self.locate(blank, Detection(10, 10, 100, 100, 0.0))
        self.embed([np.zeros((self.chip_size, self.chip_size, 3), np.uint8)])

    def __repr__(self) -> str:
        return f"<face model {self.name}>"
