"""Data subjects' rights over the API: find, export (a zip) and erase what is held under one name.

``openlfr.governance.subject_rights`` does the work, as for ``openlfr subject``; every call is
audited there or here by entry ids and counts, never the name (the log outlives an erasure).
Names travel in POST bodies, not URLs, so access logs and browser history do not keep them.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from openlfr.api import roles
from openlfr.api.deps import DbSession, allow
from openlfr.api.schemas import (
    ErasureOut,
    ErasureRequest,
    HeldAlert,
    HeldEntry,
    HoldingsOut,
    SubjectRequest,
)
from openlfr.governance import audit, subject_rights
from openlfr.store.models import User

router = APIRouter(prefix="/api/subjects", tags=["subject rights"])
Finder = Annotated[User, Depends(allow(roles.SUBJECT_FIND))]
Exporter = Annotated[User, Depends(allow(roles.SUBJECT_EXPORT))]
Eraser = Annotated[User, Depends(allow(roles.SUBJECT_ERASE))]


@router.post("/find", response_model=HoldingsOut)
def find(body: SubjectRequest, session: DbSession, user: Finder) -> HoldingsOut:
    """Watchlist entries with exactly this name, and alerts about them (audited look-up)."""
    held = subject_rights.find(session, body.name)
    decisions = subject_rights.adjudications(session, held.alerts)
    out = HoldingsOut(
        entries=[
            HeldEntry(
                id=s.id,
                watchlist=s.watchlist.name,
                category=s.category,
                images=len(s.images),
                expires_on=s.expires_on,
                created_at=s.created_at,
                review_flag=s.review_flag,
            )
            for s in held.subjects
        ],
        alerts=[
            HeldAlert(
                id=a.id,
                deployment_id=a.deployment_id,
                raised_at=a.raised_at,
                decision=decisions[a.id].decision if a.id in decisions else None,
                outcome=decisions[a.id].outcome if a.id in decisions else None,
            )
            for a in held.alerts
        ],
    )
    audit.append(
        session, actor=user.name, action="subject-find", obj=held.summary(), purpose=body.purpose
    )
    session.commit()
    return out


@router.post(
    "/export",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}, 404: {"description": "nothing held"}},
)
def export(body: SubjectRequest, session: DbSession, user: Exporter) -> Response:
    """A zip of what ``openlfr subject export`` writes: subject.json and every image."""
    with tempfile.TemporaryDirectory(prefix="openlfr-subject-") as folder:
        out = Path(folder)
        subject_rights.export(session, body.name, out, actor=user.name, purpose=body.purpose)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(out.iterdir()):
                archive.write(path, path.name)
    session.commit()  # the export's audit entry, once the archive is made
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        # no name in the file name either: downloads folders outlive an erasure too
        headers={"Content-Disposition": 'attachment; filename="openlfr-subject-export.zip"'},
    )


@router.post("/erase", response_model=ErasureOut, responses={404: {"description": "nothing held"}})
def erase(body: ErasureRequest, session: DbSession, user: Eraser) -> ErasureOut:
    """Delete the entries (images, templates), the alerts about them with their adjudications,
    watchlist copies and suppressions. ``confirm_name`` must repeat the name."""
    held = subject_rights.erase(session, body.name, actor=user.name, purpose=body.purpose)
    erased = ErasureOut(entry_ids=[s.id for s in held.subjects], alerts=len(held.alerts))
    session.commit()
    return erased
