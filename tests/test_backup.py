"""Issue 15, point 6: ``openlfr backup`` / ``openlfr restore`` of the whole store, SQLite and
PostgreSQL, with the audit chain verifiable after a restore (re-anchored, and recorded)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from service_support import run_cli
from sqlalchemy import func, select
from typer.testing import CliRunner

from openlfr.cli import app
from openlfr.governance import audit, checkpoint
from openlfr.store import open_store
from openlfr.store.models import AuditEntry, Deployment, SnapshotTemplate, Watchlist

TIMEOUT = 120


def _populate(store, watchlist: str, entries: int = 3) -> None:  # type: ignore[no-untyped-def]
    with store() as session:
        session.add(Watchlist(name=watchlist, description=""))
        session.commit()
    for i in range(entries):
        with store() as session:
            audit.append(session, actor="rev", action="view", obj=f"alert:{i}", purpose="review")
            session.commit()


def _watchlists(store) -> list[str]:  # type: ignore[no-untyped-def]
    with store() as session:
        return sorted(session.scalars(select(Watchlist.name)))


def _running_deployment(store, runner_pid: int) -> int:  # type: ignore[no-untyped-def]
    """A deployment marked running by ``runner_pid`` on this host, with its watchlist copy."""
    now = datetime.now(UTC)
    with store() as session:
        deployment = Deployment(
            name="op",
            location="square",
            reason="test",
            watchlist_name="wl",
            starts_at=now,
            ends_at=now + timedelta(hours=2),
            created_by="officer",
            status="running",
            started_at=now,
            runner_pid=runner_pid,
            runner_host=socket.gethostname(),
        )
        session.add(deployment)
        session.flush()
        session.add(
            SnapshotTemplate(
                deployment_id=deployment.id,
                subject_id=1,
                subject_name="alan",
                model="m",
                embedding=b"\0" * 16,
                image=b"jpeg",
            )
        )
        session.commit()
        return deployment.id


def test_backup_then_restore_brings_the_store_back_and_the_chain_verifies(
    database_url: str, tmp_path: Path
) -> None:
    store = open_store(database_url)
    _populate(store, "before")
    file = tmp_path / "store.backup"
    made = run_cli("backup", str(file), "--reason", "nightly")
    assert made.returncode == 0, made.stderr
    assert file.stat().st_mode & 0o777 == 0o600 and "personal data" in made.stderr
    with tarfile.open(file) as tar:
        names = sorted(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert names in (["manifest.json", "store.sqlite3"], ["manifest.json", "store.pgdump"])
    assert manifest["entries"] == 4  # the three, and the backup's own entry
    assert not list(tmp_path.glob(".openlfr-backup-*"))  # no scratch copy left behind
    _populate(store, "after")  # work done after the backup, which the restore undoes
    with store() as session:
        before = checkpoint.read(audit.store_of(session))
    assert before.entries == 7

    restored = run_cli("restore", str(file), "--reason", "disk replaced, INC-7")
    assert restored.returncode == 0, restored.stderr
    assert "re-anchored" in restored.stderr and before.summary() in restored.stderr
    assert _watchlists(store) == ["before"]
    verified = CliRunner().invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    with store() as session:
        last = session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
        count = session.scalar(select(func.count()).select_from(AuditEntry))
    assert count == 5 and last.action == "restore" and last.actor.startswith("cli:")
    assert f"was: {before.summary()}" in last.object and "entry 4 (4 entries)" in last.object
    assert "disk replaced, INC-7" in last.purpose


def test_restore_is_refused_while_a_deployment_runs_and_ends_those_the_backup_caught(
    database_url: str, tmp_path: Path
) -> None:
    store = open_store(database_url)
    _populate(store, "wl", entries=1)
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        deployment_id = _running_deployment(store, runner.pid)
        file = tmp_path / "store.backup"
        cli = CliRunner()
        assert cli.invoke(app, ["backup", str(file)]).exit_code == 0
        refused = cli.invoke(app, ["restore", str(file), "--reason", "test"])
        assert refused.exit_code == 2
        assert f"deployment(s) {deployment_id} are running" in refused.output
    finally:
        runner.kill()
        runner.wait(timeout=TIMEOUT)
    done = cli.invoke(app, ["restore", str(file), "--reason", "test"])
    assert done.exit_code == 0, done.output
    assert f"ended deployment(s) {deployment_id}" in done.output
    with store() as session:
        deployment = session.get(Deployment, deployment_id)
        assert deployment.status == "ended" and "restore" in deployment.end_reason
        assert session.scalar(select(func.count()).select_from(SnapshotTemplate)) == 0
        assert audit.verify(session).ok


def _rewrite(file: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Rebuild the backup with ``change(name, bytes) -> bytes`` applied to each member."""
    with tarfile.open(file) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    with tarfile.open(file, "w") as tar:
        for name, data in members.items():
            data = change(name, data)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_an_altered_or_foreign_backup_is_refused_and_the_store_is_untouched(
    database_url: str, tmp_path: Path
) -> None:
    store = open_store(database_url)
    _populate(store, "live")
    cli = CliRunner()
    file = tmp_path / "store.backup"
    assert cli.invoke(app, ["backup", str(file)]).exit_code == 0
    again = cli.invoke(app, ["backup", str(file)])
    assert again.exit_code == 2 and "exists" in again.output
    pristine = file.read_bytes()

    def restore(*extra: str) -> str:
        result = cli.invoke(app, ["restore", str(file), "--reason", "test", *extra])
        assert result.exit_code == 2, result.output
        return result.output

    def fewer_entries(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["entries"] -= 1
        return json.dumps(manifest).encode()

    _rewrite(file, fewer_entries)
    assert "signature does not match" in restore()
    file.write_bytes(pristine)
    _rewrite(file, lambda name, data: data if name == "manifest.json" else data[:-4096])
    assert "does not match its manifest" in restore("--accept-unsigned")
    file.write_bytes(b"not a backup at all")
    assert "not a readable OpenLFR backup" in restore()
    file.write_bytes(pristine)
    key = checkpoint.key_path()
    own_key = key.read_text()
    key.write_text("1" * 64 + "\n")  # another host's key
    assert "signature does not match" in restore()
    assert _watchlists(store) == ["live"]
    with store() as session:
        assert audit.verify_chain(session).entries == 4
    key.write_text(own_key)


def test_a_backup_under_another_key_restores_only_when_accepted_and_says_so(
    database_url: str, tmp_path: Path
) -> None:
    store = open_store(database_url)
    _populate(store, "live", entries=1)
    cli = CliRunner()
    file = tmp_path / "store.backup"
    assert cli.invoke(app, ["backup", str(file)]).exit_code == 0
    checkpoint.key_path().write_text("2" * 64 + "\n")  # the host's key was replaced since
    assert cli.invoke(app, ["restore", str(file), "--reason", "x"]).exit_code == 2
    done = cli.invoke(app, ["restore", str(file), "--reason", "x", "--accept-unsigned"])
    assert done.exit_code == 0, done.output
    with store() as session:
        assert audit.verify(session).ok
        last = session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
    assert last.action == "restore" and "accepted unsigned" in last.purpose
