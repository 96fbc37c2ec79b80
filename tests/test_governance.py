"""Governance built in (issue 5): each rule's refusal, each purge on a clock the test controls,
and the transparency report's figures against alerts and adjudications the test creates."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from service_support import ENTRY
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from openlfr.errors import PolicyError
from openlfr.governance.audit import verify_chain
from openlfr.governance.authorisation import AuthorisationError, authorise_deployment
from openlfr.governance.policy import DeploymentRules, Policy, WatchlistRules, load_policy
from openlfr.live.deployment import create_deployment, freeze_snapshot, run_deployment
from openlfr.store import open_store
from openlfr.store.models import AuditEntry, Deployment, Subject, User
from openlfr.store.watchlists import (
    add_reference_image,
    add_subject,
    create_watchlist,
)
from openlfr.vision.detect import Detection
from openlfr.vision.faces import Face
from openlfr.vision.quality import Quality

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> sessionmaker[Session]:
    return open_store(database_url)


def _face(seed: int) -> Face:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return Face(
        box=Detection(0, 0, 10, 10, 1.0),
        landmarks=np.zeros((5, 2), np.float32),
        quality=Quality(10, 5.0, 100.0, 1.0, 0.0),
        chip=None,
        embedding=vector / np.linalg.norm(vector),
        model="dlib-resnet-v1",  # 128-d like dlib's; these tests plan deployments for dlib
    )


def _enrol(  # type: ignore[no-untyped-def]
    session: Session,
    watchlist,
    name: str,
    seed: int = 0,
    policy: Policy | None = None,
    date_of_birth: date | None = None,
    **entry_fields,
) -> Subject:
    subject = add_subject(
        session,
        watchlist,
        name=name,
        entry=replace(ENTRY, **entry_fields),
        policy=policy or Policy(),
        date_of_birth=date_of_birth,
    )
    add_reference_image(
        session,
        subject,
        filename="a.jpg",
        content=b"jpeg" + name.encode(),
        face=_face(seed),
        width=10,
        height=10,
    )
    return subject


def _plan(session: Session, **overrides) -> Deployment:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    fields = dict(
        name="Op",
        location="High St",
        reason="wanted offenders seen in the area",
        watchlist="wanted",
        starts_at=now,
        ends_at=now + timedelta(hours=2),
        cameras={"north": "/dev/null"},
        created_by="sgt-requester",
        area="High St between Market Sq and the station",
        dpia_ref="DPIA-2026-07",
        equality_ref="EIA-2026-07",
        signage_confirmed=True,
        policy=Policy(cameras=load_policy().cameras),  # /dev/null may be a camera (conftest)
        model="dlib-resnet-v1",
    )
    fields.update(overrides)
    return create_deployment(session, **fields)


@pytest.fixture
def wanted(store: sessionmaker[Session]) -> sessionmaker[Session]:
    """A watchlist 'wanted' with two current subjects."""
    with store() as session:
        watchlist = create_watchlist(session, "wanted")
        _enrol(session, watchlist, "alice", 1)
        _enrol(session, watchlist, "bob", 2)
        session.commit()
    return store


def _actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# --- 1, 2: watchlist entries ----------------------------------------------------------------


def test_migration_adds_the_governance_columns(store: sessionmaker[Session]) -> None:
    from sqlalchemy import inspect

    with store() as session:
        inspector = inspect(session.get_bind())
        subjects = {c["name"] for c in inspector.get_columns("subjects")}
        deployments = {c["name"] for c in inspector.get_columns("deployments")}
    assert {"legal_basis", "authorised_by", "review_flag"} <= subjects
    assert {
        "area",
        "dpia_ref",
        "equality_ref",
        "signage_confirmed",
        "authorised_by",
        "authorised_at",
        "threshold_override_reason",
    } <= deployments


def test_entry_needs_legal_basis_and_authoriser(store: sessionmaker[Session]) -> None:
    with store() as session:
        watchlist = create_watchlist(session, "w")
        with pytest.raises(PolicyError, match="legal basis"):
            _enrol(session, watchlist, "a", legal_basis=" ")
        with pytest.raises(PolicyError, match="authorised"):
            _enrol(session, watchlist, "b", authorised_by="")
        subject = _enrol(session, watchlist, "c")
        assert subject.legal_basis.startswith("Magistrates") and subject.authorised_by == "insp1"


def test_under_18_refused_unless_the_policy_allows(store: sessionmaker[Session]) -> None:
    child = date.today().replace(year=date.today().year - 15)
    with store() as session:
        watchlist = create_watchlist(session, "w")
        with pytest.raises(PolicyError, match="under 18"):
            _enrol(session, watchlist, "a", date_of_birth=child)
        with pytest.raises(PolicyError, match="under 18"):
            _enrol(session, watchlist, "b", minor=True)
        _enrol(session, watchlist, "adult", date_of_birth=date(1980, 1, 1))
        allows = Policy(watchlist=WatchlistRules(allow_under_18=True))
        assert _enrol(session, watchlist, "c", 3, minor=True, policy=allows).id


def test_expired_entry_is_left_out_and_flagged_for_review(wanted) -> None:  # type: ignore[no-untyped-def]
    with wanted() as session:
        alice = session.scalar(select(Subject).where(Subject.name == "alice"))
        alice.expires_on = date.today() - timedelta(days=1)
        deployment = _plan(session)
        assert freeze_snapshot(session, deployment, Policy()) == 1
        assert alice.review_flag and alice.review_flag.startswith("expired")
        flags = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "subject-review-flag")
        ).all()
        assert [f.object for f in flags] == [f"subject-id:{alice.id}"]
        assert "alice" not in flags[0].purpose  # no personal data in the log


# --- 3: deployment authorisation -------------------------------------------------------------


def test_deployment_cannot_start_unauthorised_or_without_signage(wanted) -> None:  # type: ignore[no-untyped-def]
    with wanted() as session:
        unauthorised = _plan(session).id
        no_signs = _plan(session, signage_confirmed=False)
        authorise_deployment(session, no_signs, by="insp-other", policy=Policy())
        no_signs_id = no_signs.id
        session.commit()
    with pytest.raises(AuthorisationError, match="not been authorised"):
        run_deployment(wanted, unauthorised)
    with pytest.raises(AuthorisationError, match="signage"):
        run_deployment(wanted, no_signs_id)
    with wanted() as session:  # refused before any copy of the watchlist was made
        assert session.get(Deployment, unauthorised).status == "planned"


def test_authoriser_must_differ_from_requester_and_hold_a_role(wanted) -> None:  # type: ignore[no-untyped-def]
    with wanted() as session:
        deployment = _plan(session)
        with pytest.raises(AuthorisationError, match="someone other"):
            authorise_deployment(session, deployment, by="sgt-requester", policy=Policy())
        session.add(User(name="insp-real", role="authorising-officer", password_hash="x"))
        session.add(User(name="pc-reviewer", role="reviewer", password_hash="x"))
        session.flush()
        with pytest.raises(AuthorisationError, match="authorising role"):
            authorise_deployment(session, deployment, by="pc-reviewer", policy=Policy())
        with pytest.raises(AuthorisationError, match="authorising role"):
            authorise_deployment(session, deployment, by="nobody", policy=Policy())
        authorise_deployment(session, deployment, by="insp-real", policy=Policy(), now=NOW)
        assert deployment.authorised_by == "insp-real" and deployment.authorised_at == NOW
        with pytest.raises(AuthorisationError, match="already authorised"):
            authorise_deployment(session, deployment, by="insp-real", policy=Policy())
        assert "deployment-authorise" in _actions(session)
        assert verify_chain(session).ok


def test_authorisation_needs_dpia_and_equality_refs(wanted) -> None:  # type: ignore[no-untyped-def]
    with wanted() as session:
        deployment = _plan(session, dpia_ref="")
        with pytest.raises(AuthorisationError, match="DPIA"):
            authorise_deployment(session, deployment, by="insp", policy=Policy())
        deployment = _plan(session, equality_ref="")
        with pytest.raises(AuthorisationError, match="equality"):
            authorise_deployment(session, deployment, by="insp", policy=Policy())


def test_low_threshold_refused_without_a_recorded_override(wanted) -> None:  # type: ignore[no-untyped-def]
    strict = Policy(deployment=DeploymentRules(min_threshold=4.0), cameras=load_policy().cameras)
    with wanted() as session:
        with pytest.raises(AuthorisationError, match="below the minimum 4"):
            _plan(session, threshold=3.5, policy=strict)
        with pytest.raises(AuthorisationError, match="below the minimum"):
            _plan(session, threshold=0.5)  # under the calibrated default for two subjects
        assert _plan(session, threshold=4.5, policy=strict).threshold == 4.5
        low = _plan(
            session, threshold=3.5, policy=strict, threshold_override_reason="CCTV trial, DPIA s.4"
        )
        assert low.threshold_override_reason == "CCTV trial, DPIA s.4"
        overrides = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "threshold-override")
        ).all()
        assert len(overrides) == 1 and overrides[0].object.endswith("threshold=3.5")


def test_cli_authorise(wanted) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from openlfr.cli import app

    with wanted() as session:
        deployment_id = _plan(session).id
        session.commit()
    runner = CliRunner()
    refused = runner.invoke(
        app, ["deployment", "authorise", str(deployment_id), "--by", "sgt-requester"]
    )
    assert refused.exit_code == 2 and "someone other" in refused.output
    done = runner.invoke(app, ["deployment", "authorise", str(deployment_id), "--by", "insp2"])
    assert done.exit_code == 0, done.output
    with wanted() as session:
        assert session.get(Deployment, deployment_id).authorised_by == "insp2"


# --- 4: retention ------------------------------------------------------------------------------


def _alert(session: Session, deployment: Deployment, raised: datetime, n: int, **adj) -> str:  # type: ignore[no-untyped-def]
    from openlfr.store.models import Adjudication, Alert

    alert_id = f"a{deployment.id:04d}{n:04d}"
    session.add(
        Alert(
            id=alert_id,
            deployment_id=deployment.id,
            camera_id=deployment.cameras[0].id,
            track=n,
            frame=n,
            time_s=float(n),
            subject_id=1,
            subject_name="alice",
            score=5.0,
            similarity=0.6,
            box=[0, 0, 10, 10],
            latency_s=0.1,
            probe_image=b"probe",
            reference_image=b"reference",
            raised_at=raised,
        )
    )
    session.flush()
    if adj:
        session.add(Adjudication(alert_id=alert_id, reviewer="pc-reviewer", note="", **adj))
        session.flush()
    return alert_id


def test_retention_purges_on_a_controlled_clock_and_audits_without_personal_data(wanted) -> None:  # type: ignore[no-untyped-def]
    from openlfr.governance.retention import run_retention
    from openlfr.store.models import Adjudication, Alert, SnapshotTemplate

    policy = Policy()  # alert_days 31, false_alert_days 1
    with wanted() as session:
        deployment = _plan(session)
        old = _alert(
            session, deployment, NOW - timedelta(days=32), 1, decision="match", outcome="arrested"
        )
        recent_true = _alert(session, deployment, NOW - timedelta(days=2), 2, decision="match")
        recent_false = _alert(session, deployment, NOW - timedelta(days=2), 3, decision="no-match")
        fresh_false = _alert(session, deployment, NOW - timedelta(hours=2), 4, decision="no-match")
        unjudged = _alert(session, deployment, NOW - timedelta(days=30), 5)
        freeze_snapshot(session, deployment, policy)  # a copy left behind: not running
        session.commit()

        dry = run_retention(session, NOW, policy, dry_run=True)
        assert dry.alerts == [old] and dry.false_alerts == [recent_false]
        assert dry.snapshot_rows == {deployment.id: 2}
        assert session.scalar(select(func.count(Alert.id))) == 5  # nothing deleted
        assert "retention-purge" not in _actions(session)

        done = run_retention(session, NOW, policy)
        session.commit()
        left = set(session.scalars(select(Alert.id)))
        assert left == {recent_true, fresh_false, unjudged}
        assert session.scalar(select(func.count(Adjudication.id))) == 2
        assert session.scalar(select(func.count(SnapshotTemplate.id))) == 0
        assert (deployment.purged_alerts, deployment.purged_true_alerts) == (2, 1)
        assert (deployment.purged_false_alerts, deployment.purged_arrests) == (1, 1)
        purges = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "retention-purge")
        ).all()
        assert len(purges) == 3 and any(old in p.object for p in purges)
        assert not any("alice" in p.object + p.purpose for p in purges)
        assert verify_chain(session).ok
        assert done.lines()[0].startswith("deleted 1 alerts")

        later = run_retention(session, NOW + timedelta(days=40), policy)
        assert set(later.alerts) == {recent_true, fresh_false, unjudged}


def test_retention_keeps_audit_entries_and_flags_expired_entries(wanted) -> None:  # type: ignore[no-untyped-def]
    from openlfr.governance.retention import run_retention

    with wanted() as session:
        bob = session.scalar(select(Subject).where(Subject.name == "bob"))
        bob.expires_on = NOW.date() - timedelta(days=1)
        session.commit()
        before = session.scalar(select(func.count(AuditEntry.id)))
        far = NOW + timedelta(days=7 * 365)
        result = run_retention(session, far, Policy(), dry_run=True)
        assert result.flagged_subjects == [bob.id] and bob.review_flag is None
        result = run_retention(session, far, Policy())
        session.commit()
        assert result.flagged_subjects == [bob.id] and bob.review_flag
        assert result.audit_past_retention == before  # all six years old: counted, not deleted
        assert session.scalar(select(func.count(AuditEntry.id))) >= before
        assert verify_chain(session).ok


def test_cli_retention_run(wanted) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from openlfr.cli import app

    result = CliRunner().invoke(app, ["retention", "run", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would delete 0 alerts" in result.output
    result = CliRunner().invoke(app, ["retention", "run"])
    assert result.exit_code == 0 and "deleted 0 alerts" in result.output


def test_service_scheduler_runs_retention(wanted) -> None:  # type: ignore[no-untyped-def]
    from openlfr.governance.scheduler import RetentionScheduler

    scheduler = RetentionScheduler(wanted, interval_s=0.05)
    assert scheduler.run_once().alerts == []
    scheduler.start()
    scheduler.stop()


# --- 5: transparency reports -------------------------------------------------------------------


def _ran(session: Session, deployment: Deployment, faces: int, hours: float) -> None:
    """As if it had run: started, ended, cameras counted."""
    deployment.status, deployment.snapshot_size = "ended", 2
    deployment.started_at = NOW
    deployment.ended_at = NOW + timedelta(hours=hours)
    deployment.cameras[0].faces_processed = faces


def test_report_figures_from_alerts_and_adjudications(wanted, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from openlfr.governance.reports import build_report, write_report

    with wanted() as session:
        one = _plan(session, threshold=6.0)
        _ran(session, one, faces=10_000, hours=4.5)
        _alert(session, one, NOW, 1, decision="match", outcome="arrested")
        _alert(session, one, NOW, 2, decision="match", outcome="engaged")
        _alert(session, one, NOW, 3, decision="match", outcome="not-located")
        _alert(session, one, NOW + timedelta(days=1), 4, decision="no-match")
        _alert(session, one, NOW, 5, decision="cannot-tell")
        _alert(session, one, NOW, 6)  # not adjudicated
        other = _plan(session, name="Op 2", location="Station", threshold=6.0)
        _ran(session, other, faces=5_000, hours=2)
        other.purged_alerts, other.purged_false_alerts = 1, 1  # purged, still counted
        session.commit()

        figures = build_report(session, deployment_id=one.id).deployments[0]
        assert (figures.alerts, figures.true_alerts, figures.false_alerts) == (6, 3, 1)
        assert (figures.engagements, figures.arrests) == (2, 1)
        assert figures.faces_processed == 10_000 and figures.duration_h == 4.5
        assert figures.false_alert_rate == pytest.approx(1 / 10_000)
        assert figures.precision == pytest.approx(0.75)
        assert figures.watchlist_size == 2 and figures.threshold == 6.0
        assert figures.date == "2026-06-01" and figures.alert_days == {
            "2026-06-01": 5,
            "2026-06-02": 1,
        }

        period = build_report(session, start=NOW - timedelta(days=1), end=NOW + timedelta(days=1))
        totals = period.totals()
        assert [d.id for d in period.deployments] == [one.id, other.id]
        assert (totals["alerts"], totals["false_alerts"], totals["faces_processed"]) == (
            7,
            2,
            15_000,
        )
        assert totals["precision"] == pytest.approx(3 / 5)
        for fmt in ("json", "csv", "html", "pdf"):
            path = tmp_path / f"report.{fmt}"
            write_report(period, path, fmt)
            assert path.stat().st_size > 100
        text = "".join((tmp_path / f"report.{f}").read_text() for f in ("json", "csv", "html"))
        assert "alice" not in text and "pc-reviewer" not in text  # no personal data
        assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")


def test_cli_report(wanted, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from openlfr.cli import app

    with wanted() as session:
        deployment = _plan(session)
        _ran(session, deployment, faces=100, hours=1)
        _alert(session, deployment, NOW, 1, decision="no-match")
        deployment_id = deployment.id
        session.commit()
    out = tmp_path / "r.json"
    args = ["report", "--deployment", str(deployment_id), "--format", "json", "--output", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["deployments"][0]["false_alerts"] == 1
    period = ["report", "--from", "2026-05-01", "--to", "2026-07-01", "--format", "csv"]
    result = CliRunner().invoke(app, [*period, "--output", str(tmp_path / "r.csv")])
    assert result.exit_code == 0 and "Faces processed" in (tmp_path / "r.csv").read_text()
    refused = CliRunner().invoke(app, ["report", "--output", str(out)])
    assert refused.exit_code == 2 and "--deployment ID" in refused.output


# --- 6: subject rights -------------------------------------------------------------------------


def test_subject_find_export_erase(wanted, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from openlfr.cli import app
    from openlfr.store.models import Alert, ReferenceImage, Template

    with wanted() as session:
        deployment = _plan(session)
        alice = session.scalar(select(Subject).where(Subject.name == "alice"))
        alert_id = _alert(session, deployment, NOW, 1, decision="match")
        session.get(Alert, alert_id).subject_id = alice.id
        _alert(session, deployment, NOW, 2)
        bob = session.scalar(select(Subject).where(Subject.name == "bob"))
        other = session.get(Alert, f"a{deployment.id:04d}0002")
        other.subject_id, other.subject_name = bob.id, "bob"
        session.commit()
    runner = CliRunner()
    found = runner.invoke(app, ["subject", "find", "alice"])
    assert found.exit_code == 0 and "1 watchlist entries, 1 alerts" in found.output
    out = tmp_path / "sar"
    exported = runner.invoke(app, ["subject", "export", "alice", "--output", str(out)])
    assert exported.exit_code == 0, exported.output
    record = json.loads((out / "subject.json").read_text())
    assert record["watchlist_entries"][0]["legal_basis"].startswith("Magistrates")
    assert record["alerts"][0]["decision"] == "match"
    assert (out / f"alert-{alert_id}-probe.jpg").read_bytes() == b"probe"
    assert (out / record["watchlist_entries"][0]["images"][0]["file"]).read_bytes() == b"jpegalice"
    erased = runner.invoke(app, ["subject", "erase", "alice"])
    assert erased.exit_code == 0 and "erased 1 entries and 1 alerts" in erased.output
    with wanted() as session:
        assert session.scalar(select(Subject).where(Subject.name == "alice")) is None
        assert session.get(Alert, alert_id) is None
        assert session.scalar(select(func.count(Alert.id))) == 1  # bob's stays
        assert session.scalar(select(func.count(ReferenceImage.id))) == 1
        assert session.scalar(select(func.count(Template.id))) == 1
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("subject-%"))
        ).all()
        assert [e.action for e in entries] == ["subject-find", "subject-export", "subject-erase"]
        assert not any("alice" in e.object + e.purpose for e in entries)
        assert verify_chain(session).ok
    missing = runner.invoke(app, ["subject", "erase", "alice"])
    assert missing.exit_code == 2 and "nothing is held" in missing.output


def test_migration_0004_downgrades_and_upgrades(store: sessionmaker[Session]) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from openlfr.store.db import alembic_config

    engine = store.kw["bind"]
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0003")
        assert "legal_basis" not in {c["name"] for c in inspect(connection).get_columns("subjects")}
        command.upgrade(cfg, "head")
        assert "legal_basis" in {c["name"] for c in inspect(connection).get_columns("subjects")}


def test_cli_import_needs_legal_basis_and_refuses_minors(store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from openlfr.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["watchlist", "create", "w"]).exit_code == 0
    (tmp_path / "someone").mkdir()
    base = ["watchlist", "import", "w", str(tmp_path), "--category", "risk-of-harm"]
    base += ["--reason", "r"]
    missing = runner.invoke(app, [*base, "--authorised-by", "insp"])
    assert missing.exit_code == 2 and "legal-basis" in missing.output
    basis = ["--legal-basis", "warrant", "--authorised-by", "insp"]
    minor = runner.invoke(app, [*base, *basis, "--minor"])
    assert minor.exit_code == 2 and "under 18" in minor.output
    blank = runner.invoke(app, [*base, "--legal-basis", " ", "--authorised-by", "insp"])
    assert blank.exit_code == 2 and "legal basis" in blank.output


def test_cli_confirm_signage_then_start_gets_past_the_rules(wanted) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from openlfr.cli import app

    with wanted() as session:
        deployment = _plan(session, signage_confirmed=False)
        authorise_deployment(session, deployment, by="insp2", policy=Policy())
        deployment_id = deployment.id
        session.commit()
    result = CliRunner().invoke(app, ["deployment", "run", str(deployment_id)])
    assert result.exit_code == 2 and "signage" in result.output
    done = CliRunner().invoke(
        app, ["deployment", "confirm-signage", str(deployment_id), "--by", "pc"]
    )
    assert done.exit_code == 0, done.output
    with wanted() as session:
        assert session.get(Deployment, deployment_id).signage_confirmed
        assert "deployment-signage" in _actions(session)


def test_api_authorise_by_another_officer(database_url: str) -> None:
    from fastapi.testclient import TestClient
    from service_support import service_store, token_for

    from openlfr.api import create_app
    from openlfr.api.auth import create_user
    from openlfr.api.roles import Role

    store = service_store(database_url)
    with store() as session:
        create_watchlist(session, "wanted")
        create_user(session, "second_officer", Role.AUTHORISING_OFFICER, "another long password")
        session.commit()
    planner = {"Authorization": f"Bearer {token_for(store, Role.AUTHORISING_OFFICER)}"}
    with TestClient(create_app(store, poll_alerts=False)) as client:
        body = {
            "name": "Op",
            "location": "Square",
            "reason": "why here, why now",
            "watchlist": "wanted",
            "ends_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
            "cameras": [{"name": "north", "source": "/dev/null"}],
            "dpia_ref": "DPIA-1",
            "equality_ref": "EIA-1",
            "signage_confirmed": True,
        }
        made = client.post("/api/deployments", headers=planner, json=body)
        assert made.status_code == 201, made.text
        url = f"/api/deployments/{made.json()['id']}/authorise"
        own = client.post(url, headers=planner)
        assert own.status_code == 422 and "someone other" in own.json()["detail"]
        with store() as session:
            from openlfr.api.auth import open_session

            second = session.scalar(select(User).where(User.name == "second_officer"))
            token, _ = open_session(session, second)
            session.commit()
        done = client.post(url, headers={"Authorization": f"Bearer {token}"})
        assert done.status_code == 200, done.text
        assert done.json()["authorised_by"] == "second_officer"


def test_migrations_keep_existing_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """On SQLite a table rebuild with foreign keys on would cascade: cameras, images must stay
    through every migration since deployments exist (0003 and 0004), up and down."""
    from alembic import command

    from openlfr.store.db import alembic_config, make_engine

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine, cfg = make_engine(url), alembic_config(url)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0002")
    rows = [
        "insert into watchlists values (1, 'w', '', '2026-01-01')",
        "insert into subjects (id, watchlist_id, name, category, reason, image_source, added_by,"
        " created_at) values (1, 1, 'a', 'c', 'r', '', 'x', '2026-01-01')",
        "insert into reference_images values (1, 1, 'f', x'00', 's', 1, 1, '2026-01-01')",
        "insert into deployments (id, name, location, reason, watchlist_name, starts_at, ends_at,"
        " created_by, created_at, status, stop_requested) values (1, 'd', 'l',"
        " 'r', 'w', '2026-01-01', '2026-01-02', 'x', '2026-01-01', 'ended', 0)",
        "insert into cameras values (1, 1, 'c', 's', 0, 0, 0, 0, null)",
    ]
    with engine.begin() as connection:
        for sql in rows:
            connection.exec_driver_sql(sql)
    for target in ("head", "0002", "head"):
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            (command.upgrade if target == "head" else command.downgrade)(cfg, target)
        with engine.connect() as connection:
            count = connection.exec_driver_sql
            assert count("select count(*) from cameras").scalar() == 1
            assert count("select count(*) from reference_images").scalar() == 1
    with engine.connect() as connection:
        assert connection.exec_driver_sql("select legal_basis from subjects").scalar() == ""
