"""Which face a reference photo is of, when it shows more than one.

A photo with a bystander in the background is common (61 of 800 in one public set). The manager
says which face is meant by a rule, and the rule picks a face only when it clearly dominates;
otherwise the photo is refused with the reason, because enrolling the wrong face puts a
stranger on the watchlist. "Clearly", measured by eye distance (the size the face model aligns
by, steadier than a detector's box):

- ``largest``: the largest face is at least ``DOMINANCE`` (1.5x) the next one.
- ``centre``: the face nearest the image centre is at most half as far from it as the next
  nearest, at least 0.8x the size of the largest, and no other face's box overlaps it. On
  celeba-dev's 30 photos with several faces, a looser rule (half the size, overlaps allowed)
  took 3 bystanders in 13 picks: a face beside or over the subject's, or a smaller one in the
  foreground, is often nearer the centre (``benchmarks/pick.py``).
- an explicit box [x1, y1, x2, y2] (the console's click): the face whose box overlaps it best,
  at least 0.5 IoU.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from openlfr.vision.detect import box_iou
from openlfr.vision.faces import Face
from openlfr.vision.models import get_model

DOMINANCE = 1.5
CENTRE_RATIO = 0.5
CENTRE_MIN_SIZE = 0.8
MIN_IOU = 0.5


class Pick(StrEnum):
    LARGEST = "largest"
    CENTRE = "centre"


def eye_distance(face: Face) -> float:
    return face.quality.eye_distance_px  # measured by the face model's own eye points


def _centre_distance(face: Face, width: int, height: int) -> float:
    left, right, _ = get_model(face.model).eyes_and_nose(face.landmarks)
    middle = (np.asarray(left, float) + np.asarray(right, float)) / 2
    return float(np.hypot(middle[0] - width / 2, middle[1] - height / 2))


def pick_face(
    faces: Sequence[Face],
    width: int,
    height: int,
    rule: Pick | str | None = None,
    box: Sequence[float] | None = None,
) -> tuple[Face | None, str]:
    """The face meant and ``""``, or None and why not. Without a rule or box, only a photo of
    exactly one face is accepted, as before."""
    if not faces:
        return None, "no face found"
    if box is not None:
        best = max(faces, key=lambda f: box_iou(f.box.as_list(), box))
        if box_iou(best.box.as_list(), box) < MIN_IOU:
            return None, "no face found in the chosen box"
        return best, ""
    if len(faces) == 1:
        return faces[0], ""
    many = f"{len(faces)} faces found"
    if rule is None:
        return None, f"{many}: a reference image must show one person (or say which: pick)"
    sizes = sorted(((eye_distance(f), i) for i, f in enumerate(faces)), reverse=True)
    if Pick(rule) is Pick.LARGEST:
        (first, i), (second, _) = sizes[:2]
        if first < DOMINANCE * second:
            return None, (
                f"{many} and the largest is only {first / second:.2f}x the next by eye distance "
                f"(at least {DOMINANCE}x needed to pick it)"
            )
        return faces[i], ""
    near = sorted((_centre_distance(f, width, height), i) for i, f in enumerate(faces))
    (first, i), (second, _) = near[:2]
    if first > CENTRE_RATIO * second:
        return None, (
            f"{many} and none is clearly at the centre (the nearest is {first / second:.2f} of "
            f"the next one's distance; at most {CENTRE_RATIO} needed)"
        )
    if eye_distance(faces[i]) < CENTRE_MIN_SIZE * sizes[0][0]:
        return None, (
            f"{many} and the face at the centre is under {CENTRE_MIN_SIZE}x the size of the largest"
        )
    centred = faces[i].box.as_list()
    if any(box_iou(f.box.as_list(), centred) > 0 for f in faces if f is not faces[i]):
        return None, f"{many} and another face overlaps the one at the centre"
    return faces[i], ""
