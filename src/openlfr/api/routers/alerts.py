"""Alerts: the queue, one alert with its images (audited views), adjudication and outcome."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from openlfr.api import roles
from openlfr.api.deps import DbSession, allow
from openlfr.api.schemas import (
    NO_NUL,
    AdjudicationIn,
    AdjudicationOut,
    AlertOut,
    Decision,
    OutcomeIn,
    Purpose,
    QueryId,
)
from openlfr.errors import NotFoundError
from openlfr.governance import audit
from openlfr.store.models import (
    Adjudication,
    Alert,
    Camera,
    Deployment,
    ReferenceImage,
    Suppression,
    User,
    utcnow,
)

router = APIRouter(prefix="/api", tags=["alerts"])
Reader = Annotated[User, Depends(allow(roles.ALERT_READ))]
Reviewer = Annotated[User, Depends(allow(roles.ADJUDICATE))]
RecordReader = Annotated[User, Depends(allow(roles.ADJUDICATION_READ))]


def _query() -> Select:
    return (
        select(Alert, Deployment.name, Camera.name, Adjudication)
        .join(Deployment, Deployment.id == Alert.deployment_id)
        .join(Camera, Camera.id == Alert.camera_id)
        .outerjoin(Adjudication, Adjudication.alert_id == Alert.id)
    )


def _out(alert: Alert, deployment: str, camera: str, adj: Adjudication | None) -> AlertOut:
    return AlertOut(
        id=alert.id,
        deployment_id=alert.deployment_id,
        deployment=deployment,
        camera=camera,
        track=alert.track,
        frame=alert.frame,
        time_s=alert.time_s,
        subject_id=alert.subject_id,
        subject_name=alert.subject_name,
        score=alert.score,
        similarity=alert.similarity,
        box=alert.box,
        latency_s=alert.latency_s,
        raised_at=alert.raised_at,
        updated_at=alert.updated_at,
        adjudication=AdjudicationOut.model_validate(adj) if adj is not None else None,
    )


def _one(session: Session, alert_id: str) -> AlertOut:
    row = session.execute(_query().where(Alert.id == alert_id)).first()
    if row is None:
        raise NotFoundError(f"no alert {alert_id!r}")
    out = _out(*row)
    out.reference_box = _reference_box(session, row[0])
    return out


def _reference_box(session: Session, alert: Alert) -> list[int] | None:
    """The enrolled face in the alert's reference image, so that the reviewer sees which face
    was meant where the photo shows several: the watchlist image with the same content (the
    snapshot copied it whole). None once the entry is gone (erased, or removed since)."""
    digest = hashlib.sha256(alert.reference_image).hexdigest()
    image = session.scalar(
        select(ReferenceImage).where(
            ReferenceImage.subject_id == alert.subject_id, ReferenceImage.sha256 == digest
        )
    )
    return image.templates[0].box if image is not None and image.templates else None


@router.get("/alerts", response_model=list[AlertOut])
def list_alerts(
    session: DbSession,
    user: Reader,
    deployment_id: QueryId = None,
    subject: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    state: Literal["pending", "decided", "all"] = "all",
    decision: Decision | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=2_147_483_647)] = 0,
) -> list[AlertOut]:
    """Alerts, newest first; ``state=pending`` is the reviewer's queue."""
    query = _query()
    if deployment_id is not None:
        query = query.where(Alert.deployment_id == deployment_id)
    if subject:
        query = query.where(Alert.subject_name == subject)
    if state == "pending":
        query = query.where(Adjudication.id.is_(None))
    elif state == "decided":
        query = query.where(Adjudication.id.is_not(None))
    if decision is not None:
        query = query.where(Adjudication.decision == decision.value)
    rows = session.execute(query.order_by(Alert.raised_at.desc()).limit(limit).offset(offset))
    return [_out(*row) for row in rows]


@router.get("/alerts/{alert_id}", response_model=AlertOut)
def show_alert(alert_id: str, session: DbSession, user: Reader) -> AlertOut:
    return _one(session, alert_id)


