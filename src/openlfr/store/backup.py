"""Backup and restore of the whole store, with the audit chain kept verifiable across them.

A backup is one tar file (mode 0600: it holds every reference image, alert crop and account)
with two members:

* ``store.sqlite3``, a copy made by SQLite's online backup API (consistent while others write),
  or ``store.pgdump``, ``pg_dump --format=custom`` run on a snapshot exported from a REPEATABLE
  READ transaction, in which the audit chain's head is read too: the dump and the head agree;
* ``manifest.json``: the dialect, schema revision, the payload's SHA-256, the audit chain's head
  in the payload (entries, last id, last hash), signed with HMAC-SHA256 under the host's audit
  key (``openlfr.governance.checkpoint``): a backup cut short or altered in storage is refused.

Restore refuses a store with a running deployment, checks the manifest and the payload, replaces
the store, and checks the restored chain against the manifest. The restored chain is older than
the store's checkpoint, so restore re-anchors it (``audit.anchor``) and says so in the chain: the
entry records the checkpoint it replaced, i.e. how far the log had gone before the restore.
Deployments the backup caught running are ended (no runner holds them) and retention runs, so a
watchlist copy or an alert past its period does not come back with the backup.
"""

from __future__ import annotations

import glob
import hashlib
import hmac
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, create_engine, inspect, make_url, select, text
from sqlalchemy.orm import Session

from openlfr.errors import OpenLFRError
from openlfr.governance import audit, checkpoint
from openlfr.store.db import alembic_config, make_engine, open_store
from openlfr.store.models import Deployment, utcnow

FORMAT = "openlfr-backup/1"
MANIFEST = "manifest.json"
PAYLOAD = {"sqlite": "store.sqlite3", "postgresql": "store.pgdump"}


class BackupError(OpenLFRError):
    """A backup that cannot be made, or one that will not be restored, and why."""


@dataclass(frozen=True)
class Manifest:
    dialect: str
    revision: str | None
    created_at: str
    sha256: str
    entries: int
    last_id: int
    last_hash: str
    format: str = FORMAT

    def payload(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":")).encode()

    def summary(self) -> str:
        return (
            f"{self.dialect} backup of {self.created_at}, audit chain to entry {self.last_id}"
            f" ({self.entries} entries), sha256 {self.sha256[:16]}"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _private_dir(near: Path) -> Iterator[Path]:
    """A 0700 scratch folder beside ``near`` (same file system, never a shared /tmp), removed
    afterwards whatever happens: the copies in it are personal data."""
    near.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=".openlfr-backup-", dir=near))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _chain_head(session: Session) -> audit.ChainWalk:
    walk = audit.walk_chain(audit.in_order(session))
    if not walk.result.ok:
        raise BackupError(
            f"the audit chain is broken at entry {walk.result.first_bad_id} ({walk.result.problem})"
        )
    return walk


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


# --- PostgreSQL's own tools ----------------------------------------------------------------------


def pg_tool(name: str) -> str:
    """``pg_dump`` or ``pg_restore``: on the PATH, else the newest under /usr/lib/postgresql."""
    if found := shutil.which(name):
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise BackupError(f"{name} not found: install PostgreSQL's client tools")
    return candidates[-1]


