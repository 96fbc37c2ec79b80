"""The audit chain (DESIGN.md, invariant 5): every action on personal data, append-only.

Each entry's hash covers its own fields and the previous entry's hash, so editing, deleting or
reordering any entry breaks every hash after it, and ``verify_chain`` says where.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from openlfr.store.models import AuditEntry, utcnow

GENESIS = "0" * 64
FIELDS = ("at", "actor", "action", "object", "purpose")

# One writer at a time in this process; across processes on PostgreSQL the row lock below
# serialises appends (SQLite serialises writers by itself).
_append_lock = threading.Lock()


def entry_hash(prev_hash: str, at: str, actor: str, action: str, obj: str, purpose: str) -> str:
    """SHA-256 over the previous hash and this entry's fields, as canonical JSON."""
    payload = json.dumps(
        [prev_hash, at, actor, action, obj, purpose], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def append(session: Session, *, actor: str, action: str, obj: str, purpose: str) -> AuditEntry:
    """Add an entry in the caller's transaction: it is kept only if the action is."""
    with _append_lock:
        last = session.scalar(
            select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1).with_for_update()
        )
        prev = last.hash if last is not None else GENESIS
        at = utcnow().isoformat(timespec="microseconds")
        entry = AuditEntry(
            at=at,
            actor=actor,
            action=action,
            object=obj,
            purpose=purpose,
            prev_hash=prev,
            hash=entry_hash(prev, at, actor, action, obj, purpose),
        )
        session.add(entry)
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
