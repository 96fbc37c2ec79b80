"""How usable a face is for recognition: size, sharpness and frontalness.

Poor shots (small, blurred, turned) are where false matches come from; the live pipeline picks
a track's best shots by these numbers and a search can refuse faces below a floor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class Quality:
    """``size_px``: box width; ``eye_distance_px``: between the eye centres; ``sharpness``: variance
    of the Laplacian of the grey chip (above ~100 is crisp); ``frontalness``: 1 facing the camera,
    0 in profile, from where the nose sits between the eyes; ``roll_deg``: head tilt."""

    size_px: int
    eye_distance_px: float
    sharpness: float
    frontalness: float
    roll_deg: float

    @property
    def score(self) -> float:
        """One number in [0, 1] to rank shots of the same person: larger, sharper, more frontal."""
        size = min(self.eye_distance_px / 60.0, 1.0)
        sharp = min(self.sharpness / 150.0, 1.0)
        return round(float(size * 0.4 + sharp * 0.2 + self.frontalness * 0.4), 4)

    def as_dict(self) -> dict[str, float]:
        return {**{k: round(float(v), 3) for k, v in asdict(self).items()}, "score": self.score}


def assess_quality(
    eyes_and_nose: tuple[np.ndarray, np.ndarray, np.ndarray], chip: np.ndarray, size_px: int
) -> Quality:
    """Measure a face from the eye on the image's left, the eye on its right and the nose
    (``FaceModel.eyes_and_nose``), and its aligned chip."""
    right_eye, left_eye, nose = (np.asarray(p, dtype=np.float64) for p in eyes_and_nose)
    eye_vector = left_eye - right_eye
    eye_distance = float(np.hypot(*eye_vector))
    roll = float(np.degrees(np.arctan2(eye_vector[1], eye_vector[0])))
    if eye_vector[0] < 0:  # image mirrored or face upside down: measure roll the short way
        roll = roll - 180.0 if roll > 0 else roll + 180.0
    # Yaw turns the nose towards one eye: its offset from the eyes' midpoint along the eye line,
    # as a share of half the eye distance, is 0 when frontal and ~1 in near-profile.
    if eye_distance > 0:
        unit = eye_vector / eye_distance
        offset = float(np.dot(nose - (right_eye + left_eye) / 2, unit))
        frontalness = max(0.0, 1.0 - abs(offset) / (eye_distance / 2))
    else:
        frontalness = 0.0
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return Quality(
        size_px=int(size_px),
        eye_distance_px=eye_distance,
        sharpness=sharpness,
        frontalness=frontalness,
        roll_deg=roll,
    )
