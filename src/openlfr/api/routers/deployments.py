"""Deployments: plan, start (a background run in this server), stop, status board."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from openlfr.api import roles
from openlfr.api.deps import DbSession, allow
from openlfr.api.routers.models import model_unit
from openlfr.api.schemas import (
    CameraOut,
    DeploymentCreate,
    DeploymentOut,
    PushOut,
    RowId,
)
from openlfr.governance import audit
from openlfr.governance.authorisation import authorise_deployment, deployment_model
from openlfr.governance.policy import load_policy
from openlfr.live.deployment import (
    DeploymentError,
    create_deployment,
    get_deployment,
    recover_crashed,
    request_stop,
)
from openlfr.live.supervisor import camera_record
from openlfr.notify import PushConfigError
from openlfr.notify.pushes import configure_pushes, push_record, pushes_by_deployment
from openlfr.store.models import (
    Adjudication,
    Alert,
    AlertPush,
    Deployment,
    User,
    as_utc,
    utcnow,
)

router = APIRouter(prefix="/api/deployments", tags=["deployments"])
Reader = Annotated[User, Depends(allow(roles.DEPLOYMENT_READ))]
Officer = Annotated[User, Depends(allow(roles.DEPLOYMENT_WRITE))]


def _counts(
    session: Session, deployment_ids: list[int] | None = None
) -> dict[int, tuple[int, int]]:
    """{deployment id: (alerts, adjudicated alerts)} in one grouped query: the board asks every
    two seconds, and a query per deployment grows with every deployment ever planned."""
    adjudicated = func.count(Adjudication.alert_id.distinct())
    query = (
        select(Alert.deployment_id, func.count(Alert.id.distinct()), adjudicated)
        .outerjoin(Adjudication, Adjudication.alert_id == Alert.id)
        .group_by(Alert.deployment_id)
    )
    if deployment_ids is not None:
        query = query.where(Alert.deployment_id.in_(deployment_ids))
    return {d: (alerts, judged) for d, alerts, judged in session.execute(query)}


def deployment_out(
    session: Session,
    d: Deployment,
    counts: dict[int, tuple[int, int]] | None = None,
    pushes: dict[int, list[AlertPush]] | None = None,
) -> DeploymentOut:
    """The record with the board's figures: time left, faces processed, alerts, adjudicated;
    where its alerts are pushed. ``counts`` and ``pushes``, when given, are every deployment's
    (one query each for the whole board)."""
    if counts is None:
        counts = _counts(session, [d.id])
    if pushes is None:
        pushes = pushes_by_deployment(session, [d.id])
    out = DeploymentOut.model_validate(d)
    # each camera's live state, rate and crashes, as the supervisor writes them
    out.cameras = [CameraOut.model_validate(camera_record(c, d.status)) for c in d.cameras]
    out.pushes = [PushOut.model_validate(push_record(p)) for p in pushes.get(d.id, [])]
    out.model = deployment_model(d)  # those planned before models had one searched with dlib
    out.faces_processed = sum(c.faces_processed for c in d.cameras)
    out.alerts, out.adjudicated = counts.get(d.id, (0, 0))
    if d.status == "running":
        out.seconds_left = max(0.0, (as_utc(d.ends_at) - utcnow()).total_seconds())
    return out


@router.get("", response_model=list[DeploymentOut])
def list_all(session: DbSession, user: Reader) -> list[DeploymentOut]:
    recover_crashed(session)
    rows = session.scalars(
        select(Deployment).options(selectinload(Deployment.cameras)).order_by(Deployment.id.desc())
    )
    counts, pushes = _counts(session), pushes_by_deployment(session)
    return [deployment_out(session, d, counts, pushes) for d in rows]


@router.post(
    "",
    response_model=DeploymentOut,
    status_code=201,
    responses={
        409: {"description": "the face model is not installed"},
        422: {"description": "a bad plan, or an unknown face model"},
    },
)
def create(body: DeploymentCreate, session: DbSession, user: Officer) -> DeploymentOut:
    """Plan a deployment; the logged-in authorising officer is recorded as its author. Its face
    model (``model``, default the configured one) is fixed now: the watchlist must hold that
    model's templates when it starts."""
    names = [c.name for c in body.cameras]
    if len(set(names)) != len(names):
        raise HTTPException(422, "camera names must be unique within a deployment")
    model = model_unit(body.model).name
    try:
        deployment = _create(session, body, user, model)
        configure_pushes(
            session,
            deployment,
            actor=user.name,
            webhook_url=body.webhook_url,
            mqtt_url=body.mqtt_url,
            probe_image=body.push_probe_image,
        )
    except (DeploymentError, PushConfigError) as exc:  # a bad plan, not a state conflict
        raise HTTPException(422, str(exc)) from exc
    deployment.suppress_no_match = body.suppress_no_match
    audit.append(
        session,
        actor=user.name,
        action="deployment-plan",
        obj=f"deployment:{deployment.id}:{deployment.watchlist_name}",
        purpose=body.reason[:500],
    )
    session.commit()
    return deployment_out(session, deployment)