@router.get(
    "/alerts/{alert_id}/images/{which}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def alert_image(
    alert_id: str,
    which: Literal["probe", "reference"],
    session: DbSession,
    user: Reader,
    purpose: Annotated[Purpose, Query()] = "adjudication",
) -> Response:
    """The probe crop or the watchlist reference image of an alert (each view audited)."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFoundError(f"no alert {alert_id!r}")
    audit.append(
        session, actor=user.name, action="view", obj=f"alert:{alert_id}:{which}", purpose=purpose
    )
    session.commit()
    content = alert.probe_image if which == "probe" else alert.reference_image
    media = "image/png" if content.startswith(b"\x89PNG") else "image/jpeg"
    return Response(content, media_type=media, headers={"Cache-Control": "no-store"})


@router.post("/alerts/{alert_id}/adjudication", response_model=AlertOut, status_code=201)
def adjudicate(alert_id: str, body: AdjudicationIn, session: DbSession, user: Reviewer) -> AlertOut:
    """The reviewer's decision, once per alert. With ``suppress`` on a no-match, and a
    deployment that allows it, this face stops alerting for this subject."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFoundError(f"no alert {alert_id!r}")
    if session.scalar(select(Adjudication).where(Adjudication.alert_id == alert_id)):
        raise HTTPException(409, f"alert {alert_id} has already been adjudicated")
    if body.suppress:
        _suppress(session, alert, body.decision, user)
    session.add(
        Adjudication(
            alert_id=alert_id,
            reviewer=user.name,
            decision=body.decision.value,
            decided_at=utcnow(),
            note=body.note,
        )
    )
    audit.append(
        session,
        actor=user.name,
        action="adjudicate",
        obj=f"alert:{alert_id}:{body.decision.value}",
        purpose="adjudication",
    )
    session.commit()
    return _one(session, alert_id)


def _suppress(session: Session, alert: Alert, decision: Decision, user: User) -> None:
    deployment = session.get(Deployment, alert.deployment_id)
    if decision != Decision.NO_MATCH:
        raise HTTPException(422, "only a no-match decision can suppress a face")
    if deployment is None or not deployment.suppress_no_match:
        raise HTTPException(422, "this deployment does not allow suppressions")
    camera = session.get(Camera, alert.camera_id)
    session.add(
        Suppression(
            deployment_id=alert.deployment_id,
            camera=camera.name if camera else "",
            track=alert.track,
            subject_id=alert.subject_id,
            alert_id=alert.id,
            created_by=user.name,
        )
    )
    audit.append(
        session,
        actor=user.name,
        action="suppress",
        obj=f"alert:{alert.id}:track:{alert.track}:subject:{alert.subject_id}",
        purpose="no-match feedback for the rest of the deployment",
    )


@router.post("/alerts/{alert_id}/outcome", response_model=AlertOut)
def outcome(alert_id: str, body: OutcomeIn, session: DbSession, user: Reviewer) -> AlertOut:
    """What officers then did: engaged, arrested, no action, not located."""
    adj = session.scalar(select(Adjudication).where(Adjudication.alert_id == alert_id))
    if adj is None:
        if session.get(Alert, alert_id) is None:
            raise NotFoundError(f"no alert {alert_id!r}")
        raise HTTPException(409, "decide the alert (match / no match / cannot tell) first")
    adj.outcome, adj.outcome_by, adj.outcome_at = body.outcome.value, user.name, utcnow()
    audit.append(
        session,
        actor=user.name,
        action="outcome",
        obj=f"alert:{alert_id}:{body.outcome.value}",
        purpose="adjudication",
    )
    session.commit()
    return _one(session, alert_id)


@router.get("/adjudications", response_model=list[AdjudicationOut])
def list_adjudications(
    session: DbSession,
    user: RecordReader,
    deployment_id: QueryId = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[Adjudication]:
    """The adjudication record: decisions and outcomes (no images)."""
    query = select(Adjudication).join(Alert, Alert.id == Adjudication.alert_id)
    if deployment_id is not None:
        query = query.where(Alert.deployment_id == deployment_id)
    return list(session.scalars(query.order_by(Adjudication.decided_at.desc()).limit(limit)))
