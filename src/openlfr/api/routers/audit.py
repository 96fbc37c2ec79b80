"""The audit log, for auditors: browse, export (CSV or JSON), verify the chain."""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import select

from openlfr.api import roles
from openlfr.api.deps import DbSession, allow
from openlfr.api.schemas import NO_NUL, AuditOut, Purpose, VerificationOut
from openlfr.governance import audit
from openlfr.store.models import AuditEntry, User

router = APIRouter(prefix="/api/audit", tags=["audit"])
Auditor = Annotated[User, Depends(allow(roles.AUDIT))]
COLUMNS = ("id", "at", "actor", "action", "object", "purpose", "prev_hash", "hash")


def _filtered(actor: str | None, action: str | None, after_id: int):  # type: ignore[no-untyped-def]
    query = select(AuditEntry).where(AuditEntry.id > after_id)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    return query.order_by(AuditEntry.id)


@router.get("", response_model=list[AuditOut])
def browse(
    session: DbSession,
    user: Auditor,
    actor: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    action: Annotated[str | None, Query(max_length=60, pattern=NO_NUL)] = None,
    after_id: Annotated[int, Query(ge=0, le=2_147_483_647)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditEntry]:
    """Entries in chain order, after ``after_id`` (for paging)."""
    return list(session.scalars(_filtered(actor, action, after_id).limit(limit)))


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
)
def export(
    session: DbSession,
    user: Auditor,
    format: Literal["csv", "json"] = "csv",
    actor: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    action: Annotated[str | None, Query(max_length=60, pattern=NO_NUL)] = None,
    purpose: Annotated[Purpose, Query()] = "audit",
) -> Response:
    """The log (or a filtered part) as a file; the export itself is audited."""
    audit.append(
        session, actor=user.name, action="export", obj=f"audit_log:{format}", purpose=purpose
    )
    session.commit()
    rows = [
        {c: getattr(e, c) for c in COLUMNS} for e in session.scalars(_filtered(actor, action, 0))
    ]
    if format == "json":
        return Response(
            json.dumps(rows, ensure_ascii=False, indent=1),
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="openlfr-audit.json"'},
        )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="openlfr-audit.csv"'},
    )


@router.get("/verify", response_model=VerificationOut)
def verify(session: DbSession, user: Auditor) -> VerificationOut:
    """Recompute the chain and check it against its signed checkpoint: ``ok`` false names
    the first entry that does not hold, or the truncation, or the missing or forged checkpoint."""
    result = audit.verify(session)
    return VerificationOut(**result.__dict__)
