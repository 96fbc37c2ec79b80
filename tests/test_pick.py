"""Choosing the face at enrolment (issue 14, point 3): a photo with a bystander is enrolled for
the face meant only when it clearly dominates; otherwise it is refused with the reason."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from service_support import BASIS, jpeg
from sqlalchemy import select
from test_api import login
from typer.testing import CliRunner

from openlfr.api.roles import Role
from openlfr.cli import app
from openlfr.store.models import ReferenceImage
from openlfr.vision.detect import Detection
from openlfr.vision.faces import Face
from openlfr.vision.pick import Pick, pick_face
from openlfr.vision.quality import Quality

DLIB = "dlib-resnet-v1"


@pytest.fixture(autouse=True)
def dlib_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLFR_MODEL", DLIB)  # whatever is installed: the rules are geometric


def _face(x: float, y: float, eyes: float) -> Face:
    """A face whose eyes are ``eyes`` apart around (x, y), in dlib's 5-point order."""
    half = eyes / 2
    points = np.array(
        [[x - half - 5, y], [x - half + 5, y], [x + half + 5, y], [x + half - 5, y], [x, y + eyes]],
        np.float32,
    )
    box = Detection(int(x - eyes), int(y - eyes), int(x + eyes), int(y + 2 * eyes), 1.0)
    return Face(box, points, Quality(int(2 * eyes), eyes, 100.0, 1.0, 0.0), None, model=DLIB)


def test_largest_needs_one_and_a_half_times_the_next() -> None:
    big, small = _face(300, 300, 60), _face(700, 100, 39)
    assert pick_face([big, small], 1000, 800, Pick.LARGEST) == (big, "")
    near = _face(700, 100, 41)  # 60 / 41 = 1.46: not clearly the one meant
    face, why = pick_face([big, near], 1000, 800, Pick.LARGEST)
    assert face is None and "1.46x" in why and "1.5x" in why
    face, why = pick_face([big, small], 1000, 800)  # no rule: refused, as before, saying how
    assert face is None and "2 faces found" in why and "pick" in why


def test_centre_needs_half_the_next_distance_most_of_the_largest_size_and_room() -> None:
    centre, edge = _face(500, 400, 50), _face(900, 100, 60)
    assert pick_face([edge, centre], 1000, 800, Pick.CENTRE) == (centre, "")
    off = _face(650, 400, 50)  # 150 px from the centre against the edge face's 500
    assert pick_face([edge, off], 1000, 800, Pick.CENTRE) == (off, "")
    far = _face(800, 400, 50)  # 300 against 500: not clearly at the centre
    face, why = pick_face([edge, far], 1000, 800, Pick.CENTRE)
    assert face is None and "centre" in why
    small = _face(500, 400, 45)  # under 0.8x the largest's 60
    face, why = pick_face([edge, small], 1000, 800, Pick.CENTRE)
    assert face is None and "0.8x the size" in why
    beside = _face(560, 320, 40)  # a face whose box overlaps the centre one's
    face, why = pick_face([centre, beside], 1000, 800, Pick.CENTRE)
    assert face is None and "overlaps" in why


def test_the_command_line_offers_the_same_rules() -> None:
    from openlfr.cli.watchlist import PickRule

    assert [r.value for r in PickRule] == [p.value for p in Pick]


def test_a_chosen_box_takes_the_face_it_overlaps() -> None:
    big, small = _face(300, 300, 60), _face(700, 100, 20)
    assert pick_face([big, small], 1000, 800, box=small.box.as_list()) == (small, "")
    face, why = pick_face([big, small], 1000, 800, box=[0, 700, 50, 790])
    assert face is None and "chosen box" in why


def _with_bystander(astronaut: np.ndarray, bystander_scale: float) -> np.ndarray:
    """The astronaut's face, and a smaller copy of it in the background's corner."""
    face = astronaut[:300, 80:380]
    # under 0.5 MP, so that detection keeps its upsampling and finds the small face
    canvas = np.full((560, 800, 3), 90, np.uint8)
    canvas[130:430, 250:550] = face
    small = cv2.resize(face, None, fx=bystander_scale, fy=bystander_scale)
    canvas[20 : 20 + small.shape[0], 20 : 20 + small.shape[1]] = small
    return canvas


def _subject(client, manager) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/api/watchlists", headers=manager, json={"name": "wl"}).status_code == 201
    body = {"name": "eileen", "category": "missing-at-risk", "reason": "test", **BASIS}
    assert client.post("/api/watchlists/wl/subjects", headers=manager, json=body).status_code == 201


def _enrol(client, manager, photo: bytes, name: str = "p.jpg", **form: str):  # type: ignore[no-untyped-def]
    """Upload ``photo`` as eileen's reference image on watchlist wl, with ``form`` fields."""
    return client.post(
        "/api/watchlists/wl/subjects/eileen/images",
        headers=manager,
        files={"file": (name, photo)},
        data=form,
    )


