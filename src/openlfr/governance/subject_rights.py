"""Data subjects' rights (UK GDPR / DPA 2018 Part 3): find everything held about a person by
name, export it (right of access), or erase it (right to erasure).

Every action is audited with row ids and counts only: the audit log outlives an erasure, so it
must not keep the erased name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from openlfr.errors import NotFoundError
from openlfr.governance import audit
from openlfr.store.models import (
    Adjudication,
    Alert,
    SnapshotTemplate,
    Subject,
    Suppression,
)


@dataclass
class Holdings:
    """What the store holds about one name: watchlist entries and the alerts about them."""

    subjects: list[Subject] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.subjects and not self.alerts

    def summary(self) -> str:
        return f"subject-ids:{','.join(str(s.id) for s in self.subjects)};alerts:{len(self.alerts)}"


def find(session: Session, name: str) -> Holdings:
    """Entries with this exact name on any watchlist, and alerts naming them (an alert keeps the
    name even after its entry was removed)."""
    subjects = list(session.scalars(select(Subject).where(Subject.name == name)))
    ids = [s.id for s in subjects]
    alerts = list(
        session.scalars(
            select(Alert)
            .where(or_(Alert.subject_name == name, Alert.subject_id.in_(ids)))
            .order_by(Alert.raised_at)
        )
    )
    return Holdings(subjects, alerts)


def _subject_record(subject: Subject) -> dict[str, object]:
    return {
        "id": subject.id,
        "watchlist": subject.watchlist.name,
        "name": subject.name,
        "category": subject.category,
        "reason": subject.reason,
        "legal_basis": subject.legal_basis,
        "authorised_by": subject.authorised_by,
        "added_by": subject.added_by,
        "image_source": subject.image_source,
        "date_of_birth": subject.date_of_birth.isoformat() if subject.date_of_birth else None,
        "expires_on": subject.expires_on.isoformat() if subject.expires_on else None,
        "review_flag": subject.review_flag,
        "created_at": subject.created_at.isoformat(),
        "images": [
            {
                "file": f"subject-{subject.id}-image-{i.id}-{Path(i.filename).name}",
                "sha256": i.sha256,
                "width": i.width,
                "height": i.height,
            }
            for i in subject.images
        ],
    }


def adjudications(session: Session, alerts: list[Alert]) -> dict[str, Adjudication]:
    """{alert id: its adjudication} for those of ``alerts`` that have one, in one query."""
    query = select(Adjudication).where(Adjudication.alert_id.in_([a.id for a in alerts]))
    return {a.alert_id: a for a in session.scalars(query)}


def _alert_record(alert: Alert, adjudication: Adjudication | None) -> dict[str, object]:
    return {
        "id": alert.id,
        "deployment_id": alert.deployment_id,
        "raised_at": alert.raised_at.isoformat(),
        "score": alert.score,
        "probe_image": f"alert-{alert.id}-probe.jpg",
        "decision": adjudication.decision if adjudication else None,
        "outcome": adjudication.outcome if adjudication else None,
    }


def export(session: Session, name: str, out_dir: Path, *, actor: str, purpose: str) -> Holdings:
    """Write ``subject.json`` and every image (enrolled photos, alert crops) into ``out_dir``."""
    held = find(session, name)
    if held.empty:
        raise NotFoundError(f"nothing is held under the name {name!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    decided = adjudications(session, held.alerts)
    records = {
        "name": name,
        "watchlist_entries": [_subject_record(s) for s in held.subjects],
        "alerts": [_alert_record(a, decided.get(a.id)) for a in held.alerts],
    }
    for subject in held.subjects:
        for image in subject.images:
            target = f"subject-{subject.id}-image-{image.id}-{Path(image.filename).name}"
            (out_dir / target).write_bytes(image.content)
    for alert in held.alerts:
        (out_dir / f"alert-{alert.id}-probe.jpg").write_bytes(alert.probe_image)
    (out_dir / "subject.json").write_text(json.dumps(records, indent=2), encoding="utf-8")
    audit.append(session, actor=actor, action="subject-export", obj=held.summary(), purpose=purpose)
    return held


def erase(session: Session, name: str, *, actor: str, purpose: str) -> Holdings:
    """Delete the entries (images and templates cascade), the alerts about them with their
    adjudications, and any watchlist copy or suppression naming them; the caller commits."""
    held = find(session, name)
    if held.empty:
        raise NotFoundError(f"nothing is held under the name {name!r}")
    ids = [s.id for s in held.subjects]
    alert_ids = [a.id for a in held.alerts]
    summary = held.summary()
    session.execute(delete(Adjudication).where(Adjudication.alert_id.in_(alert_ids)))
    session.execute(delete(Alert).where(Alert.id.in_(alert_ids)))
    session.execute(
        delete(SnapshotTemplate).where(
            or_(SnapshotTemplate.subject_id.in_(ids), SnapshotTemplate.subject_name == name)
        )
    )
    session.execute(delete(Suppression).where(Suppression.subject_id.in_(ids)))
    for subject in held.subjects:
        session.delete(subject)
    session.flush()
    audit.append(session, actor=actor, action="subject-erase", obj=summary, purpose=purpose)
    return held
