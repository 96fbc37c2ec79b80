"""The store: migrations from empty, policy checks on enrolment, expiry, deletion cascades."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from service_support import ENTRY
from sqlalchemy import func, inspect, select

from openlfr.errors import NotFoundError, OpenLFRError, PolicyError
from openlfr.governance.policy import Policy, load_policy
from openlfr.store import ReferenceImage, Template, open_store
from openlfr.store.db import make_engine
from openlfr.store.watchlists import (
    add_reference_image,
    add_subject,
    create_watchlist,
    get_watchlist,
    load_templates,
    remove_subject,
)
from openlfr.vision.detect import Detection
from openlfr.vision.faces import Face
from openlfr.vision.quality import Quality

DLIB = "dlib-resnet-v1"


def _face(seed: int) -> Face:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return Face(
        box=Detection(0, 0, 10, 10, 1.0),
        landmarks=np.zeros((5, 2), np.float32),
        quality=Quality(10, 5.0, 100.0, 1.0, 0.0),
        chip=None,
        embedding=vector / np.linalg.norm(vector),
        model=DLIB,
    )


def _subject(session, watchlist, name: str, **entry_fields):  # type: ignore[no-untyped-def]
    entry = replace(ENTRY, **entry_fields)
    return add_subject(session, watchlist, name=name, entry=entry, policy=Policy())


@pytest.fixture(autouse=True)
def _backend(database_url: str) -> str:
    """Every store test runs on SQLite, and on PostgreSQL when OPENLFR_TEST_POSTGRES_URL is set."""
    return database_url


def test_migrations_create_the_schema_from_empty(openlfr_home: Path, database_url: str) -> None:
    open_store()
    engine = make_engine()
    tables = set(inspect(engine).get_table_names())
    assert {"watchlists", "subjects", "reference_images", "templates", "alembic_version"} <= tables
    assert {"users", "auth_sessions", "adjudications", "audit_log", "suppressions"} <= tables
    if database_url.startswith("sqlite"):
        assert (openlfr_home / "openlfr.sqlite3").is_file()
    open_store()  # a second run finds nothing to do


def test_any_sqlalchemy_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    with open_store(url)() as session:
        create_watchlist(session, "w")
        session.commit()
    assert (tmp_path / "elsewhere.db").is_file()


def test_enrol_keeps_image_and_model_tagged_template() -> None:
    with open_store()() as session:
        watchlist = create_watchlist(session, "w")
        subject = _subject(session, watchlist, "alice")
        add_reference_image(
            session,
            subject,
            filename="a.jpg",
            content=b"jpeg bytes",
            face=_face(1),
            width=10,
            height=10,
        )
        session.commit()
        image = session.scalar(select(ReferenceImage))
        assert image.content == b"jpeg bytes" and len(image.sha256) == 64
        assert [t.model for t in image.templates] == [DLIB]
        templates = load_templates(session, watchlist, model=DLIB)
        np.testing.assert_allclose(templates.embeddings[0], _face(1).embedding)
        assert templates.subject_names == {subject.id: "alice"}


def test_one_image_holds_a_template_per_model_and_search_loads_one_model() -> None:
    from openlfr.store.watchlists import template_of

    with open_store()() as session:
        watchlist = create_watchlist(session, "w")
        alice, bob = _subject(session, watchlist, "alice"), _subject(session, watchlist, "bob")
        for i, subject in enumerate([alice, bob]):
            add_reference_image(
                session,
                subject,
                filename=f"{i}.jpg",
                content=bytes([i]),
                face=_face(i),
                width=1,
                height=1,
            )
        other = replace(_face(7), embedding=np.ones(192, np.float32) / np.sqrt(192))
        other.model = "mobilefacenet-v1"
        alice.images[0].templates.append(template_of(other))
        session.commit()
        dlib = load_templates(session, watchlist, model=DLIB)
        mfn = load_templates(session, watchlist, model="mobilefacenet-v1")
        assert dlib.embeddings.shape == (2, 128) and dlib.without_template == []
        assert mfn.embeddings.shape == (1, 192) and mfn.subject_names == {alice.id: "alice"}
        assert mfn.without_template == ["bob"]  # named, so that a deployment can refuse
        # One template per image and model: a second of the same model is refused.
        alice.images[0].templates.append(template_of(other))
        with pytest.raises(Exception, match="(?i)unique|duplicate"):
            session.commit()


def test_policy_refuses_unknown_category_missing_reason_and_past_expiry() -> None:
    with open_store()() as session:
        watchlist = create_watchlist(session, "w")
        with pytest.raises(PolicyError, match="not allowed"):
            _subject(session, watchlist, "a", category="associates")
        with pytest.raises(OpenLFRError, match="reason"):
            _subject(session, watchlist, "a", reason="  ")
        with pytest.raises(OpenLFRError, match="past"):
            _subject(session, watchlist, "a", expires_on=date.today() - timedelta(days=1))


def test_policy_file_changes_the_categories(openlfr_home: Path) -> None:
    openlfr_home.mkdir(parents=True, exist_ok=True)
    (openlfr_home / "policy.toml").write_text('categories = ["missing-at-risk", "witness"]\n')
    policy = load_policy()
    assert policy.categories == ("missing-at-risk", "witness")
    with pytest.raises(PolicyError):
        policy.check_category("wanted-by-courts")
    (openlfr_home / "policy.toml").write_text("categories = 3\n")
    with pytest.raises(PolicyError, match="categories"):
        load_policy()


def test_expired_subjects_are_left_out_of_search() -> None:
    with open_store()() as session:
        watchlist = create_watchlist(session, "w")
        for i, name in enumerate(["current", "lapsing"]):
            subject = _subject(session, watchlist, name, expires_on=date.today())
            add_reference_image(
                session,
                subject,
                filename=f"{i}.jpg",
                content=bytes([i]),
                face=_face(i),
                width=1,
                height=1,
            )
        session.commit()
        assert len(load_templates(session, watchlist, model=DLIB).embeddings) == 2
        tomorrow = date.today() + timedelta(days=1)
        later = load_templates(session, watchlist, model=DLIB, today=tomorrow)
        assert len(later.embeddings) == 0 and later.expired == ["current", "lapsing"]


def test_import_refuses_a_bad_entry_before_reading_any_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openlfr.store import enrol

    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "1.jpg").write_bytes(b"not read")

    def analyse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("images were analysed for an entry that cannot be enrolled")

    monkeypatch.setattr(enrol, "analyse_files", analyse)
    with open_store()() as session:
        watchlist = create_watchlist(session, "w")
        past = replace(ENTRY, expires_on=date.today() - timedelta(days=1))
        for entry, error in [
            (replace(ENTRY, reason=" "), "reason"),
            (past, "past"),
            (replace(ENTRY, authorised_by=""), "authorised"),
        ]:
            with pytest.raises(OpenLFRError, match=error):
                enrol.import_folder(session, watchlist, tmp_path, entry=entry, policy=Policy())


def test_removing_a_subject_removes_its_images_and_templates() -> None:
    with open_store()() as session:
        watchlist = create_watchlist(session, "w")
        subject = _subject(session, watchlist, "alice")
        add_reference_image(
            session, subject, filename="a.jpg", content=b"x", face=_face(1), width=1, height=1
        )
        session.commit()
        assert remove_subject(session, watchlist, "alice") == subject.id
        session.commit()
        assert session.scalar(select(func.count()).select_from(ReferenceImage)) == 0
        assert session.scalar(select(func.count()).select_from(Template)) == 0
        with pytest.raises(NotFoundError):
            remove_subject(session, watchlist, "alice")


def test_duplicate_and_unknown_watchlists() -> None:
    with open_store()() as session:
        create_watchlist(session, "w")
        with pytest.raises(OpenLFRError, match="already exists"):
            create_watchlist(session, "w")
        with pytest.raises(NotFoundError, match="no watchlist"):
            get_watchlist(session, "nope")


def test_migration_0005_keeps_the_templates_and_allows_one_per_model(database_url: str) -> None:
    """A store made before face models were units upgrades with its templates intact, tagged
    dlib, its deployments marked dlib, and room for a second model's template per image."""
    from alembic import command
    from sqlalchemy import text

    from openlfr.store.db import alembic_config

    engine = make_engine(database_url)
    cfg = alembic_config(database_url)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0004")
        connection.execute(text("INSERT INTO watchlists (id, name, description, created_at) "
                                "VALUES (1, 'w', '', '2026-01-01')"))  # fmt: skip
        connection.execute(text(
            "INSERT INTO subjects (id, watchlist_id, name, category, reason, image_source, "
            "added_by, created_at) VALUES (1, 1, 'alice', 'wanted-by-courts', 'r', '', 'pc', "
            "'2026-01-01')"
        ))  # fmt: skip
        connection.execute(text(
            "INSERT INTO reference_images (id, subject_id, filename, content, sha256, width, "
            "height, created_at) VALUES (1, 1, 'a.jpg', :c, 'x', 1, 1, '2026-01-01')"
        ), {"c": b"jpeg"})  # fmt: skip
        connection.execute(text(
            "INSERT INTO templates (id, image_id, model, embedding, box, quality, quality_score) "
            "VALUES (1, 1, 'dlib-resnet-v1', :e, '[0, 0, 1, 1]', '{}', 0.5)"
        ), {"e": _face(1).embedding.astype("<f4").tobytes()})  # fmt: skip
        command.upgrade(cfg, "head")
    with open_store(database_url)() as session:
        image = session.get(ReferenceImage, 1)
        assert [t.model for t in image.templates] == [DLIB]
        other = replace(_face(2), model="mobilefacenet-v1")
        from openlfr.store.watchlists import template_of

        image.templates.append(template_of(other))
        session.commit()  # a new id from the table's sequence, after the copied rows
        assert sorted(t.model for t in image.templates) == [DLIB, "mobilefacenet-v1"]
        assert session.scalar(select(func.count()).select_from(Template)) == 2
