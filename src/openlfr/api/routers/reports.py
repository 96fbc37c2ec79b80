"""Transparency reports per deployment or period: figures as JSON, files to download.

The figures and files are ``openlfr.governance.reports``'s, the same as ``openlfr report``'s;
this router only chooses the deployments and the format. Reports hold no personal data, so
reading one is not audited; an export (a file that leaves the system) is, by format and
deployment ids.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from openlfr.api import roles
from openlfr.api.deps import DbSession, allow
from openlfr.api.schemas import Purpose, QueryId, ReportOut
from openlfr.governance import audit
from openlfr.governance import reports as made
from openlfr.store.models import User

router = APIRouter(prefix="/api/reports", tags=["reports"])
Reader = Annotated[User, Depends(allow(roles.REPORT_READ))]
MEDIA = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
From = Annotated[date | None, Query(alias="from", description="period start (UTC), inclusive")]
To = Annotated[date | None, Query(alias="to", description="period end (UTC), exclusive")]


def _midnight(day: date | None) -> datetime | None:
    return datetime.combine(day, time(), UTC) if day else None


def _build(session: Session, deployment_id: int | None, start: date | None, end: date | None):  # type: ignore[no-untyped-def]
    """One deployment, or every deployment started in [from, to) (400 when neither is given)."""
    return made.build_report(
        session, deployment_id=deployment_id, start=_midnight(start), end=_midnight(end)
    )


@router.get("", response_model=ReportOut)
def report(
    session: DbSession,
    user: Reader,
    deployment_id: QueryId = None,
    start: From = None,
    end: To = None,
    charts: bool = False,
) -> ReportOut:
    """The figures per deployment and totalled (with ``charts=true``, the charts as PNGs)."""
    built = _build(session, deployment_id, start, end)
    images: list[str] = []
    if charts:
        images = made.chart_data_uris(built)
    return ReportOut.model_validate(
        {
            "title": built.title,
            "deployments": built.deployments,
            "totals": built.totals(),
            "charts": images,
        }
    )


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {media.split(";")[0]: {} for media in MEDIA.values()}}},
)
def export(
    session: DbSession,
    user: Reader,
    format: Literal["html", "pdf", "csv", "json"] = "html",
    deployment_id: QueryId = None,
    start: From = None,
    end: To = None,
    purpose: Annotated[Purpose, Query()] = "transparency report",
) -> Response:
    """The report as a file, as ``openlfr report --format`` writes it (audited)."""
    built = _build(session, deployment_id, start, end)
    if format == "pdf":
        buffer = io.BytesIO()
        made.to_pdf(built, buffer)
        content: bytes | str = buffer.getvalue()
    else:
        writer = {"html": made.to_html, "csv": made.to_csv, "json": made.to_json}[format]
        content = writer(built)
    ids = ",".join(str(d.id) for d in built.deployments)
    audit.append(
        session,
        actor=user.name,
        action="report-export",
        obj=f"report:{format}:deployments:{ids}",
        purpose=purpose,
    )
    session.commit()
    name = f"openlfr-report-{deployment_id}" if deployment_id else f"openlfr-report-{start}-{end}"
    return Response(
        content,
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'},
    )
