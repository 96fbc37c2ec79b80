"""Issue 15, findings 6 and 12: the audit chain's head is anchored outside the database (a signed
checkpoint), so cutting entries off its end is caught; concurrent appenders in separate
processes cannot fork it, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from service_support import run_cli
from sqlalchemy import delete, select, text, update
from typer.testing import CliRunner

from openlfr.cli import app
from openlfr.errors import OpenLFRError
from openlfr.governance import audit, checkpoint
from openlfr.store import open_store
from openlfr.store.models import AuditEntry

TIMEOUT = 120  # generous: several interpreters starting at once on a loaded 2-core machine


def _append(store, n: int, actor: str = "rev") -> None:  # type: ignore[no-untyped-def]
    for i in range(n):  # one transaction each: each commit moves the checkpoint
        with store() as session:
            audit.append(session, actor=actor, action="view", obj=f"alert:{i}", purpose="review")
            session.commit()


def _delete_newest(store, n: int) -> None:  # type: ignore[no-untyped-def]
    """What an attacker with write access to the database (and nothing else) can do."""
    with store() as session:
        newest = session.scalars(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(n))
        session.execute(delete(AuditEntry).where(AuditEntry.id.in_(list(newest))))
        session.commit()


def _checkpoint_file(store) -> Path:  # type: ignore[no-untyped-def]
    with store() as session:
        return checkpoint.checkpoint_path(audit.store_of(session))


def test_deleting_the_newest_entries_is_reported_as_truncation(database_url: str) -> None:
    store = open_store(database_url)
    _append(store, 5)
    intact = run_cli("audit", "verify")
    assert intact.returncode == 0, intact.stderr
    assert "5 entries" in intact.stdout and "entry 5 (5 entries)" in intact.stdout
    _delete_newest(store, 1)
    with store() as session:
        assert audit.verify_chain(session).ok  # the links alone cannot see it
    cut = run_cli("audit", "verify")
    assert cut.returncode == 1
    assert "truncated" in cut.stderr and "ends at entry 4 (4 entries)" in cut.stderr
    _delete_newest(store, 2)
    _append(store, 1)  # new entries after the cut (SQLite even reuses the deleted ids)
    with store() as session:
        result = audit.verify(session)
    assert not result.ok and result.first_bad_id == 5
    assert "truncated" in result.problem or "rewritten" in result.problem


def test_a_chain_rewritten_with_fresh_hashes_is_caught(database_url: str) -> None:
    store = open_store(database_url)
    _append(store, 4)
    with store() as session:  # edit entry 2 and recompute every hash after it: links all hold
        prev = audit.GENESIS
        for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
            if entry.id == 2:
                entry.purpose = "curiosity"
            entry.prev_hash = prev
            entry.hash = audit.entry_hash(
                prev, entry.at, entry.actor, entry.action, entry.object, entry.purpose
            )
            prev = entry.hash
        session.commit()
        assert audit.verify_chain(session).ok
        result = audit.verify(session)
    assert not result.ok and result.first_bad_id == 4 and "rewritten" in result.problem


def test_a_missing_or_forged_checkpoint_or_an_exposed_key_is_reported(database_url: str) -> None:
    store = open_store(database_url)
    _append(store, 3)
    path = _checkpoint_file(store)
    original = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert checkpoint.key_path().stat().st_mode & 0o777 == 0o600

    def problem() -> str:
        with store() as session:
            result = audit.verify(session)
        assert not result.ok
        return result.problem

    forged = json.loads(original) | {"entries": 2, "last_id": 2}
    path.write_text(json.dumps(forged))  # moved back without the key
    assert "forged" in problem()
    path.write_text("{not json")
    assert "not a readable checkpoint" in problem()
    path.unlink()
    assert "no checkpoint anchors the chain" in problem()
    _append(store, 1)  # the next append does not quietly make a new one from the cut chain
    assert "no checkpoint anchors the chain" in problem()
    path.write_text(original)
    checkpoint.key_path().chmod(0o644)
    assert "open to other users" in problem()
    checkpoint.key_path().chmod(0o600)
    checkpoint.key_path().write_text("0" * 64 + "\n")  # another key: the signature fails
    assert "forged" in problem()


def test_a_store_from_before_checkpoints_is_anchored_by_its_next_append(
    database_url: str,
) -> None:
    store = open_store(database_url)
    _append(store, 3)
    _checkpoint_file(store).unlink()
    checkpoint.key_path().unlink()  # as an installation from before checkpoints has neither
    _append(store, 1)
    with store() as session:
        result = audit.verify(session)
    assert result.ok and result.checkpoint.startswith("entry 4 (4 entries)")


def test_a_rolled_back_append_is_never_anchored(database_url: str) -> None:
    store = open_store(database_url)
    _append(store, 2)
    path = _checkpoint_file(store)
    before = path.read_text()
    with store() as session:
        audit.append(session, actor="rev", action="view", obj="alert:x", purpose="review")
        session.rollback()
    assert path.read_text() == before
    _append(store, 1)
    with store() as session:
        result = audit.verify(session)
    assert result.ok and result.entries == 3 and result.unanchored == 0


def test_anchor_reanchors_an_intact_chain_audited_and_refuses_a_broken_one(
    database_url: str,
) -> None:
    store = open_store(database_url)
    _append(store, 3)
    _checkpoint_file(store).unlink()  # a store from before checkpoints, or a lost file
    runner = CliRunner()
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 1
    anchored = runner.invoke(app, ["audit", "anchor", "--reason", "checked by hand, INC-1"])
    assert anchored.exit_code == 0, anchored.output
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "4 entries" in ok.output
    with store() as session:
        last = session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
        assert last.action == "audit-anchor" and last.purpose == "checked by hand, INC-1"
        assert "entry 3 (3 entries)" in last.object and "was: none" in last.object
        session.execute(update(AuditEntry).where(AuditEntry.id == 2).values(actor="x"))
        session.commit()
    refused = runner.invoke(app, ["audit", "anchor", "--reason", "cover it up"])
    assert refused.exit_code == 2 and "never re-anchored" in refused.output


def test_a_checkpoint_copy_kept_elsewhere_catches_a_reanchored_truncation(
    database_url: str, tmp_path: Path
) -> None:
    """Someone with the host's key can cut the log and re-sign the local checkpoint; a copy
    taken earlier and kept off the host still says how long the log was."""
    store = open_store(database_url)
    _append(store, 4)
    runner = CliRunner()
    copy = tmp_path / "kept.json"
    shown = runner.invoke(app, ["audit", "checkpoint"])
    assert shown.exit_code == 0, shown.output
    copy.write_text(shown.stdout)
    _delete_newest(store, 2)
    with store() as session:
        audit.anchor(session, actor="intruder", reason="nothing to see")
        session.commit()
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    caught = runner.invoke(app, ["audit", "verify", "--checkpoint", str(copy)])
    assert caught.exit_code == 1 and "entry 4 (4 entries)" in caught.output


def test_the_api_verify_reports_a_truncation(client, store) -> None:  # type: ignore[no-untyped-def]
    from test_api import login

    from openlfr.api.roles import Role

    auditor = login(client, Role.AUDITOR)
    client.get("/api/audit/export", headers=auditor)
    verdict = client.get("/api/audit/verify", headers=auditor).json()
    assert verdict["ok"] and verdict["unanchored"] == 0 and "2 entries" in verdict["checkpoint"]
    _delete_newest(store, 1)
    verdict = client.get("/api/audit/verify", headers=auditor).json()
    assert verdict["ok"] is False and "truncated" in verdict["problem"]


# --- concurrent writers: real processes ---------------------------------------------------------

WORKER = """
import sys
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker
from openlfr.governance import audit
from openlfr.store.db import make_engine
from openlfr.store.models import AuditEntry

