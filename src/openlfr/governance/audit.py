"""The audit chain (DESIGN.md, invariant 5): every action on personal data, append-only.

Each entry's hash covers its own fields and the previous entry's hash, so editing, deleting or
reordering any entry breaks every hash after it, and ``verify_chain`` says where. Cutting entries
off the end, or rewriting the chain wholesale, leaves a chain that verifies; so its head is also
anchored outside the database, in a signed checkpoint (``openlfr.governance.checkpoint``) that
moves forward after every committed append, and ``verify`` checks the chain against it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from openlfr.errors import OpenLFRError
from openlfr.governance import checkpoint
from openlfr.governance.checkpoint import Checkpoint, CheckpointError
from openlfr.store.models import AuditEntry, utcnow

GENESIS = "0" * 64
FIELDS = ("at", "actor", "action", "object", "purpose")
_APPENDED = "openlfr.audit.appended"  # session.info flag: this transaction appended
log = logging.getLogger(__name__)


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
    no longer change under us. On PostgreSQL that read must see rows committed while we waited
    for the lock, which only READ COMMITTED does: a REPEATABLE READ or SERIALIZABLE transaction
    reads its older snapshot and would fork the chain, so it is refused.

    Once the transaction commits, the checkpoint moves forward over the new entry.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
        isolation = session.scalar(text("SELECT current_setting('transaction_isolation')"))
        if isolation != "read committed":
            raise OpenLFRError(
                f"audit entries are appended only in READ COMMITTED transactions, not {isolation}"
                " (a snapshot taken earlier would fork the chain): check the database's"
                " default_transaction_isolation"
            )
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
    session.info[_APPENDED] = True
    return entry


@event.listens_for(Session, "after_commit")
def _advance_after_commit(session: Session) -> None:
    """Only a committed append moves the checkpoint; what it reads is the committed chain, so
    a rolled-back entry (``after_rollback`` drops the flag) can never be anchored."""
    if not session.info.pop(_APPENDED, False):
        return
    try:
        advance_checkpoint(session.get_bind().engine)
    except (CheckpointError, OSError, SQLAlchemyError) as exc:
        # The action is committed; the checkpoint lags and `audit verify` says by how much.
        log.warning("audit checkpoint not advanced: %s", exc)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_APPENDED, None)


def advance_checkpoint(engine: Engine) -> Checkpoint | None:
    """Extend the store's checkpoint over the committed entries that link on from it, under
    the checkpoint's lock, so that it only ever moves forward (whichever process gets there
    first anchors the others' entries too). A checkpoint the chain no longer reaches is left
    as it is, for ``verify`` to report: the evidence of a truncation is never overwritten.
    The first checkpoint is made only where there is no key yet (a new installation, or one
    from before checkpoints); after that a missing one stays missing until ``anchor``."""
    store = checkpoint.store_identity(engine.url)
    if store is None:
        return None
    with checkpoint.lock(store), Session(engine) as session:
        current = checkpoint.read(store)
        if current is None and checkpoint.key_path().exists():
            # This host anchors already, yet this store has no checkpoint: it was lost or
            # removed. Making a new one from the chain as it now is would hide a truncation.
            log.warning("audit checkpoint missing: 'openlfr audit anchor' makes a new one")
            return None
        entries, last_id, prev = 0, 0, GENESIS
        if current is not None:
            entries, last_id, prev = current.entries, current.last_id, current.last_hash
        # One query: the anchored entry itself (which must still be there), then what follows.
        rows = iter(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.id >= last_id)
                .order_by(AuditEntry.id)
                .execution_options(yield_per=1000)
            )
        )
        if last_id:
            first = next(rows, None)
            if first is None or (first.id, first.hash) != (last_id, prev):
                log.warning("audit checkpoint not advanced: the chain no longer reaches it")
                return current
        moved = False
        for entry in rows:
            if entry.prev_hash != prev or entry.hash != _recomputed(entry, prev):
                break  # a broken link: anchor no further than the last good entry
            entries, last_id, prev, moved = entries + 1, entry.id, entry.hash, True
        if not moved:
            return current
        advanced = Checkpoint(store, entries, last_id, prev, utcnow().isoformat())
        checkpoint.write(advanced)
        return advanced


def _recomputed(entry: AuditEntry, prev: str) -> str:
    return entry_hash(prev, entry.at, entry.actor, entry.action, entry.object, entry.purpose)


@dataclass
class Verification:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    problem: str | None = None
    checkpoint: str | None = None  # the checkpoint the chain was checked against, in words
    unanchored: int = 0  # entries newer than it: not yet covered against truncation


@dataclass
class ChainWalk:
    """A walk along the chain: its verdict, and the head it reached."""

    result: Verification
    last_id: int = 0
    last_hash: str = GENESIS
    # watched id -> (entries up to it, hash); the genesis is reached by every chain
    reached: dict[int, tuple[int, str]] = field(default_factory=lambda: {0: (0, GENESIS)})


def walk_chain(entries: Iterable[AuditEntry], watch: Iterable[int] = ()) -> ChainWalk:
    watched = set(watch)
    walk = ChainWalk(Verification(True, 0))
    prev, count = GENESIS, 0
    for entry in entries:
        count += 1
        if entry.prev_hash != prev:
            return ChainWalk(
                Verification(False, count, entry.id, "does not follow the entry before it")
            )
        if entry.hash != _recomputed(entry, prev):
            return ChainWalk(
                Verification(False, count, entry.id, "its content does not match its hash")
            )
        prev = entry.hash
        if entry.id in watched:
            walk.reached[entry.id] = (count, prev)
        walk.last_id = entry.id
    walk.result.entries, walk.last_hash = count, prev
    return walk


def in_order(session: Session) -> Iterable[AuditEntry]:
    return session.scalars(
        select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=1000)
    )


def verify_entries(entries: Iterable[AuditEntry]) -> Verification:
    return walk_chain(entries).result


def verify_chain(session: Session) -> Verification:
    """Walk the whole chain in order; the first broken link is reported. This checks the links
    only: ``verify`` also checks the chain against its checkpoint, which catches truncation."""
    return verify_entries(in_order(session))


def store_of(session: Session) -> str | None:
    """The identity checkpoints are kept under (``checkpoint.store_identity``)."""
    return checkpoint.store_identity(session.get_bind().engine.url)


def verify(session: Session, kept: Iterable[Checkpoint] = ()) -> Verification:
    """The chain's links, and that it still reaches the store's checkpoint and every ``kept``
    copy of an older one (copies kept off the host survive an attacker who holds the key).

    A missing checkpoint under a non-empty chain, a forged one, or one the chain no longer
    reaches (its newest entries deleted, or the chain rewritten) makes ``ok`` false."""
    store = store_of(session)
    try:
        own = checkpoint.read(store) if store else None
    except CheckpointError as exc:
        chain = verify_chain(session)
        if not chain.ok:
            return chain
        return Verification(False, chain.entries, None, f"checkpoint: {exc}")
    anchors = [c for c in (own, *kept) if c is not None]
    walk = walk_chain(in_order(session), (c.last_id for c in anchors))
    result = walk.result
    if not result.ok:
        return result
    if not anchors:
        if store is None:
            result.checkpoint = "none: an in-memory store is not anchored"
        elif result.entries:
            result.ok = False
            result.problem = (
                "no checkpoint anchors the chain, so a truncation would not show: once the log"
                " has been checked, 'openlfr audit anchor --reason ...' makes one"
            )
        return result
    for anchor in sorted(anchors, key=lambda c: c.last_id):
        reached = walk.reached.get(anchor.last_id)
        where = f"the checkpoint signed {anchor.at} anchors entry {anchor.last_id}"
        if reached is None:
            problem = (
                f"truncated: {where} ({anchor.entries} entries), but the log now ends at entry"
                f" {walk.last_id} ({result.entries} entries)"
            )
        elif reached[1] != anchor.last_hash:
            problem = f"rewritten: {where}, and the entry there now is another"
        elif reached[0] != anchor.entries:
            problem = f"rewritten: {where} as entry number {anchor.entries}, now {reached[0]}"
        else:
            continue
        return Verification(False, result.entries, anchor.last_id, problem, anchor.summary())
    newest = max(anchors, key=lambda c: c.last_id)
    result.checkpoint = newest.summary()
    result.unanchored = result.entries - newest.entries
    return result


def anchor(
    session: Session, *, actor: str, reason: str, action: str = "audit-anchor"
) -> Checkpoint:
    """Re-anchor an intact chain at its present head, and record that in the chain: the one
    step a checkpoint may take back (after a restore), or the first checkpoint of a store that
    predates them. The caller commits; the new entry is then anchored like any other."""
    store = store_of(session)
    if store is None:
        raise OpenLFRError("an in-memory store has no checkpoint")
    if session.info.get(_APPENDED):
        # the head read below would include entries that a rollback could still take away
        raise OpenLFRError("re-anchor in a transaction of its own, not after other appends")
    with checkpoint.lock(store):
        walk = walk_chain(in_order(session))
        if not walk.result.ok:
            raise OpenLFRError(
                f"the chain is broken at entry {walk.result.first_bad_id}"
                f" ({walk.result.problem}): a broken chain is never re-anchored"
            )
        try:
            old = checkpoint.read(store)
            was = old.summary() if old else "none"
        except CheckpointError as exc:
            was = f"untrusted ({exc})"
        new = Checkpoint(
            store, walk.result.entries, walk.last_id, walk.last_hash, utcnow().isoformat()
        )
        checkpoint.write(new)
    append(
        session,
        actor=actor,
        action=action,
        obj=f"checkpoint: {new.summary()}; was: {was}",
        purpose=reason,
    )
    return new
