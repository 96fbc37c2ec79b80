"""Deployment authorisation (DESIGN.md, invariant 4): no deployment runs without a recorded
authorisation by someone other than its requester, confirmed signage, and a threshold the
policy allows or a written reason for going below it.

The record follows the College of Policing APP on LFR: the authorising officer sees the
justification (``reason``), the targeted area, the DPIA and the equality impact assessment.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openlfr.errors import PolicyError
from openlfr.governance import audit
from openlfr.governance.policy import Policy
from openlfr.matching import default_threshold
from openlfr.store.models import Deployment, User, utcnow


class AuthorisationError(PolicyError):
    """A deployment may not be authorised or started as asked."""


def minimum_threshold(policy: Policy, watchlist_size: int, model: str) -> float:
    """The lowest threshold allowed without an override: the policy's, or ``model``'s calibrated
    default for the list's size (its false-alert rate is what the equality evidence was made
    at). The policy's number is in the score units of the model's calibration."""
    if policy.deployment.min_threshold is not None:
        return policy.deployment.min_threshold
    return default_threshold(watchlist_size, model)


def check_threshold(
    threshold: float | None,
    watchlist_size: int,
    override_reason: str | None,
    policy: Policy,
    model: str,
) -> None:
    """Refuse a threshold below the minimum unless a written override reason is given."""
    if threshold is None:
        return  # the calibrated default is used: never below the minimum
    lowest = minimum_threshold(policy, watchlist_size, model)
    if threshold < lowest and not (override_reason or "").strip():
        raise AuthorisationError(
            f"threshold {threshold:g} is below the minimum {lowest:g} for a watchlist of "
            f"{watchlist_size}: record why with --threshold-override-reason"
        )


def authorise_deployment(
    session: Session,
    deployment: Deployment,
    *,
    by: str,
    policy: Policy,
    now: datetime | None = None,
) -> Deployment:
    """Record ``by``'s authorisation of a planned deployment, audited.

    Refuses: a deployment not planned, one already authorised, an authoriser who is its
    requester, a missing DPIA or equality reference, and, where the store has users, an
    authoriser without an account in one of ``policy.deployment.authoriser_roles``."""
    by = by.strip()
    if not by:
        raise AuthorisationError("an authorisation needs the authoriser's name")
    if deployment.status != "planned":
        raise AuthorisationError(f"deployment {deployment.id} is {deployment.status}")
    if deployment.authorised_by:
        raise AuthorisationError(
            f"deployment {deployment.id} is already authorised by {deployment.authorised_by}"
        )
    if by == deployment.created_by:
        raise AuthorisationError(
            "the authoriser must be someone other than the officer who requested the deployment"
        )
    if not deployment.dpia_ref.strip() or not deployment.equality_ref.strip():
        raise AuthorisationError(
            "a deployment needs a DPIA reference and an equality impact assessment reference "
            "before it can be authorised"
        )
    # Without accounts (a CLI-only install) names are all there is; with them, the role counts.
    if session.scalar(select(func.count(User.id))):
        user = session.scalar(select(User).where(User.name == by, User.active.is_(True)))
        roles = policy.deployment.authoriser_roles
        if user is None or user.role not in roles:
            raise AuthorisationError(
                f"{by!r} has no active account with an authorising role ({', '.join(roles)})"
            )
    deployment.authorised_by = by
    deployment.authorised_at = now or utcnow()
    audit.append(
        session,
        actor=by,
        action="deployment-authorise",
        obj=f"deployment:{deployment.id}:{deployment.watchlist_name}",
        purpose=f"requested by {deployment.created_by}: {deployment.reason}"[:500],
    )
    session.flush()
    return deployment


def confirm_signage(session: Session, deployment: Deployment, *, by: str) -> Deployment:
    """Record that notices are up at the area (often done on the day, after authorisation)."""
    if deployment.status != "planned":
        raise AuthorisationError(f"deployment {deployment.id} is {deployment.status}")
    if not by.strip():
        raise AuthorisationError("a signage confirmation needs the name of who checked")
    deployment.signage_confirmed = True
    audit.append(
        session,
        actor=by.strip(),
        action="deployment-signage",
        obj=f"deployment:{deployment.id}",
        purpose="signage at the area confirmed",
    )
    session.flush()
    return deployment


def check_can_start(deployment: Deployment, watchlist_size: int, policy: Policy) -> None:
    """Refuse to start without authorisation, confirmed signage, or an allowed threshold."""
    if not deployment.authorised_by:
        raise AuthorisationError(
            f"deployment {deployment.id} has not been authorised "
            f"('openlfr deployment authorise {deployment.id} --by NAME')"
        )
    if not deployment.signage_confirmed:
        raise AuthorisationError(
            f"deployment {deployment.id}: signage at the area has not been confirmed"
        )
    # Checked again at start: the list may have grown since planning, raising the minimum.
    check_threshold(
        deployment.threshold,
        watchlist_size,
        deployment.threshold_override_reason,
        policy,
        deployment_model(deployment),
    )


def deployment_model(deployment: Deployment) -> str:
    """The face model a deployment searches with (those planned before models had one: dlib)."""
    return deployment.model or "dlib-resnet-v1"