url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = sessionmaker(make_engine(url), expire_on_commit=False)
with store() as session:
    session.scalar(select(func.count()).select_from(AuditEntry))  # connected, warm
print("ready", flush=True)
sys.stdin.readline()  # every worker starts appending at the same moment
for i in range(n):
    with store() as session:
        session.scalar(select(func.count()).select_from(AuditEntry))  # a read first, as the API
        audit.append(session, actor=name, action="view", obj=f"alert:{i}", purpose="review")
        session.commit()
"""


def test_appenders_in_separate_processes_cannot_fork_the_chain(database_url: str) -> None:
    store = open_store(database_url)
    processes, each = 4, 25
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, database_url, f"p{k}", str(each)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for k in range(processes)
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        for worker in workers:
            _, stderr = worker.communicate(timeout=TIMEOUT)
            assert worker.returncode == 0, stderr
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    with store() as session:
        result = audit.verify(session)
        actors = session.scalars(select(AuditEntry.actor)).all()
    assert result.ok, result.problem
    assert result.entries == processes * each and result.unanchored == 0
    assert sorted(set(actors)) == [f"p{k}" for k in range(processes)]


def test_postgresql_appends_under_an_older_snapshot_are_refused(database_url: str) -> None:
    """REPEATABLE READ reads the snapshot its first statement took: an append there would link
    to a predecessor that is no longer the newest and fork the chain."""
    store = open_store(database_url)
    if store.kw["bind"].dialect.name != "postgresql":
        pytest.skip("PostgreSQL's isolation levels")
    _append(store, 1)
    with store() as stale:
        stale.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        stale.execute(text("SELECT count(*) FROM audit_log"))  # the snapshot is taken here
        _append(store, 1, actor="other")  # another process appends meanwhile
        with pytest.raises(OpenLFRError, match="READ COMMITTED"):
            audit.append(stale, actor="rev", action="view", obj="alert:9", purpose="review")
        stale.rollback()
    with store() as session:
        result = audit.verify(session)
    assert result.ok and result.entries == 2
