"""The audit chain's anchor: a signed checkpoint of its head, kept outside the database.

The hash chain alone has no secret: whoever can write the ``audit_log`` table can delete its
newest rows, or recompute every hash after an edit, and the chain still verifies. So after each
committed append the head (entry count, last id, last hash, time) is written to a file beside
the store and signed with HMAC-SHA256 under a key that lives on the host, never in the database.
``openlfr audit verify`` then checks that the chain still reaches the checkpoint.

Files (0600, created on first use):

* the key: ``$OPENLFR_AUDIT_KEY`` if set, else ``<data dir>/audit.key`` (32 random bytes, hex);
* the checkpoints: ``$OPENLFR_AUDIT_CHECKPOINTS`` if set, else ``<data dir>/audit-checkpoints/``,
  one file per store (named by a hash of its identity: the SQLite file's path, or the
  PostgreSQL server and database name), with a ``.lock`` file beside it.

A checkpoint only moves forward: writers take an exclusive ``flock`` on the lock file, re-read
the checkpoint, extend it over entries that link to it, and replace the file atomically. The one
sanctioned step back is ``audit.anchor``, which re-anchors an intact chain (after a restore, or
on a store that never had a checkpoint) and records that it did in the chain itself.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import URL

from openlfr.config import data_dir
from openlfr.errors import OpenLFRError

KEY_ENV = "OPENLFR_AUDIT_KEY"
DIR_ENV = "OPENLFR_AUDIT_CHECKPOINTS"


class CheckpointError(OpenLFRError):
    """The checkpoint or its key cannot be trusted (forged, unreadable, exposed)."""


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head as it was at ``at``: ``entries`` entries, the last ``last_id``."""

    store: str
    entries: int
    last_id: int
    last_hash: str
    at: str

    def payload(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    def summary(self) -> str:
        return f"entry {self.last_id} ({self.entries} entries), signed {self.at}"


def store_identity(url: URL) -> str | None:
    """What names a store across processes: the SQLite file's real path, or the PostgreSQL
    server and database (no user or password). None for an in-memory SQLite database."""
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            return None
        return f"sqlite:{Path(url.database).resolve()}"
    return f"{url.get_backend_name()}://{url.host or ''}:{url.port or ''}/{url.database or ''}"


def key_path() -> Path:
    return Path(os.environ.get(KEY_ENV) or data_dir() / "audit.key")


def checkpoint_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or data_dir() / "audit-checkpoints")


def checkpoint_path(store: str) -> Path:
    return checkpoint_dir() / f"{hashlib.sha256(store.encode()).hexdigest()[:16]}.json"


def _private(path: Path) -> None:
    """Refuse a key or checkpoint that other users could read or replace."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CheckpointError(f"{path} is open to other users (mode {mode & 0o777:o}): chmod 600")


def load_key(create: bool = False) -> bytes | None:
    """The HMAC key; with ``create``, made (0600, race-free) when there is none yet."""
    path = key_path()
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
                out.flush()
                os.fsync(out.fileno())
    if not path.exists():
        return None
    try:
        _private(path)
        key = path.read_text().strip()
    except OSError as exc:  # e.g. another OS user's key: say so, do not crash
        raise CheckpointError(f"the audit key {path} cannot be read: {exc}") from exc
    if len(key) < 64:
        raise CheckpointError(f"the audit key {path} is too short or empty")
    return key.encode()


class Signable(Protocol):
    """A flat dataclass with canonical bytes to sign: a checkpoint, a backup's manifest."""

    def payload(self) -> bytes: ...


def sign(key: bytes, record: Signable) -> str:
    return hmac.new(key, record.payload(), hashlib.sha256).hexdigest()


def read(store: str) -> Checkpoint | None:
    """The store's checkpoint, its signature checked; None when there is none."""
    path = checkpoint_path(store)
    try:
        if not path.exists():
            return None
        _private(path)
    except OSError as exc:
        raise CheckpointError(f"the checkpoint {path} cannot be read: {exc}") from exc
    return load(path, store)


def load(path: Path, store: str) -> Checkpoint:
    """A checkpoint file (the store's own, or a copy kept elsewhere), its signature checked
    under this host's key."""
    key = load_key()
    if key is None:
        raise CheckpointError(f"a checkpoint exists but its key {key_path()} is missing")
    try:
        data = json.loads(path.read_text())
        mac = data.pop("hmac")
        checkpoint = Checkpoint(**data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(mac, str) or not hmac.compare_digest(mac, sign(key, checkpoint)):
        raise CheckpointError(f"the checkpoint {path} is forged: its signature does not match")
    if checkpoint.store != store:
        raise CheckpointError(f"the checkpoint {path} is for another store ({checkpoint.store})")
    return checkpoint


def signed(record: Signable) -> str:
    """The record as its file holds it (JSON with its ``hmac``): a checkpoint, for keeping a
    copy; a backup's manifest."""
    key = load_key(create=True)
    assert key is not None
    fields = asdict(record)  # type: ignore[call-overload]
    return json.dumps(fields | {"hmac": sign(key, record)}, indent=1)


def write(checkpoint: Checkpoint) -> None:
    """Replace the store's checkpoint atomically (temporary file, fsync, rename); call under
    ``lock``."""
    path = checkpoint_path(checkpoint.store)
    record = signed(checkpoint)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(record + "\n")
        out.flush()
        os.fsync(out.fileno())
    # No fsync of the folder: a rename lost to a power cut leaves the previous checkpoint,
    # which still holds (it only ever lags), and it saves a disk flush per audited action.
    os.replace(tmp, path)


@contextmanager
def lock(store: str) -> Iterator[None]:
    """Hold off every other process's checkpoint update for this store (``flock``: released
    by the kernel if the holder dies)."""
    path = checkpoint_path(store).with_suffix(".lock")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
