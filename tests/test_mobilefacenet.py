"""The second-generation face model end to end on real faces: enrol and find people, re-embed a
watchlist from its kept images, a deployment on the new model, and no search across models.

Skips, saying why, where MobileFaceNet is not installed ('openlfr models install') or the
shared data is absent."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from openlfr.cli import app
from openlfr.governance.authorisation import authorise_deployment
from openlfr.governance.policy import Policy
from openlfr.live.deployment import DeploymentError, create_deployment, run_deployment
from openlfr.store.db import open_store
from openlfr.store.models import Alert, AuditEntry, SnapshotTemplate, Template
from openlfr.vision import find_faces
from openlfr.vision.models import _units, get_model

MFN, DLIB = "mobilefacenet-v1", "dlib-resnet-v1"
CAST = ["amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart"]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _installed() -> None:
    if not _units()[MFN].installed():
        pytest.skip(f"{MFN} is not installed: run 'openlfr models install'")


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _import(name: str, folder: Path, *extra: str) -> None:
    assert _run("watchlist", "create", name)[0] == 0
    code, _, err = _run(
        "watchlist", "import", name, str(folder), "--category", "wanted-by-courts",
        "--reason", "test enrolment", "--legal-basis", "test", "--authorised-by", "insp-test",
        *extra,
    )  # fmt: skip
    assert code == 0, err


@pytest.fixture
def cast(test_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Eight people: photo 1 of each to enrol, photos 3-5 to search."""
    source = test_data / "faces/misc/faceapi_js/examples/images"
    people, probes = tmp_path / "people", tmp_path / "probes"
    probes.mkdir()
    for name in CAST:
        (people / name).mkdir(parents=True)
        shutil.copy(source / name / f"{name}1.jpg", people / name)
        for i in (3, 4, 5):
            shutil.copy(source / name / f"{name}{i}.jpg", probes)
    return people, probes


def test_the_default_model_is_mobilefacenet_once_installed(astronaut: np.ndarray) -> None:
    model = get_model()
    assert model.name == MFN and model.embedding_size == 192 and model.chip_size == 112
    face = find_faces(astronaut)[0]
    assert face.model == MFN and face.chip.shape == (112, 112, 3)
    assert face.embedding.shape == (192,) and abs(np.linalg.norm(face.embedding) - 1) < 1e-5
    # The mirror image of the face is the same person, far above any stranger's similarity.
    mirrored = find_faces(astronaut[:, ::-1].copy())[0]
    assert float(face.embedding @ mirrored.embedding) > 0.9


def test_the_measured_variants_locate_the_same_face(astronaut: np.ndarray) -> None:
    from openlfr.vision.models.mobilefacenet import MobileFaceNet

    default = find_faces(astronaut)[0]
    variants = (
        MobileFaceNet(points="mtcnn"),
        MobileFaceNet(detector="mtcnn"),
        MobileFaceNet(detector="mtcnn", points="dlib68"),
    )
    for variant in variants:
        face = find_faces(astronaut, model=variant)[0]
        # Eye centres, nose tip, mouth corners: within a few pixels of dlib's 68 points' five.
        assert np.abs(face.landmarks - default.landmarks).max() < 5, variant
        assert float(face.embedding @ default.embedding) > 0.9
    with pytest.raises(ValueError, match="aligns on"):
        MobileFaceNet(points="magic")
    # dlib's predictor gets MTCNN's box made square, as HOG's boxes are.
    box = variants[2].detect(astronaut)[0]
    assert box.width == box.height
    assert variants[1].detect(astronaut)[0].height > box.height


def test_enrol_and_find_people_with_mobilefacenet(cast: tuple[Path, Path]) -> None:
    people, probes = cast
    _import("cast", people)
    code, out, err = _run("search", "--watchlist", "cast", str(probes), "--jsonl", "--top-k", "2")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 24
    right = alerts = 0
    for line in lines:
        best = line["faces"][0]["candidates"][0]
        right += best["subject"] == Path(line["image"]).name[: -len("3.jpg")]
        alerts += line["faces"][0]["alert"]
    assert right >= 23 and alerts >= 18, (right, alerts)  # one photo each on the list
    with open_store()() as session:
        assert {t.model for t in session.scalars(select(Template))} == {MFN}


