"""Login throttling: failed logins are counted per account and per client address, in the
store, so every server process (and every worker of one) sees the same counts.

The rule (a force's reviewer can check it against these constants):

- an account is locked after ``ACCOUNT_LIMIT`` (5) failures, an address after
  ``ADDRESS_LIMIT`` (20), counted until ``QUIET`` (15 minutes) passes with no failure and no
  lock;
- the first lock lasts ``LOCK_BASE`` (1 minute); while the count has not gone quiet, the next
  failure locks again at once, each lock twice as long as the last, up to ``LOCK_CAP`` (30
  minutes);
- a locked account or address is answered 429 with ``Retry-After``, before any password is
  checked (so no guess is tried during a lock, and argon2's cost is not spent on a flood);
- a successful login clears its account's count, never its address's (one good account must
  not reset the budget an address spends guessing others).

Refused and throttled attempts are counted (``counters``), not written to the audit chain one
by one: the chain gets one entry per lockout, and only for an account that exists or for an
address, so nobody can fill it with names of their choosing.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from openlfr.governance import audit
from openlfr.store.models import Counter, LoginThrottle, User, as_utc, utcnow

ACCOUNT_LIMIT = 5  # $OPENLFR_LOGIN_ACCOUNT_LIMIT
ADDRESS_LIMIT = 20  # $OPENLFR_LOGIN_ADDRESS_LIMIT: a shared NAT or proxy may want more
QUIET = timedelta(minutes=15)
LOCK_BASE = timedelta(minutes=1)
LOCK_CAP = timedelta(minutes=30)
ACTOR = "service:login-throttle"


@dataclass(frozen=True)
class Subject:
    """What is throttled: an account name or a client address."""

    kind: str  # account | address
    value: str

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.kind}:{self.value}".encode()).hexdigest()

    @property
    def limit(self) -> int:
        if self.kind == "account":
            return int(os.environ.get("OPENLFR_LOGIN_ACCOUNT_LIMIT", ACCOUNT_LIMIT))
        return int(os.environ.get("OPENLFR_LOGIN_ADDRESS_LIMIT", ADDRESS_LIMIT))


def subjects(name: str, address: str) -> tuple[Subject, Subject]:
    return Subject("account", name), Subject("address", address)


def bump(session: Session, name: str) -> None:
    """Add one to a store-kept counter. On SQLite this takes the write lock, on PostgreSQL the
    counter's row lock: either way it serialises whatever the transaction does next."""
    session.execute(update(Counter).where(Counter.name == name).values(value=Counter.value + 1))


def counters(session: Session) -> dict[str, int]:
    return {c.name: c.value for c in session.scalars(select(Counter).order_by(Counter.name))}


def retry_after(session: Session, who: tuple[Subject, ...], now: datetime | None = None) -> int:
    """Seconds until every lock on ``who`` has passed; 0 when none is locked."""
    now = now or utcnow()
    rows = session.scalars(
        select(LoginThrottle).where(LoginThrottle.key.in_([s.key for s in who]))
    ).all()
    until = [as_utc(r.locked_until) for r in rows if r.locked_until is not None]
    remaining = max([(u - now).total_seconds() for u in until], default=0.0)
    return max(0, math.ceil(remaining))


def throttled(session: Session) -> None:
    """Count an attempt refused because of a lock (caller commits)."""
    bump(session, "login-throttled")


def record_failure(session: Session, who: tuple[Subject, ...], now: datetime | None = None) -> int:
    """Count a refused login against each of ``who``; lock any that reach their limit (one
    audit entry per lock). Returns the seconds the caller must now wait (0: not locked).
    The caller commits."""
    now = now or utcnow()
    bump(session, "login-refused")  # first: it serialises concurrent recorders (see bump)
    _forget_quiet(session, now)
    for subject in who:
        row = session.scalar(select(LoginThrottle).where(LoginThrottle.key == subject.key))
        if row is None:
            row = LoginThrottle(
                key=subject.key, kind=subject.kind, failures=0, lockouts=0, last_failure_at=now
            )
            session.add(row)
        with session.no_autoflush:
            row.label = _label(session, subject)
        row.failures += 1
        row.last_failure_at = now
        # after a first lock, one more failure before the count goes quiet locks again
        if row.failures >= subject.limit or row.lockouts > 0:
            lock = min(LOCK_BASE * 2**row.lockouts, LOCK_CAP)
            row.locked_until, row.failures = now + lock, 0
            row.lockouts += 1
            bump(session, "login-lockout")
            if row.label:
                audit.append(
                    session,
                    actor=ACTOR,
                    action="login-lockout",
                    obj=f"{subject.kind}:{row.label}:lockout={row.lockouts}",
                    purpose=f"locked for {int(lock.total_seconds())} s after refused logins",
                )
    session.flush()
    return retry_after(session, who, now)


def record_success(session: Session, name: str) -> None:
    """A correct password: the account's count starts again (its address's does not)."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.key == Subject("account", name).key))


def unlock(session: Session, subject: Subject) -> bool:
    """Lift a lock and clear the count (an admin or the host's operator); True if one was held."""
    result = session.execute(delete(LoginThrottle).where(LoginThrottle.key == subject.key))
    return bool(result.rowcount)


def locks(session: Session, now: datetime | None = None) -> list[LoginThrottle]:
    """Current locks, soonest lifted first."""
    now = now or utcnow()
    rows = session.scalars(
        select(LoginThrottle).where(LoginThrottle.locked_until.is_not(None))
    ).all()
    return sorted(
        (r for r in rows if as_utc(r.locked_until) > now), key=lambda r: as_utc(r.locked_until)
    )


def _label(session: Session, subject: Subject) -> str:
    if subject.kind == "address":
        return subject.value[:100]
    exists = session.scalar(select(User.id).where(User.name == subject.value))
    return subject.value if exists is not None else ""


def _forget_quiet(session: Session, now: datetime) -> None:
    """Drop counts that have gone quiet, so the table holds only recent trouble."""
    cutoff = now - QUIET
    session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.last_failure_at < cutoff,
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < cutoff),
        )
    )