def _create(session: Session, body: DeploymentCreate, user: User, model: str) -> Deployment:
    return create_deployment(
        session,
        name=body.name,
        location=body.location,
        reason=body.reason,
        watchlist=body.watchlist,
        starts_at=body.starts_at or utcnow(),
        ends_at=body.ends_at,
        cameras={c.name: c.source for c in body.cameras},
        created_by=user.name,
        threshold=body.threshold,
        area=body.area,
        dpia_ref=body.dpia_ref,
        equality_ref=body.equality_ref,
        signage_confirmed=body.signage_confirmed,
        threshold_override_reason=body.threshold_override_reason,
        model=model,
    )


@router.post("/{deployment_id}/authorise", response_model=DeploymentOut)
def authorise(deployment_id: RowId, session: DbSession, user: Officer) -> DeploymentOut:
    """Authorise a planned deployment as the logged-in officer (who must not have planned it)."""
    deployment = authorise_deployment(
        session, get_deployment(session, deployment_id), by=user.name, policy=load_policy()
    )
    session.commit()
    return deployment_out(session, deployment)


@router.get("/{deployment_id}", response_model=DeploymentOut)
def status(deployment_id: RowId, session: DbSession, user: Reader) -> DeploymentOut:
    recover_crashed(session)
    return deployment_out(session, get_deployment(session, deployment_id))


@router.post(
    "/{deployment_id}/start",
    response_model=DeploymentOut,
    status_code=202,
    responses={
        409: {
            "description": "not startable now: not authorised, outside its window, no current "
            "subject, or current subjects without templates of its face model (re-embed them)"
        }
    },
)
def start(
    deployment_id: RowId, request: Request, session: DbSession, user: Officer
) -> DeploymentOut:
    """Freeze the watchlist (its templates of the deployment's face model) and run the cameras
    in this server until the end or a stop."""
    get_deployment(session, deployment_id)  # 404 before anything starts
    request.app.state.runner.start(deployment_id)
    audit.append(
        session,
        actor=user.name,
        action="deployment-start",
        obj=f"deployment:{deployment_id}",
        purpose="live recognition",
    )
    session.commit()
    session.expire_all()
    return deployment_out(session, get_deployment(session, deployment_id))


@router.post("/{deployment_id}/stop", response_model=DeploymentOut, status_code=202)
def stop(deployment_id: RowId, session: DbSession, user: Officer) -> DeploymentOut:
    """Ask it to stop; its watchlist copy is destroyed as it ends."""
    request_stop(session, deployment_id)
    audit.append(
        session,
        actor=user.name,
        action="deployment-stop",
        obj=f"deployment:{deployment_id}",
        purpose="live recognition",
    )
    session.commit()
    return deployment_out(session, get_deployment(session, deployment_id))