def test_enrol_endpoint_picks_the_dominant_face_and_records_its_box(
    client, store, astronaut
) -> None:
    manager = login(client, Role.WATCHLIST_MANAGER)
    _subject(client, manager)
    photo = jpeg(_with_bystander(astronaut, 0.45))

    preview = client.post(
        "/api/watchlists/wl/faces", headers=manager, files={"file": ("p.jpg", photo)}
    )
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert len(shown["faces"]) == 2 and shown["picks"]["largest"] == 0
    assert shown["picks"]["centre"] == 0  # the big face is also at the centre
    big = shown["faces"][0]["box"]
    assert big[0] >= 250 and big[2] <= 550  # the face pasted at x 250-550

    refused = _enrol(client, manager, photo)
    assert refused.status_code == 422 and "2 faces found" in refused.json()["detail"]
    taken = _enrol(client, manager, photo, pick="largest")
    assert taken.status_code == 201, taken.text
    assert taken.json()["face_box"] == big
    with store() as session:
        image = session.scalar(select(ReferenceImage))
        assert image.width == 800 and image.height == 560  # kept whole
        assert image.templates[0].box == big

    # a chosen box (the console's click) takes the bystander, a bad box is refused
    tiny = shown["faces"][1]["box"]
    mirrored = jpeg(_with_bystander(astronaut, 0.45)[:, ::-1].copy())
    again = _enrol(client, manager, mirrored, "q.jpg", box="1,2,3")
    assert again.status_code == 422 and "x1,y1,x2,y2" in again.json()["detail"]
    other_bytes = _with_bystander(astronaut, 0.45)
    other_bytes[-1, -1] = 0  # the same faces in a photo not yet enrolled
    bystander = _enrol(client, manager, jpeg(other_bytes), "r.jpg", box=",".join(map(str, tiny)))
    assert bystander.status_code == 201, bystander.text
    assert bystander.json()["face_box"] == tiny


def test_enrol_endpoint_refuses_two_faces_of_a_size_with_the_reason(
    client, store, astronaut
) -> None:
    manager = login(client, Role.WATCHLIST_MANAGER)
    _subject(client, manager)
    photo = jpeg(_with_bystander(astronaut, 0.9))
    refused = _enrol(client, manager, photo, pick="largest")
    assert refused.status_code == 422, refused.text
    assert "1.5x" in refused.json()["detail"]
    with store() as session:
        assert session.scalar(select(ReferenceImage)) is None


def test_import_pick_largest_enrols_photos_with_a_bystander(tmp_path, astronaut) -> None:
    person = tmp_path / "people" / "eileen"
    person.mkdir(parents=True)
    (person / "bystander.jpg").write_bytes(jpeg(_with_bystander(astronaut, 0.45)))
    (person / "pair.jpg").write_bytes(jpeg(_with_bystander(astronaut, 0.9)))
    runner = CliRunner()
    assert runner.invoke(app, ["watchlist", "create", "wl"]).exit_code == 0
    args = ["watchlist", "import", "wl", str(tmp_path / "people"), "--category", "missing-at-risk"]
    args += ["--reason", "r", "--legal-basis", "l", "--authorised-by", "a", "--workers", "1"]
    plain = runner.invoke(app, args)
    assert plain.exit_code == 1 and "2 faces found" in plain.output
    picked = runner.invoke(app, [*args, "--pick", "largest"])
    assert picked.exit_code == 1  # the pair is still refused, and says why
    assert "1 images enrolled" in picked.output and "1.5x" in picked.output


def test_the_reviewer_is_shown_which_face_the_reference_photo_was_enrolled_for(
    client, store, astronaut
) -> None:
    from service_support import plan_deployment

    from openlfr.store.models import Alert

    manager = login(client, Role.WATCHLIST_MANAGER)
    _subject(client, manager)
    photo = jpeg(_with_bystander(astronaut, 0.45))
    enrolled = _enrol(client, manager, photo, pick="largest").json()
    scene = plan_deployment(store, watchlist="wl")
    with store() as session:
        image = session.get(ReferenceImage, enrolled["id"])
        alert = Alert(
            id="a1",
            deployment_id=scene.deployment_id,
            camera_id=scene.camera_id,
            track=1,
            frame=1,
            time_s=0.1,
            subject_id=image.subject_id,
            subject_name="eileen",
            score=0.9,
            similarity=0.9,
            box=[0, 0, 10, 10],
            latency_s=0.1,
            probe_image=photo,
            reference_image=image.content,  # as the snapshot copies it
        )
        session.add(alert)
        session.commit()
    reviewer = login(client, Role.REVIEWER)
    shown = client.get("/api/alerts/a1", headers=reviewer).json()
    assert shown["reference_box"] == enrolled["face_box"]
    listed = client.get("/api/alerts", headers=reviewer).json()
    assert listed[0]["reference_box"] is None  # one alert's view only: no hashing per list row
