"""Retention (DESIGN.md, invariants 2 and 3): purge what the policy no longer lets us keep, and
record each purge in the audit log, by counts and row ids only (never the purged data).

What goes, with the policy's ``[retention]`` section:

* alerts (their probe crop and reference image are columns of the row) raised more than
  ``alert_days`` ago, and alerts adjudicated "no-match" raised more than ``false_alert_days``
  ago, with their adjudications. Each deployment keeps the counts (alerts, true and false
  alerts, engagements, arrests) so that its transparency report still adds up;
* watchlist snapshot rows and suppressions of any deployment that is not running (ending a
  deployment deletes them; this catches a copy left by a crash before the next start);
* nothing from the audit log. Entries older than ``audit_days`` are only counted: each entry's
  hash covers the one before, so deleting the oldest would break ``openlfr audit verify``;
  archiving them (with the last hash as the new genesis) is a deliberate, manual step.

It also flags expired watchlist entries for review (``openlfr.governance.review``).
The caller passes ``now``, so tests run it on a clock they control.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from openlfr.governance import audit
from openlfr.governance.policy import Policy
from openlfr.governance.review import flag_expired, unflagged_expired
from openlfr.store.models import (
    Adjudication,
    Alert,
    AuditEntry,
    Deployment,
    SnapshotTemplate,
    Suppression,
)

ENGAGED = ("engaged", "arrested")  # an arrest follows an engagement; reports count these too


@dataclass
class RetentionResult:
    """What was (or, in a dry run, would be) purged: ids and counts, no personal data."""

    dry_run: bool
    alerts: list[str] = field(default_factory=list)  # past alert_days
    false_alerts: list[str] = field(default_factory=list)  # "no-match", past false_alert_days
    snapshot_rows: dict[int, int] = field(default_factory=dict)  # deployment id -> rows
    suppressions: int = 0
    flagged_subjects: list[int] = field(default_factory=list)
    audit_past_retention: int = 0  # counted, kept: see the module's docstring

    def lines(self) -> list[str]:
        verb = "would delete" if self.dry_run else "deleted"
        snapshots = sum(self.snapshot_rows.values())
        return [
            f"{verb} {len(self.alerts)} alerts past the alert retention period",
            f"{verb} {len(self.false_alerts)} false alerts (no-match) past their period",
            f"{verb} {snapshots} watchlist snapshot rows of "
            f"{len(self.snapshot_rows)} deployments not running",
            f"{verb} {self.suppressions} suppressions of deployments not running",
            f"{'would flag' if self.dry_run else 'flagged'} {len(self.flagged_subjects)} "
            "expired watchlist entries for review",
            f"kept {self.audit_past_retention} audit entries past audit_days (the chain must "
            "stay whole; archive by hand)",
        ]


def _due_alerts(session: Session, now: datetime, policy: Policy) -> tuple[list[str], list[str]]:
    days = policy.retention
    old = set(
        session.scalars(
            select(Alert.id).where(Alert.raised_at < now - timedelta(days=days.alert_days))
        )
    )
    false = set(
        session.scalars(
            select(Alert.id)
            .join(Adjudication, Adjudication.alert_id == Alert.id)
            .where(
                Adjudication.decision == "no-match",
                Alert.raised_at < now - timedelta(days=days.false_alert_days),
            )
        )
    )
    return sorted(old), sorted(false - old)


def _keep_counts(session: Session, alert_ids: list[str]) -> None:
    """Add the purged alerts to their deployments' tallies before the rows go."""
    rows = session.execute(
        select(Alert.deployment_id, Adjudication.decision, Adjudication.outcome)
        .outerjoin(Adjudication, Adjudication.alert_id == Alert.id)
        .where(Alert.id.in_(alert_ids))
    ).all()
    for deployment_id, decision, outcome in rows:
        deployment = session.get(Deployment, deployment_id)
        if deployment is None:
            continue
        deployment.purged_alerts += 1
        deployment.purged_true_alerts += decision == "match"
        deployment.purged_false_alerts += decision == "no-match"
        deployment.purged_engagements += outcome in ENGAGED
        deployment.purged_arrests += outcome == "arrested"


def run_retention(
    session: Session,
    now: datetime,
    policy: Policy,
    dry_run: bool = False,
    actor: str = "retention",
) -> RetentionResult:
    """Purge (or with ``dry_run`` only list) what is past retention; the caller commits."""
    result = RetentionResult(dry_run=dry_run)
    result.alerts, result.false_alerts = _due_alerts(session, now, policy)
    idle = select(Deployment.id).where(Deployment.status != "running")
    for deployment_id, rows in session.execute(
        select(SnapshotTemplate.deployment_id, func.count())
        .where(SnapshotTemplate.deployment_id.in_(idle))
        .group_by(SnapshotTemplate.deployment_id)
    ):
        result.snapshot_rows[deployment_id] = rows
    result.suppressions = (
        session.scalar(select(func.count()).where(Suppression.deployment_id.in_(idle))) or 0
    )
    cutoff = (now - timedelta(days=policy.retention.audit_days)).isoformat()
    result.audit_past_retention = (
        session.scalar(select(func.count()).where(AuditEntry.at < cutoff)) or 0
    )
    if dry_run:
        result.flagged_subjects = [s.id for s in unflagged_expired(session, now.date())]
        return result
    result.flagged_subjects = flag_expired(session, now.date(), actor=actor)
    purged = result.alerts + result.false_alerts
    if purged:
        _keep_counts(session, purged)
        # Adjudications first: not every database enforces the ON DELETE CASCADE.
        session.execute(delete(Adjudication).where(Adjudication.alert_id.in_(purged)))
        session.execute(delete(Alert).where(Alert.id.in_(purged)))
    if result.snapshot_rows:
        session.execute(
            delete(SnapshotTemplate).where(
                SnapshotTemplate.deployment_id.in_(list(result.snapshot_rows))
            )
        )
    if result.suppressions:
        session.execute(delete(Suppression).where(Suppression.deployment_id.in_(idle)))
    _record(session, result, policy, actor)
    session.flush()
    return result


def _record(session: Session, result: RetentionResult, policy: Policy, actor: str) -> None:
    """One audit entry per kind of purge, with counts and ids (alert ids are random tokens)."""
    days = policy.retention
    for what, ids, period in (
        ("alerts", result.alerts, f"alert_days={days.alert_days}"),
        ("false-alerts", result.false_alerts, f"false_alert_days={days.false_alert_days}"),
    ):
        if ids:
            audit.append(
                session,
                actor=actor,
                action="retention-purge",
                obj=f"{what}:{len(ids)}:" + ",".join(ids),
                purpose=f"retention policy {period}",
            )
    if result.snapshot_rows or result.suppressions:
        listed = ",".join(f"{d}={n}" for d, n in sorted(result.snapshot_rows.items()))
        audit.append(
            session,
            actor=actor,
            action="retention-purge",
            obj=f"snapshots:{listed};suppressions:{result.suppressions}",
            purpose="watchlist copies of deployments not running (invariant 3)",
        )