def _pg_command(url: URL) -> tuple[list[str], dict[str, str]]:
    """libpq's connection: the URI without the password (so no process list shows it), and the
    password in the environment."""
    uri = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = os.environ.copy()
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return [f"--dbname={uri}"], env


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tool = Path(command[0]).name
        raise BackupError(f"{tool} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


# --- backup --------------------------------------------------------------------------------------


def backup(url: str, dest: Path, *, actor: str, purpose: str, overwrite: bool = False) -> Manifest:
    """Write a backup of the store at ``url`` to ``dest``; the backup is audited first, so the
    backup holds its own record."""
    dest = dest.absolute()
    if dest.exists() and not overwrite:
        raise BackupError(f"{dest} exists: name a new file (or --force to replace it)")
    store = open_store(url)
    with store() as session:
        audit.append(session, actor=actor, action="backup", obj="store", purpose=purpose)
        session.commit()
    engine = store.kw["bind"]
    dialect = engine.dialect.name
    if dialect not in PAYLOAD:
        raise BackupError(f"backups of {dialect} stores are not supported")
    with _private_dir(dest.parent) as scratch:
        payload = scratch / PAYLOAD[dialect]
        if dialect == "sqlite":
            head, revision = _sqlite_snapshot(engine.url, payload)
        else:
            head, revision = _pg_snapshot(engine.url, payload)
        manifest = Manifest(
            dialect=dialect,
            revision=revision,
            created_at=utcnow().isoformat(),
            sha256=_sha256(payload),
            entries=head.result.entries,
            last_id=head.last_id,
            last_hash=head.last_hash,
        )
        record = checkpoint.signed(manifest).encode()
        tmp = scratch / "backup.tar"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode = len(record), 0o600
            tar.addfile(info, io.BytesIO(record))
            tar.add(payload, arcname=payload.name, filter=_private_member)
        os.replace(tmp, dest)  # whole or not at all
    engine.dispose()
    return manifest


def _private_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
    return info


def _sqlite_snapshot(url: URL, payload: Path) -> tuple[audit.ChainWalk, str | None]:
    fd = os.open(payload, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    source = sqlite3.connect(url.database)  # type: ignore[arg-type]
    target = sqlite3.connect(payload)
    try:
        source.backup(target)  # all pages in one step, under a read lock: one consistent state
    finally:
        target.close()
        source.close()
    return _sqlite_head(payload)


def _sqlite_head(path: Path) -> tuple[audit.ChainWalk, str | None]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            if connection.exec_driver_sql("PRAGMA integrity_check").scalar() != "ok":
                raise BackupError(f"{path.name} fails SQLite's integrity check")
            with Session(connection) as session:
                return _chain_head(session), _revision(connection)
    finally:
        engine.dispose()


def _pg_snapshot(url: URL, payload: Path) -> tuple[audit.ChainWalk, str | None]:
    """pg_dump on a snapshot this transaction exports: the chain's head read here is the one
    in the dump, whatever commits meanwhile."""
    engine = create_engine(url)
    repeatable = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    try:
        with repeatable as connection, connection.begin():
            snapshot = connection.scalar(text("SELECT pg_export_snapshot()"))
            with Session(connection) as session:
                head = _chain_head(session)
            revision = _revision(connection)
            args, env = _pg_command(url)
            os.close(os.open(payload, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            dump = [pg_tool("pg_dump"), *args, "--format=custom", f"--snapshot={snapshot}"]
            _run([*dump, "--no-owner", "--no-privileges", f"--file={payload}"], env)
            return head, revision
    finally:
        engine.dispose()


# --- restore -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    anchored: checkpoint.Checkpoint
    ended_deployments: list[int]
    replaced: str  # the checkpoint the restore stepped back from, in words


def read_backup(path: Path, into: Path, *, accept_unsigned: bool = False) -> tuple[Manifest, Path]:
    """The backup's manifest, its signature and payload checked, and the payload extracted into
    ``into``. Only the two expected members are read: no path in the archive is trusted."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            members = {m.name: m for m in tar.getmembers()}
            if MANIFEST not in members or not members[MANIFEST].isfile():
                raise BackupError(f"{path} is not an OpenLFR backup: no {MANIFEST}")
            data = json.loads(tar.extractfile(members[MANIFEST]).read())  # type: ignore[union-attr]
            mac = data.pop("hmac", "")
            manifest = Manifest(**data)
            name = PAYLOAD.get(manifest.dialect)
            if manifest.format != FORMAT or name not in members or not members[name].isfile():
                raise BackupError(f"{path} is not an OpenLFR backup of a known format")
            payload = into / name
            fd = os.open(payload, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(tar.extractfile(members[name]), out)  # type: ignore[misc]
    except (OSError, tarfile.TarError, ValueError, TypeError) as exc:
        raise BackupError(f"{path} is not a readable OpenLFR backup: {exc}") from exc
    key = checkpoint.load_key()
    signed = key is not None and hmac.compare_digest(str(mac), checkpoint.sign(key, manifest))
    if not signed and not accept_unsigned:
        raise BackupError(
            f"{path}: its signature does not match this host's audit key ({checkpoint.key_path()})"
            ": it was altered, or made under another key (install that key, or"
            " --accept-unsigned, which the restore records)"
        )
    if _sha256(payload) != manifest.sha256:
        raise BackupError(f"{path}: the store inside does not match its manifest (altered)")
    return manifest, payload


def _running_deployments(url: str) -> list[int]:
    """Deployments in the target store that a live process runs right now."""
    from openlfr.live.deployment import _runner_alive

    engine = make_engine(url)
    try:
        if "deployments" not in inspect(engine).get_table_names():
            return []
        with Session(engine) as session:
            running = session.scalars(select(Deployment).where(Deployment.status == "running"))
            return [d.id for d in running if _runner_alive(d)]
    finally:
        engine.dispose()


def restore(
    url: str, path: Path, *, actor: str, reason: str, accept_unsigned: bool = False
) -> Restored:
    """Replace the store at ``url`` with the backup at ``path``; see the module's docstring."""
    target = make_url(url)
    dialect = target.get_backend_name()
    if running := _running_deployments(url):
        raise BackupError(
            f"deployment(s) {', '.join(map(str, running))} are running on this store: stop"
            " them ('openlfr deployment stop') and the service before restoring"
        )
    with _private_dir(_scratch_near(target)) as scratch:
        manifest, payload = read_backup(path, scratch, accept_unsigned=accept_unsigned)
        if manifest.dialect != dialect:
            raise BackupError(f"a {manifest.dialect} backup cannot be restored into {dialect}")
        known = ScriptDirectory.from_config(alembic_config(url))
        if manifest.revision is not None and known.get_revision(manifest.revision) is None:
            raise BackupError(f"the backup's schema ({manifest.revision}) is newer than this code")
        if dialect == "sqlite":
            head, _ = _sqlite_head(payload)  # the payload itself, before it replaces anything
            _check_head(head, manifest)
            _sqlite_restore(payload, Path(target.database))  # type: ignore[arg-type]
        else:
            _pg_restore(target, payload)
    store = open_store(url)  # migrates a backup from an older schema
    try:
        with store() as session:
            _check_head(_chain_head(session), manifest)
            replaced = _checkpoint_in_words(audit.store_of(session))
            unsigned = "" if not accept_unsigned else " (accepted unsigned)"
            anchored = audit.anchor(
                session,
                actor=actor,
                reason=f"restore of a {manifest.summary()}{unsigned}: {reason}",
                action="restore",
            )
            session.commit()
        ended = _settle(store, actor)
    finally:
        store.kw["bind"].dispose()
    return Restored(manifest, anchored, ended, replaced)


def _checkpoint_in_words(store: str | None) -> str:
    try:
        old = checkpoint.read(store) if store else None
    except checkpoint.CheckpointError as exc:
        return f"untrusted ({exc})"
    return old.summary() if old else "no checkpoint"


def _scratch_near(target: URL) -> Path:
    if target.get_backend_name() == "sqlite" and target.database:
        return Path(target.database).absolute().parent
    from openlfr.config import data_dir

    return data_dir()


def _check_head(head: audit.ChainWalk, manifest: Manifest) -> None:
    if (head.result.entries, head.last_id, head.last_hash) != (
        manifest.entries,
        manifest.last_id,
        manifest.last_hash,
    ):
        raise BackupError(
            f"the restored audit chain ends at entry {head.last_id} ({head.result.entries}"
            f" entries), not where the backup's manifest says ({manifest.last_id},"
            f" {manifest.entries} entries)"
        )


def _sqlite_restore(payload: Path, database: Path) -> None:
    """SQLite's backup API, from the payload onto the live file: page by page under SQLite's
    own locks, so a reader never sees half of each."""
    if not database.exists():
        database.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    source = sqlite3.connect(payload)
    target = sqlite3.connect(database, timeout=30)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _pg_restore(target: URL, payload: Path) -> None:
    """pg_restore in one transaction: it replaces every object the dump holds, or nothing."""
    args, env = _pg_command(target)
    # A connection still holding a lock (a service left running) makes pg_restore fail after
    # half a minute, with the reason, rather than wait for ever.
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c lock_timeout=30s".strip()
    _run(
        [
            pg_tool("pg_restore"),
            *args,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            str(payload),
        ],
        env,
    )


def _settle(store, actor: str) -> list[int]:  # type: ignore[no-untyped-def]
    """What the backup caught in passing: deployments it saw running end now (their watchlist
    copies go, invariant 3), and retention purges what is past its period (invariant 2)."""
    from openlfr.governance.policy import load_policy
    from openlfr.governance.retention import run_retention
    from openlfr.live.deployment import destroy_snapshot

    with store() as session:
        ended = []
        for deployment in session.scalars(select(Deployment).where(Deployment.status == "running")):
            destroy_snapshot(session, deployment)
            deployment.status, deployment.ended_at = "ended", utcnow()
            deployment.end_reason = "ended at restore: the backup was taken while it ran"
            deployment.runner_pid = None
            ended.append(deployment.id)
        run_retention(session, utcnow(), load_policy(), actor=actor)
        session.commit()
    return ended
