"""The audit chain (DESIGN.md, invariant 5): every action on personal data, append-only.

Each entry's hash covers its own fields and the previous entry's hash, so editing, deleting or
reordering any entry breaks every hash after it, and ``verify_chain`` says where.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from openlfr.store.models import AuditEntry, utcnow

GENESIS = "0" * 64
FIELDS = ("at", "actor", "action", "object", "purpose")


def entry_hash(prev_hash: str, at: str, actor: str, action: str, obj: str, purpose: str) -> str:
    """SHA-256 over the previous hash and this entry's fields, as canonical JSON."""
    payload = json.dumps(
        [prev_hash, at, actor, action, obj, purpose], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def append(session: Session, *, actor: str, action: str, obj: str, purpose: str) -> AuditEntry:
    """Add an entry in the caller's transaction: it is kept only if the action is.

    Concurrent appenders must not both link to the same predecessor (the chain would fork and
    verification would cry tampering). So the entry is written first, which takes the
    database's write lock (SQLite) or, after an explicit table lock (PostgreSQL), holds off
    other appenders until this transaction ends; only then is the predecessor read, and it can
    no longer change under us.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
    at = utcnow().isoformat(timespec="microseconds")
    entry = AuditEntry(
        at=at,
        actor=actor,
        action=action,
        object=obj,
        purpose=purpose,
        prev_hash="pending",
        hash=f"pending-{uuid.uuid4().hex}",
    )
    session.add(entry)
    session.flush()
    prev = session.scalar(
        select(AuditEntry.hash)
        .where(AuditEntry.id < entry.id)
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )
    entry.prev_hash = prev or GENESIS
    entry.hash = entry_hash(entry.prev_hash, at, actor, action, obj, purpose)
    session.flush()
    return entry


@dataclass
class Verification:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    problem: str | None = None


def verify_entries(entries: Iterable[AuditEntry]) -> Verification:
    prev, count = GENESIS, 0
    for entry in entries:
        count += 1
        if entry.prev_hash != prev:
            return Verification(False, count, entry.id, "does not follow the entry before it")
        expected = entry_hash(
            prev, entry.at, entry.actor, entry.action, entry.object, entry.purpose
        )
        if entry.hash != expected:
            return Verification(False, count, entry.id, "its content does not match its hash")
        prev = entry.hash
    return Verification(True, count)


def verify_chain(session: Session) -> Verification:
    """Walk the whole chain in order; the first broken link is reported."""
    return verify_entries(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
