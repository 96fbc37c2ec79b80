"""Watchlist entries that need a human look: an expired entry is left out of new deployments
(``freeze_snapshot``) and flagged here, so that someone re-authorises it or removes it."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from openlfr.governance import audit
from openlfr.store.models import Subject

EXPIRED = "expired"


def unflagged_expired(session: Session, today: date) -> list[Subject]:
    """Entries past their expiry that nobody has been asked to review yet."""
    return list(
        session.scalars(
            select(Subject).where(
                Subject.expires_on.is_not(None),
                Subject.expires_on < today,
                Subject.review_flag.is_(None),
            )
        )
    )


def flag_expired(session: Session, today: date, actor: str = "system") -> list[int]:
    """Set ``review_flag`` on every entry past its expiry not flagged yet; returns their ids.

    Each flag is audited by subject id only: the audit log outlives the entry, so it must not
    carry the person's name."""
    subjects = unflagged_expired(session, today)
    for subject in subjects:
        subject.review_flag = f"{EXPIRED} on {subject.expires_on.isoformat()}"  # type: ignore[union-attr]
        audit.append(
            session,
            actor=actor,
            action="subject-review-flag",
            obj=f"subject-id:{subject.id}",
            purpose=f"watchlist entry expired on {subject.expires_on}: review or remove",
        )
    session.flush()
    return [s.id for s in subjects]
