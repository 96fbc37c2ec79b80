"""Faces in an image: detection, landmarks, alignment, quality and embedding on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from openlfr.vision import find_faces
from openlfr.vision.embed import embed_chips

DLIB = "dlib-resnet-v1"


def test_astronaut_has_one_frontal_face(astronaut: np.ndarray) -> None:
    faces = find_faces(astronaut, model=DLIB)
    assert len(faces) == 1
    face = faces[0]
    x1, y1, x2, y2 = face.box.as_list()
    assert 150 < x1 < x2 < 300 and 50 < y1 < y2 < 200  # her face, upper middle of the frame
    assert ((face.landmarks >= [x1 - 10, y1 - 10]) & (face.landmarks <= [x2 + 10, y2 + 10])).all()
    assert face.chip is not None and face.chip.shape == (150, 150, 3)
    assert face.embedding is not None and face.embedding.shape == (128,)
    assert abs(np.linalg.norm(face.embedding) - 1) < 1e-5
    assert face.quality.frontalness > 0.7
    assert face.quality.eye_distance_px > 20
    assert 0 < face.quality.score <= 1


def test_blank_and_noise_images_have_no_face() -> None:
    assert find_faces(np.full((300, 300, 3), 128, np.uint8)) == []
    rng = np.random.default_rng(0)
    assert find_faces(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)) == []


def test_the_same_face_mirrored_or_scaled_stays_alike(astronaut: np.ndarray) -> None:
    import cv2

    original = find_faces(astronaut)[0]
    smaller = find_faces(cv2.resize(astronaut, (384, 384)), upsample=1)[0]
    assert float(original.embedding @ smaller.embedding) > 0.95
    turned_away = astronaut[:, ::-1].copy()
    mirrored = find_faces(turned_away)[0]
    assert abs(mirrored.quality.roll_deg + original.quality.roll_deg) < 3


def test_greyscale_photo_still_finds_the_face(astronaut: np.ndarray) -> None:
    grey = astronaut.mean(axis=2).astype(np.uint8)
    colour = find_faces(astronaut)[0]
    best = max(find_faces(grey), key=lambda f: f.box.score)
    assert abs(best.box.x1 - colour.box.x1) < 10 and abs(best.box.y1 - colour.box.y1) < 10
    assert float(best.embedding @ colour.embedding) > 0.9


def test_mmod_detector_agrees_with_hog(astronaut: np.ndarray) -> None:
    from openlfr.vision.models.dlib_resnet import DlibResnet

    hog = find_faces(astronaut, model=DLIB, embed=False)[0].box
    mmod = find_faces(astronaut, model=DlibResnet(detector="mmod"), embed=False)[0].box
    overlap_w = min(hog.x2, mmod.x2) - max(hog.x1, mmod.x1)
    overlap_h = min(hog.y2, mmod.y2) - max(hog.y1, mmod.y1)
    assert overlap_w > 0.5 * hog.width and overlap_h > 0.5 * hog.height


def test_unknown_detector_and_model_are_refused(astronaut: np.ndarray) -> None:
    from openlfr.errors import OpenLFRError
    from openlfr.vision.models.dlib_resnet import DlibResnet

    with pytest.raises(ValueError, match="unknown detector"):
        find_faces(astronaut, model=DlibResnet(detector="magic"))  # type: ignore[arg-type]
    with pytest.raises(OpenLFRError, match="unknown face model"):
        find_faces(astronaut, model="magic")


def test_batched_embedding_equals_one_at_a_time(astronaut: np.ndarray) -> None:
    chip = find_faces(astronaut, model=DLIB)[0].chip
    flipped = chip[:, ::-1].copy()
    batch = embed_chips([chip, flipped])
    singles = np.vstack([embed_chips([chip]), embed_chips([flipped])])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    assert embed_chips([]).shape == (0, 128)


def test_same_person_scores_higher_than_different_people(test_data) -> None:  # noqa: ANN001
    examples = test_data / "faces/misc/face_recognition_examples/examples"
    obama, obama2, biden = (
        find_faces(examples / name)[0].embedding
        for name in ("obama.jpg", "obama2.jpg", "biden.jpg")
    )
    assert obama @ obama2 > obama @ biden + 0.05


def test_group_photo_finds_every_face(test_data) -> None:  # noqa: ANN001
    faces = find_faces(test_data / "faces/misc/face_recognition_examples/examples/two_people.jpg")
    assert len(faces) == 2
    assert faces[0].box.width >= faces[1].box.width  # largest first