def test_re_embed_makes_the_new_models_templates_from_the_kept_images(
    cast: tuple[Path, Path],
) -> None:
    people, probes = cast
    _import("cast", people, "--model", DLIB)
    # A search with the new model finds no template of it: nobody is silently compared.
    code, out, err = _run("search", "--watchlist", "cast", str(probes), "--jsonl", "--model", MFN)
    assert code == 0 and "8 subject(s) with no mobilefacenet-v1 template" in err
    faces = [f for line in map(json.loads, out.splitlines()) for f in line["faces"]]
    assert faces and all(not f["candidates"] for f in faces)
    code, _, err = _run("watchlist", "re-embed", "cast", "--model", MFN)
    assert code == 0 and "8 mobilefacenet-v1 templates made, 0 already there" in err, err
    code, _, err = _run("watchlist", "re-embed", "cast", "--model", MFN)
    assert code == 0 and "0 mobilefacenet-v1 templates made, 8 already there" in err
    with open_store()() as session:
        models = session.execute(
            select(Template.model, func.count()).group_by(Template.model)
        ).all()
        assert dict(models) == {DLIB: 8, MFN: 8}
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "re-embed")).all()
        assert len(entries) == 2 and all("amy" not in e.object + e.purpose for e in entries)
    code, out, _ = _run("search", "--watchlist", "cast", str(probes), "--jsonl", "--model", MFN)
    found = [json.loads(line)["faces"][0]["candidates"] for line in out.splitlines()]
    assert sum(bool(c) for c in found) == 24


def test_a_deployment_searches_with_its_own_model_and_refuses_missing_templates(
    test_data: Path,
) -> None:
    from dataclasses import replace

    from service_support import ENTRY

    from openlfr.live.sources import open_source
    from openlfr.store.watchlists import (
        add_reference_image,
        add_subject,
        create_watchlist,
        get_watchlist,
        reembed_watchlist,
    )

    clip = test_data / "video/intel-head-pose-face-detection-male.mp4"
    with open_source(str(clip)) as source:
        first = next(iter(source.frames())).image
    factory = open_store()
    with factory() as session:
        watchlist = create_watchlist(session, "clip")
        import cv2

        face = find_faces(first, model=DLIB, upsample=1)[0]
        subject = add_subject(
            session, watchlist, name="walker", entry=replace(ENTRY, category="missing-at-risk"),
            policy=Policy(),
        )  # fmt: skip
        add_reference_image(
            session, subject, filename="walker.jpg",
            content=cv2.imencode(".jpg", cv2.cvtColor(first, cv2.COLOR_RGB2BGR))[1].tobytes(),
            face=face, width=first.shape[1], height=first.shape[0],
        )  # fmt: skip
        session.commit()

    def plan() -> int:
        with factory() as session:
            deployment = create_deployment(
                session, name="mfn", location="lab", reason="test", watchlist="clip",
                starts_at=datetime.now(UTC), ends_at=datetime.now(UTC) + timedelta(minutes=5),
                cameras={"cam": str(clip)}, created_by="test", dpia_ref="D", equality_ref="E",
                signage_confirmed=True, model=MFN,
            )  # fmt: skip
            authorise_deployment(session, deployment, by="insp-test", policy=Policy())
            session.commit()
            assert deployment.model == MFN
            return deployment.id

    refused = plan()
    missing = "1 current subject.*no mobilefacenet-v1 template.*re-embed"
    with pytest.raises(DeploymentError, match=missing):
        run_deployment(factory, refused)
    with factory() as session:
        report = reembed_watchlist(
            session, get_watchlist(session, "clip"), get_model(MFN), actor="test"
        )
        assert report.embedded == 1
    deployment = run_deployment(factory, plan(), poll_s=0.2)
    with factory() as session:
        alerts = session.scalars(select(Alert).where(Alert.deployment_id == deployment.id)).all()
        assert alerts and alerts[0].score >= 0.5  # cosine of MobileFaceNet, calibrated
        left = session.scalar(select(func.count()).select_from(SnapshotTemplate))
        assert left == 0  # the snapshot is destroyed at the end (invariant 3)
