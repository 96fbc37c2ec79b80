"""The operator service through its HTTP API: log in, watchlists and enrolment by upload,
deployments, alerts and their images, adjudication and outcome, audit, bad input."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_support import (
    BASIS,
    PASSWORD,
    authorise_for_tests,
    insert_alert,
    plan_deployment,
    user_name,
)
from sqlalchemy import delete, select

from openlfr.api.auth import create_user
from openlfr.api.roles import Role
from openlfr.api.throttle import counters
from openlfr.governance.audit import verify_chain
from openlfr.store.models import (
    Adjudication,
    AuditEntry,
    Deployment,
    ReferenceImage,
    Subject,
    Template,
)
from openlfr.vision.models import _units, get_model

MOBILEFACENET, DLIB = "mobilefacenet-v1", "dlib-resnet-v1"
needs_mobilefacenet = pytest.mark.skipif(
    not _units()[MOBILEFACENET].installed(),
    reason="MobileFaceNet is not installed: run 'openlfr models install' "
    "(or point OPENLFR_MODELS_DIR at an installed models folder)",
)


def login(client: TestClient, role: Role) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"name": user_name(role), "password": PASSWORD})
    assert response.status_code == 200, response.text
    client.cookies.clear()  # each test call says who it is, by header
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_login_refuses_wrong_password_counts_it_and_audits_the_login(client, store) -> None:
    bad = client.post("/api/auth/login", json={"name": "reviewer", "password": "nope"})
    assert bad.status_code == 401
    headers = login(client, Role.REVIEWER)
    me = client.get("/api/auth/me", headers=headers)
    assert me.json()["role"] == "reviewer"
    with store() as session:
        actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        # a refusal is counted, not chained (issue 15, finding 4: nobody floods the chain)
        assert counters(session)["login-refused"] == 1
    assert actions == ["login"]


def test_logout_and_expiry_end_the_session(client, store, monkeypatch) -> None:
    headers = login(client, Role.REVIEWER)
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    after = client.get("/api/auth/me", headers=headers)
    assert after.status_code == 401 and "log in again" in after.json()["detail"]
    monkeypatch.setenv("OPENLFR_SESSION_TTL_S", "-1")  # issued already expired
    headers = login(client, Role.REVIEWER)
    expired = client.get("/api/auth/me", headers=headers)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


def test_admin_manages_users_and_a_disabled_user_is_locked_out(client, store) -> None:
    with store() as session:  # the two-person rule needs a second admin to approve
        create_user(session, "admin2", Role.ADMIN, PASSWORD)
        session.commit()
    admin = login(client, Role.ADMIN)
    made = client.post("/api/users", headers=admin, json={"name": "rev2", "role": "reviewer"})
    assert made.status_code == 201 and made.json()["pending_role"] == "reviewer"
    second = client.post("/api/auth/login", json={"name": "admin2", "password": PASSWORD}).json()
    client.cookies.clear()
    approved = client.post(
        f"/api/users/{made.json()['id']}/approve",
        headers={"Authorization": f"Bearer {second['token']}"},
    )
    assert approved.status_code == 200 and approved.json()["active"]
    code = approved.json()["enrolment_code"]
    enrol = {"name": "rev2", "code": code, "password": "short"}
    assert client.post("/api/auth/enrol", json=enrol).status_code == 422
    enrolled = client.post("/api/auth/enrol", json={**enrol, "password": "x" * 12})
    assert enrolled.status_code == 200
    token = client.post("/api/auth/login", json={"name": "rev2", "password": "x" * 12}).json()
    client.cookies.clear()
    rev2 = {"Authorization": f"Bearer {token['token']}"}
    assert client.get("/api/auth/me", headers=rev2).status_code == 200
    assert (
        client.patch(
            f"/api/users/{made.json()['id']}", headers=admin, json={"active": False}
        ).status_code
        == 200
    )
    assert client.get("/api/auth/me", headers=rev2).status_code == 401


@pytest.mark.slow
def test_enrol_by_upload_and_view_is_audited(client, store, astronaut) -> None:
    from service_support import jpeg

    face = astronaut[:300, 80:380].copy()  # the portrait alone (the patch is a second "face")
    manager = login(client, Role.WATCHLIST_MANAGER)
    assert client.post("/api/watchlists", headers=manager, json={"name": "demo"}).status_code == 201
    subject = {"name": "eileen", "category": "missing-at-risk", "reason": "test enrolment", **BASIS}
    made = client.post("/api/watchlists/demo/subjects", headers=manager, json=subject)
    assert made.status_code == 201, made.text
    upload = client.post(
        "/api/watchlists/demo/subjects/eileen/images",
        headers=manager,
        files={"file": ("../../etc/eileen.jpg", jpeg(face), "image/jpeg")},
    )
    assert upload.status_code == 201, upload.text
    assert upload.json()["filename"] == "eileen.jpg"  # the path part is dropped
    # one template, of the configured model (MobileFaceNet when installed, else dlib's)
    assert upload.json()["templates"] == [get_model().name]
    assert upload.json()["quality_score"] is not None
    image_id = upload.json()["id"]
    again = client.post(
        "/api/watchlists/demo/subjects/eileen/images",
        headers=manager,
        files={"file": ("e.jpg", jpeg(face), "image/jpeg")},
    )
    assert again.status_code == 409
    shown = client.get("/api/watchlists/demo", headers=manager).json()
    assert shown["subjects"] == 1 and len(shown["subject_list"][0]["images"]) == 1
    assert shown["subject_list"][0]["images"][0]["templates"] == [get_model().name]
    with store() as session:
        assert [t.model for t in session.scalars(select(Template))] == [get_model().name]
    view = client.get(f"/api/watchlists/demo/subjects/eileen/images/{image_id}", headers=manager)
    assert view.status_code == 200 and view.headers["content-type"] == "image/jpeg"
    gone = client.delete("/api/watchlists/demo/subjects/eileen", headers=manager)
    assert gone.status_code == 204
    with store() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert verify_chain(session).ok
    actions = [e.action for e in entries]
    assert actions.count("enrol") == 2 and "view" in actions and "delete" in actions
    # ids and counts only, as the CLI writes them: the log outlives an erasure
    for entry in entries:
        assert "eileen" not in f"{entry.object} {entry.purpose}".lower(), entry.action


def test_upload_refuses_non_images_faceless_images_and_oversized_files(
    client, store, monkeypatch
) -> None:
    manager = login(client, Role.WATCHLIST_MANAGER)
    client.post("/api/watchlists", headers=manager, json={"name": "demo"})
    subject = {"name": "bob", "category": "missing-at-risk", "reason": "test", **BASIS}
    client.post("/api/watchlists/demo/subjects", headers=manager, json=subject)
    url = "/api/watchlists/demo/subjects/bob/images"
    text = client.post(
        url, headers=manager, files={"file": ("a.jpg", b"not an image", "image/jpeg")}
    )
    assert text.status_code == 422 and "not a readable image" in text.json()["detail"]
    from service_support import jpeg

    blank = jpeg(np.full((64, 64, 3), 128, np.uint8))
    faceless = client.post(url, headers=manager, files={"file": ("b.jpg", blank, "image/jpeg")})
    assert faceless.status_code == 422 and "no face found" in faceless.json()["detail"]
    monkeypatch.setenv("OPENLFR_MAX_UPLOAD_BYTES", "1000")
    big = client.post(url, headers=manager, files={"file": ("c.jpg", b"x" * 5000, "image/jpeg")})
    assert big.status_code == 413
    with store() as session:
        assert session.scalar(select(ReferenceImage)) is None  # nothing half-written


def test_bad_names_json_and_ids_get_clear_4xx(client, store) -> None:
    manager = login(client, Role.WATCHLIST_MANAGER)
    for name in ("../etc", "/abs", "a/b", ".hidden", "a\\b", ""):
        r = client.post("/api/watchlists", headers=manager, json={"name": name})
        assert r.status_code == 422, name
    broken = client.post(
        "/api/watchlists",
        headers={**manager, "Content-Type": "application/json"},
        content=b'{"name": ',
    )
    assert broken.status_code == 422 and "invalid request" in broken.json()["detail"]
    assert client.get("/api/watchlists/nope", headers=manager).status_code == 404
    reviewer = login(client, Role.REVIEWER)
    missing = client.get("/api/alerts/0123", headers=reviewer)
    assert missing.status_code == 404 and "no alert" in missing.json()["detail"]
    wrong_type = client.get("/api/deployments/abc", headers=reviewer)
    assert wrong_type.status_code == 422
    nul = client.get("/api/alerts", params={"subject": "a\x00b"}, headers=reviewer)
    assert nul.status_code == 422  # found by schemathesis: PostgreSQL text cannot hold NUL
    huge = client.get(f"/api/deployments/{2**64}", headers=reviewer)  # found by schemathesis
    assert huge.status_code == 422 and "less than or equal" in huge.json()["detail"]
    bad_subject = client.post(
        "/api/watchlists/nope/subjects",
        headers=manager,
        json={"name": "x", "category": "missing-at-risk", "reason": "r", **BASIS},
    )
    assert bad_subject.status_code == 404
    with store() as session:
        assert session.scalar(select(Subject)) is None


def test_deployment_planned_and_refused_start_says_why(client, store) -> None:
    manager = login(client, Role.WATCHLIST_MANAGER)
    client.post("/api/watchlists", headers=manager, json={"name": "empty"})
    officer = login(client, Role.AUTHORISING_OFFICER)
    body = {
        "name": "Op",
        "location": "Square",
        "reason": "why here, why now",
        "watchlist": "empty",
        # within the policy's 12 h (a far-off end fails the length rule before anything else)
        "ends_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        "cameras": [{"name": "north", "source": "/dev/null"}],
    }
    made = client.post("/api/deployments", headers=officer, json=body)
    assert made.status_code == 201, made.text
    assert made.json()["created_by"] == user_name(Role.AUTHORISING_OFFICER)
    assert made.json()["model"] == get_model().name  # none named: the configured one
    started = client.post(f"/api/deployments/{made.json()['id']}/start", headers=officer)
    assert started.status_code == 409 and "not been authorised" in started.json()["detail"]
    with store() as session:  # authorised (the rules are in test_governance): now the list
        authorise_for_tests(session.get(Deployment, made.json()["id"]))
        session.commit()
    started = client.post(f"/api/deployments/{made.json()['id']}/start", headers=officer)
    assert started.status_code == 409 and "no current subject" in started.json()["detail"]
    past = client.post(
        "/api/deployments", headers=officer, json={**body, "ends_at": "2000-01-01T00:00:00Z"}
    )
    assert past.status_code == 422 and "must end after" in past.json()["detail"]
    board = client.get("/api/deployments", headers=login(client, Role.REVIEWER)).json()
    assert board[0]["status"] == "planned" and board[0]["alerts"] == 0


def test_alert_images_decision_and_outcome(client, store, astronaut) -> None:
    scene = plan_deployment(store)
    alert_id = insert_alert(store, scene, astronaut[:200, :200], astronaut[100:300, 100:300])
    reviewer = login(client, Role.REVIEWER)
    queue = client.get("/api/alerts", params={"state": "pending"}, headers=reviewer).json()
    assert [a["id"] for a in queue] == [alert_id]
    assert queue[0]["camera"] == "north" and queue[0]["deployment"] == "Test op"
    for which in ("probe", "reference"):
        image = client.get(f"/api/alerts/{alert_id}/images/{which}", headers=reviewer)
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    early = client.post(
        f"/api/alerts/{alert_id}/outcome", headers=reviewer, json={"outcome": "arrested"}
    )
    assert early.status_code == 409
    decided = client.post(
        f"/api/alerts/{alert_id}/adjudication", headers=reviewer, json={"decision": "match"}
    )
    assert decided.status_code == 201 and decided.json()["adjudication"]["decision"] == "match"
    twice = client.post(
        f"/api/alerts/{alert_id}/adjudication", headers=reviewer, json={"decision": "no-match"}
    )
    assert twice.status_code == 409
    bad = client.post(f"/api/alerts/{alert_id}/outcome", headers=reviewer, json={"outcome": "shot"})
    assert bad.status_code == 422
    done = client.post(
        f"/api/alerts/{alert_id}/outcome", headers=reviewer, json={"outcome": "engaged"}
    )
    assert done.json()["adjudication"]["outcome"] == "engaged"
    assert client.get("/api/alerts", params={"state": "pending"}, headers=reviewer).json() == []
    insert_alert(store, scene, astronaut[:200, :200], astronaut[100:300, 100:300])
    idle = plan_deployment(store)  # a second deployment without alerts: counted apart
    board = {d["id"]: d for d in client.get("/api/deployments", headers=reviewer).json()}
    assert (board[scene.deployment_id]["alerts"], board[scene.deployment_id]["adjudicated"]) == (
        2,
        1,
    )
    assert (board[idle.deployment_id]["alerts"], board[idle.deployment_id]["adjudicated"]) == (0, 0)
    one = client.get(f"/api/deployments/{scene.deployment_id}", headers=reviewer).json()
    assert (one["alerts"], one["adjudicated"]) == (2, 1)
    with store() as session:
        adj = session.scalar(select(Adjudication))
        assert (adj.decision, adj.outcome, adj.reviewer) == ("match", "engaged", "reviewer")
        actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions[-4:] == ["view", "view", "adjudicate", "outcome"]


def test_auditor_browses_exports_and_verifies(client, store) -> None:
    auditor = login(client, Role.AUDITOR)
    entries = client.get("/api/audit", headers=auditor).json()
    assert [e["action"] for e in entries] == ["login"]
    as_csv = client.get("/api/audit/export", params={"format": "csv"}, headers=auditor)
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines()[0] == "id,at,actor,action,object,purpose,prev_hash,hash"
    as_json = client.get("/api/audit/export", params={"format": "json"}, headers=auditor).json()
    assert [e["action"] for e in as_json] == ["login", "export", "export"]
    assert client.get("/api/audit/verify", headers=auditor).json()["ok"] is True
    with store() as session:  # someone edits history
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).first()
        entry.actor = "somebody-else"
        session.commit()
    verdict = client.get("/api/audit/verify", headers=auditor).json()
    assert verdict["ok"] is False and verdict["first_bad_id"] == entry.id


def test_openapi_is_published(client) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/alerts/{alert_id}/adjudication" in spec["paths"]
    assert json.dumps(spec)  # serialisable as published
    assert client.get("/").status_code == 200


def test_body_limit_refuses_oversized_json(client, monkeypatch) -> None:
    manager = login(client, Role.WATCHLIST_MANAGER)
    monkeypatch.setenv("OPENLFR_MAX_UPLOAD_BYTES", "10")
    huge = {"name": "x", "description": "d" * 200_000}
    response = client.post("/api/watchlists", headers=manager, json=huge)
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert io  # keep import for upload helpers


def test_no_match_suppression_is_opt_in_and_audited(client, store, astronaut) -> None:
    from openlfr.store.models import Suppression

    reviewer = login(client, Role.REVIEWER)
    plain = plan_deployment(store)
    first = insert_alert(store, plain, astronaut[:100, :100], astronaut[:100, :100])
    refused = client.post(
        f"/api/alerts/{first}/adjudication",
        headers=reviewer,
        json={"decision": "no-match", "suppress": True},
    )
    assert refused.status_code == 422 and "does not allow" in refused.json()["detail"]
    opted = plan_deployment(store, suppress=True)
    second = insert_alert(store, opted, astronaut[:100, :100], astronaut[:100, :100])
    wrong = client.post(
        f"/api/alerts/{second}/adjudication",
        headers=reviewer,
        json={"decision": "match", "suppress": True},
    )
    assert wrong.status_code == 422
    done = client.post(
        f"/api/alerts/{second}/adjudication",
        headers=reviewer,
        json={"decision": "no-match", "suppress": True},
    )
    assert done.status_code == 201
    with store() as session:
        rows = session.scalars(select(Suppression)).all()
        assert [(r.deployment_id, r.track, r.camera) for r in rows] == [
            (opted.deployment_id, 7, "north")
        ]
        assert session.scalar(select(Adjudication).where(Adjudication.alert_id == first)) is None
        actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions[-2:] == ["suppress", "adjudicate"]


# --- face models ------------------------------------------------------------------------------


def test_models_are_listed_with_installed_flag_default_and_card(client, monkeypatch) -> None:
    for role in (Role.ADMIN, Role.REVIEWER):  # any signed-in role: no personal data in it
        listed = client.get("/api/models", headers=login(client, role))
        assert listed.status_code == 200, listed.text
    models = {m["name"]: m for m in listed.json()}
    assert set(models) == {MOBILEFACENET, DLIB}
    for name, unit in _units().items():
        assert models[name]["installed"] is unit.installed()
        assert models[name]["embedding_size"] == unit.embedding_size
        assert models[name]["runtime"] == unit.runtime and models[name]["detector"]
        assert models[name]["card"]["licence"] == unit.card.licence
        assert set(models[name]["card"]) >= {"title", "source", "training_data", "not_fit_for"}
    assert (models[MOBILEFACENET]["embedding_size"], models[DLIB]["embedding_size"]) == (192, 128)
    assert [m["name"] for m in models.values() if m["default"]] == [get_model().name]
    assert models[DLIB]["aliases"] == ["dlib"]
    monkeypatch.setenv("OPENLFR_MODEL", "dlib")  # the default follows the configuration
    again = client.get("/api/models", headers=login(client, Role.AUDITOR)).json()
    assert [m["name"] for m in again if m["default"]] == [DLIB]


def _two_subjects(client: TestClient, manager: dict[str, str], astronaut) -> list[int]:  # type: ignore[no-untyped-def]
    """Watchlist 'demo' with two subjects of one upload each; returns the image ids."""
    from service_support import jpeg

    face = astronaut[:300, 80:380].copy()
    assert client.post("/api/watchlists", headers=manager, json={"name": "demo"}).status_code == 201
    ids = []
    for name, image in (("eileen", face), ("mirror", face[:, ::-1].copy())):
        subject = {"name": name, "category": "missing-at-risk", "reason": "test", **BASIS}
        assert client.post("/api/watchlists/demo/subjects", headers=manager, json=subject)
        upload = client.post(
            f"/api/watchlists/demo/subjects/{name}/images",
            headers=manager,
            files={"file": (f"{name}.jpg", jpeg(image), "image/jpeg")},
        )
        assert upload.status_code == 201, upload.text
        ids.append(upload.json()["id"])
    return ids


def _plan_body(**changes: object) -> dict[str, object]:
    return {
        "name": "Op",
        "location": "Square",
        "reason": "why here, why now",
        "watchlist": "demo",
        "ends_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        "cameras": [{"name": "north", "source": "/dev/null"}],
        **changes,
    }


@pytest.mark.slow
@needs_mobilefacenet
def test_reembed_makes_the_missing_templates_once_and_unlocks_the_deployment(
    client, store, astronaut, monkeypatch
) -> None:
    manager = login(client, Role.WATCHLIST_MANAGER)
    monkeypatch.setenv("OPENLFR_MODEL", DLIB)  # enrolled when dlib was the configured model
    image_ids = _two_subjects(client, manager, astronaut)
    shown = client.get("/api/watchlists/demo", headers=manager).json()
    assert [i["templates"] for s in shown["subject_list"] for i in s["images"]] == [[DLIB]] * 2
    monkeypatch.delenv("OPENLFR_MODEL")

    # a deployment for MobileFaceNet on the dlib-only list: planned, refused at start
    officer = login(client, Role.AUTHORISING_OFFICER)
    made = client.post("/api/deployments", headers=officer, json=_plan_body(model="mobilefacenet"))
    assert made.status_code == 201, made.text
    assert made.json()["model"] == MOBILEFACENET  # the alias, stored by its full name
    with store() as session:
        authorise_for_tests(session.get(Deployment, made.json()["id"]))
        session.commit()
    started = client.post(f"/api/deployments/{made.json()['id']}/start", headers=officer)
    assert started.status_code == 409, started.text
    detail = started.json()["detail"]
    assert "2 current subject(s)" in detail and "re-embed" in detail and MOBILEFACENET in detail
    board = client.get(f"/api/deployments/{made.json()['id']}", headers=officer).json()
    assert board["status"] == "planned" and board["model"] == MOBILEFACENET

    done = client.post(
        "/api/watchlists/demo/re-embed", headers=manager, json={"model": MOBILEFACENET}
    )
    assert done.status_code == 200, done.text
    assert done.json() == {"model": MOBILEFACENET, "embedded": 2, "already": 0, "problems": []}
    again = client.post("/api/watchlists/demo/re-embed", headers=manager)  # default: configured
    assert again.json() == {"model": MOBILEFACENET, "embedded": 0, "already": 2, "problems": []}

    shown = client.get("/api/watchlists/demo", headers=manager).json()
    images = [i for s in shown["subject_list"] for i in s["images"]]
    assert [i["id"] for i in images] == image_ids
    assert [i["templates"] for i in images] == [[DLIB, MOBILEFACENET]] * 2
    with store() as session:
        for image_id in image_ids:
            image = session.get(ReferenceImage, image_id)
            assert sorted(t.model for t in image.templates) == [DLIB, MOBILEFACENET]
            quality = image.template_for(MOBILEFACENET).quality_score
            assert [i["quality_score"] for i in images if i["id"] == image_id] == [quality]
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "re-embed").order_by(AuditEntry.id)
        ).all()
        assert [(e.actor, e.object) for e in entries] == [
            ("watchlist_manager", f"watchlist:demo:model={MOBILEFACENET}:templates={n}")
            for n in (2, 0)
        ]
        # each subject's templates came with its own entry, in the same commit
        per_subject = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "re-embed-subject")
        ).all()
        subject_ids = {session.get(ReferenceImage, i).subject_id for i in image_ids}
        assert sorted(e.object for e in per_subject) == sorted(
            f"watchlist:demo:subject-id:{s}:model={MOBILEFACENET}:templates=1" for s in subject_ids
        )
        everything = session.scalars(select(AuditEntry)).all()
        assert not any(
            name in f"{e.object} {e.purpose}" for e in everything for name in ("eileen", "mirror")
        )
        assert verify_chain(session).ok


def test_an_interrupted_reembed_keeps_its_templates_audited(
    client, store, astronaut, monkeypatch
) -> None:
    from openlfr.store.watchlists import get_watchlist, reembed_watchlist

    manager = login(client, Role.WATCHLIST_MANAGER)
    monkeypatch.setenv("OPENLFR_MODEL", DLIB)
    _two_subjects(client, manager, astronaut)
    with store() as session:  # as if enrolled with another model: no dlib template yet
        session.execute(delete(Template))
        session.commit()
    seen = []

    def stop_after_one() -> None:
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with store() as session:
        watchlist = get_watchlist(session, "demo")
        with pytest.raises(KeyboardInterrupt):
            reembed_watchlist(
                session, watchlist, get_model(DLIB), actor="m", on_image=stop_after_one
            )
    with store() as session:
        first, second = get_watchlist(session, "demo").subjects
        assert first.images[0].template_for(DLIB) is not None
        assert second.images[0].template_for(DLIB) is None
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "re-embed-subject")
        ).all()
        assert [e.object for e in entries] == [
            f"watchlist:demo:subject-id:{first.id}:model={DLIB}:templates=1"
        ]


def test_unknown_model_is_422_and_a_model_not_installed_409(client, store, monkeypatch) -> None:
    manager = login(client, Role.WATCHLIST_MANAGER)
    officer = login(client, Role.AUTHORISING_OFFICER)
    client.post("/api/watchlists", headers=manager, json={"name": "demo"})
    subject = {"name": "bob", "category": "missing-at-risk", "reason": "test", **BASIS}
    client.post("/api/watchlists/demo/subjects", headers=manager, json=subject)

    unknown = client.post("/api/watchlists/demo/re-embed", headers=manager, json={"model": "vgg"})
    assert unknown.status_code == 422 and "unknown face model" in unknown.json()["detail"]
    plan = client.post("/api/deployments", headers=officer, json=_plan_body(model="vgg"))
    assert plan.status_code == 422 and "unknown face model" in plan.json()["detail"]
    missing = client.post("/api/watchlists/nope/re-embed", headers=manager, json={"model": DLIB})
    assert missing.status_code == 404

    # MobileFaceNet as if its weights were absent from this machine
    monkeypatch.setattr(_units()[MOBILEFACENET], "installed", lambda: False)
    listed = {m["name"]: m for m in client.get("/api/models", headers=manager).json()}
    assert listed[MOBILEFACENET]["installed"] is False and listed[DLIB]["default"] is True
    absent = client.post(
        "/api/watchlists/demo/re-embed", headers=manager, json={"model": "mobilefacenet"}
    )
    assert absent.status_code == 409 and "openlfr models install" in absent.json()["detail"]
    plan = client.post("/api/deployments", headers=officer, json=_plan_body(model=MOBILEFACENET))
    assert plan.status_code == 409 and "openlfr models install" in plan.json()["detail"]
    monkeypatch.setenv("OPENLFR_MODEL", MOBILEFACENET)  # configured, yet not installed
    upload = client.post(
        "/api/watchlists/demo/subjects/bob/images",
        headers=manager,
        files={"file": ("b.jpg", b"not even read", "image/jpeg")},
    )
    assert upload.status_code == 409 and "openlfr models install" in upload.json()["detail"]
    with store() as session:  # nothing written by any refusal
        assert session.scalar(select(Deployment)) is None
        assert session.scalar(select(ReferenceImage)) is None
        actions = {e.action for e in session.scalars(select(AuditEntry))}
    assert "re-embed" not in actions and "deployment-plan" not in actions
