"""Governance through the service: transparency reports (the figures are
``openlfr.governance.reports``'s, the files what they say) and subject rights (find, export as a
zip, erase; audited without the name). Roles: tests/test_api_roles.py walks every route."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from service_support import (
    adjudicate,
    enrol_directly,
    insert_alert,
    jpeg,
    mark_ran,
    plan_deployment,
    token_for,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from openlfr.api.roles import Role
from openlfr.governance.audit import verify_chain
from openlfr.governance.reports import build_report
from openlfr.store.models import Alert, AuditEntry, ReferenceImage, Subject


def as_(store: sessionmaker[Session], role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(store, role)}"}


@pytest.fixture
def ran(store, astronaut) -> int:  # type: ignore[no-untyped-def]
    """A deployment that ran 3 h over 2,000 faces: 4 alerts, 2 true (1 arrest), 1 false."""
    face = astronaut[:300, 80:380].copy()
    scene = plan_deployment(store)
    decisions = [("match", "arrested"), ("match", "engaged"), ("no-match", None), None]
    for decided in decisions:
        alert_id = insert_alert(store, scene, face, face, subject="eileen")
        if decided:
            adjudicate(store, alert_id, *decided)
    mark_ran(store, scene, faces=2000, hours=3)
    return scene.deployment_id


def _period() -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {"from": str(today - timedelta(days=2)), "to": str(today + timedelta(days=1))}


def test_report_figures_are_the_governance_reports(client, store, ran) -> None:  # type: ignore[no-untyped-def]
    answer = client.get(
        "/api/reports", params={"deployment_id": ran}, headers=as_(store, Role.AUDITOR)
    )
    assert answer.status_code == 200, answer.text
    with store() as session:
        expected = build_report(session, deployment_id=ran)
    report = answer.json()
    assert report["deployments"] == [asdict(d) for d in expected.deployments]
    assert report["totals"] == pytest.approx(expected.totals())
    figures = report["deployments"][0]
    assert (figures["alerts"], figures["true_alerts"], figures["false_alerts"]) == (4, 2, 1)
    assert (figures["engagements"], figures["arrests"], figures["faces_processed"]) == (2, 1, 2000)
    assert figures["false_alert_rate"] == pytest.approx(1 / 2000)
    assert figures["precision"] == pytest.approx(2 / 3) and report["charts"] == []

    period = client.get(
        "/api/reports", params={**_period(), "charts": "true"}, headers=as_(store, Role.REVIEWER)
    ).json()
    assert [d["id"] for d in period["deployments"]] == [ran]
    assert len(period["charts"]) == 2
    assert all(c.startswith("data:image/png;base64,") for c in period["charts"])
    assert "eileen" not in json.dumps(period)  # no personal data

    assert client.get("/api/reports", headers=as_(store, Role.AUDITOR)).status_code == 400
    missing = client.get(
        "/api/reports", params={"deployment_id": 999}, headers=as_(store, Role.AUDITOR)
    )
    assert missing.status_code == 404


def test_report_exports_are_what_they_say_and_audited(client, store, ran) -> None:  # type: ignore[no-untyped-def]
    manager = as_(store, Role.WATCHLIST_MANAGER)

    def export(fmt: str, **params: object):  # type: ignore[no-untyped-def]
        answer = client.get(
            "/api/reports/export", params={"format": fmt, **params}, headers=manager
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-disposition"].startswith("attachment;")
        return answer

    pdf = export("pdf", deployment_id=ran)
    assert pdf.content.startswith(b"%PDF") and pdf.headers["content-type"] == "application/pdf"
    rows = list(csv.reader(io.StringIO(export("csv", deployment_id=ran).text)))
    assert rows[0][:3] == ["Deployment", "Date", "Location"] and rows[1][0] == str(ran)
    assert rows[1][rows[0].index("Alerts")] == "4" and rows[-1][0] == "total"
    html = export("html", **_period()).text
    assert "<table>" in html and "<th>Faces processed</th>" in html and "data:image/png" in html
    data = export("json", deployment_id=ran).json()
    assert data["deployments"][0]["true_alerts"] == 2
    assert "eileen" not in html + json.dumps(data)  # (the PDF's text is compressed)

    with store() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "report-export").order_by(AuditEntry.id)
        ).all()
    assert [e.object for e in entries] == [
        f"report:{fmt}:deployments:{ran}" for fmt in ("pdf", "csv", "html", "json")
    ]
    assert {e.actor for e in entries} == {"watchlist_manager"}


def test_subject_find_export_and_erase(client, store, astronaut) -> None:  # type: ignore[no-untyped-def]
    face = astronaut[:300, 80:380].copy()
    scene = plan_deployment(store)
    eileen = enrol_directly(store, "eileen", jpeg(face))
    bob = enrol_directly(store, "bob", jpeg(face[::-1].copy()))
    theirs = insert_alert(store, scene, face, face, subject="eileen")
    other = insert_alert(store, scene, face, face, subject="bob")
    adjudicate(store, theirs, "match", "engaged")
    with store() as session:  # the alerts point at the right entries
        session.get(Alert, theirs).subject_id = eileen
        session.get(Alert, other).subject_id = bob
        session.commit()
    auditor, manager = as_(store, Role.AUDITOR), as_(store, Role.WATCHLIST_MANAGER)
    ask = {"name": "eileen", "purpose": "SAR 2026/17"}

    found = client.post("/api/subjects/find", json=ask, headers=auditor)
    assert found.status_code == 200, found.text
    held = found.json()
    assert [(e["id"], e["watchlist"], e["images"]) for e in held["entries"]] == [
        (eileen, "demo", 1)
    ]
    assert [(a["id"], a["decision"], a["outcome"]) for a in held["alerts"]] == [
        (theirs, "match", "engaged")
    ]

    assert client.post("/api/subjects/export", json=ask, headers=auditor).status_code == 403
    exported = client.post("/api/subjects/export", json=ask, headers=manager)
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    assert "eileen" not in exported.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(exported.content))
    record = json.loads(archive.read("subject.json"))
    assert record["name"] == "eileen" and record["alerts"][0]["id"] == theirs
    image = record["watchlist_entries"][0]["images"][0]["file"]
    assert archive.read(image) == jpeg(face)
    assert archive.read(f"alert-{theirs}-probe.jpg").startswith(b"\xff\xd8")

    erase = {**ask, "purpose": "erasure request 2026/18"}
    assert client.post("/api/subjects/erase", json=erase, headers=auditor).status_code == 403
    unconfirmed = client.post(
        "/api/subjects/erase", json={**erase, "confirm_name": "Eileen"}, headers=manager
    )
    assert unconfirmed.status_code == 422
    erased = client.post(
        "/api/subjects/erase", json={**erase, "confirm_name": "eileen"}, headers=manager
    )
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"entry_ids": [eileen], "alerts": 1}
    again = client.post(
        "/api/subjects/erase", json={**erase, "confirm_name": "eileen"}, headers=manager
    )
    assert again.status_code == 404
    nothing = client.post("/api/subjects/find", json=ask, headers=manager).json()
    assert nothing == {"entries": [], "alerts": []}

    with store() as session:
        assert session.scalar(select(Subject).where(Subject.name == "eileen")) is None
        assert session.get(Alert, theirs) is None and session.get(Alert, other) is not None
        assert [i.subject_id for i in session.scalars(select(ReferenceImage))] == [bob]
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("subject-%")).order_by(AuditEntry.id)
        ).all()
        assert [e.action for e in entries] == [
            "subject-find",
            "subject-export",
            "subject-erase",
            "subject-find",
        ]
        assert entries[2].object == f"subject-ids:{eileen};alerts:1"
        assert entries[2].actor == "watchlist_manager"
        everything = session.scalars(select(AuditEntry)).all()
        assert not any("eileen" in e.object + e.purpose for e in everything)
        assert verify_chain(session).ok
