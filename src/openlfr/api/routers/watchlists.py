"""Watchlists, subjects and their reference images, with enrolment by upload."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import Response
from sqlalchemy import func, select

from openlfr.api import roles
from openlfr.api.deps import DbSession, allow
from openlfr.api.limits import max_upload_bytes
from openlfr.api.routers.models import model_unit
from openlfr.api.schemas import (
    FaceBox,
    FacesOut,
    ImageOut,
    Purpose,
    ReembedIn,
    ReembedOut,
    ReembedProblem,
    RowId,
    SafeName,
    SubjectCreate,
    SubjectOut,
    WatchlistCreate,
    WatchlistDetail,
    WatchlistOut,
)
from openlfr.errors import ImageError, NotFoundError
from openlfr.governance import audit
from openlfr.governance.policy import load_policy
from openlfr.store.models import ReferenceImage, Subject, User, Watchlist
from openlfr.store.watchlists import (
    WatchlistEntry,
    add_reference_image,
    add_subject,
    create_watchlist,
    get_subject,
    get_watchlist,
    list_watchlists,
    reembed_watchlist,
    remove_subject,
)
from openlfr.vision.models import FaceModel, listed_default
from openlfr.vision.pick import Pick, eye_distance, pick_face

router = APIRouter(prefix="/api/watchlists", tags=["watchlists"])
Reader = Annotated[User, Depends(allow(roles.WATCHLIST_READ))]
Manager = Annotated[User, Depends(allow(roles.WATCHLIST_WRITE))]


def _summary(session: DbSession, watchlist: Watchlist) -> dict:
    count = session.scalar(select(func.count()).where(Subject.watchlist_id == watchlist.id))
    return {
        "id": watchlist.id,
        "name": watchlist.name,
        "description": watchlist.description,
        "created_at": watchlist.created_at,
        "subjects": count or 0,
    }


def _image_out(image: ReferenceImage, model: str | None) -> ImageOut:
    """An image's metadata: which models have a template of it, and the quality as measured
    for ``model`` (the configured one), else by whichever model has a template."""
    template = (image.template_for(model) if model else None) or next(iter(image.templates), None)
    return ImageOut(
        id=image.id,
        filename=image.filename,
        sha256=image.sha256,
        width=image.width,
        height=image.height,
        quality_score=template.quality_score if template else None,
        templates=[t.model for t in image.templates],
        face_box=template.box if template else None,
    )


def _subject_out(subject: Subject, model: str | None = None) -> SubjectOut:
    out = SubjectOut.model_validate(subject)
    out.images = [_image_out(i, model) for i in subject.images]
    return out


def _why(subject: Subject) -> str:
    """An enrolment's audited purpose, as the CLI's import writes it: the category and its
    authority. Not the free-text reason, which may well name the person."""
    authority = f"legal basis: {subject.legal_basis}; authorised by {subject.authorised_by}"
    return f"{subject.category}; {authority}"


def _subject(session: DbSession, watchlist: Watchlist, name: str) -> Subject:
    subject = get_subject(session, watchlist, name)
    if subject is None:
        raise NotFoundError(f"no subject {name!r} on watchlist {watchlist.name!r}")
    return subject


@router.get("", response_model=list[WatchlistOut])
def list_all(session: DbSession, user: Reader) -> list[dict]:
    return [_summary(session, w) for w in list_watchlists(session)]


@router.post("", response_model=WatchlistOut, status_code=201)
def create(body: WatchlistCreate, session: DbSession, user: Manager) -> dict:
    watchlist = create_watchlist(session, body.name, body.description)
    audit.append(
        session,
        actor=user.name,
        action="watchlist-create",
        obj=f"watchlist:{watchlist.name}",
        purpose="watchlist management",
    )
    session.commit()
    return _summary(session, watchlist)


@router.get("/{name}", response_model=WatchlistDetail)
def show(name: str, session: DbSession, user: Reader) -> WatchlistDetail:
    """A watchlist with its subjects and their images' metadata (not the images)."""
    watchlist = get_watchlist(session, name)
    model = listed_default()
    return WatchlistDetail(
        **_summary(session, watchlist),
        subject_list=[_subject_out(s, model) for s in watchlist.subjects],
    )


@router.post("/{name}/subjects", response_model=SubjectOut, status_code=201)
def enrol_subject(name: str, body: SubjectCreate, session: DbSession, user: Manager) -> SubjectOut:
    """Add a subject (category from the policy, written reason); images come next."""
    watchlist = get_watchlist(session, name)
    if get_subject(session, watchlist, body.name) is not None:
        raise HTTPException(409, f"subject {body.name!r} is already on watchlist {name!r}")
    entry = WatchlistEntry(
        category=body.category,
        reason=body.reason,
        legal_basis=body.legal_basis,
        authorised_by=body.authorised_by,
        added_by=user.name,
        image_source=body.image_source,
        expires_on=body.expires_on,
    )
    subject = add_subject(
        session,
        watchlist,
        name=body.name,
        entry=entry,
        policy=load_policy(),
        date_of_birth=body.date_of_birth,
    )
    # Ids, not names, as the CLI's enrolment: the log outlives an erasure (subject rights).
    audit.append(
        session,
        actor=user.name,
        action="enrol",
        obj=f"watchlist:{watchlist.name}:subject-ids:{subject.id}",
        purpose=_why(subject)[:500],
    )
    session.commit()
    return _subject_out(subject, listed_default())


@router.delete("/{name}/subjects/{subject}", status_code=204)
def delete_subject(name: str, subject: str, session: DbSession, user: Manager) -> None:
    """Remove a subject with all their images and templates."""
    watchlist = get_watchlist(session, name)
    subject_id = remove_subject(session, watchlist, subject)
    audit.append(
        session,
        actor=user.name,
        action="delete",
        obj=f"watchlist:{watchlist.name}:subject-ids:{subject_id}",
        purpose="watchlist management",
    )
    session.commit()


def _parse_box(box: str | None) -> list[int] | None:
    if box is None:
        return None
    try:
        numbers = [int(float(v)) for v in box.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) != 4 or numbers[2] <= numbers[0] or numbers[3] <= numbers[1]:
        raise HTTPException(422, "box is 'x1,y1,x2,y2' with x2 > x1 and y2 > y1")
    return numbers


def _read_faces(file: UploadFile, unit: FaceModel) -> tuple[bytes, str, tuple[int, int], list]:
    """An upload's bytes, safe file name, size and faces (held in memory only)."""
    from openlfr.vision import find_faces
    from openlfr.vision.image import load_image

    limit = max_upload_bytes()
    content = file.file.read(limit + 1)
    if len(content) > limit:
        raise HTTPException(413, f"image over the limit of {limit:,} bytes")
    if not content:
        raise HTTPException(422, "empty upload")
    filename = (file.filename or "upload").replace("\\", "/").rsplit("/", 1)[-1][:200] or "upload"
    try:
        rgb = load_image(content)
        height, width = rgb.shape[:2]
        faces = find_faces(rgb, model=unit, upsample=1)
    except ImageError as exc:
        raise HTTPException(422, f"not a readable image: {exc}") from exc
    return content, filename, (width, height), faces


@router.post(
    "/{name}/faces",
    response_model=FacesOut,
    responses={413: {"description": "too large"}, 422: {"description": "not a usable image"}},
)
def preview_faces(
    name: str,
    session: DbSession,
    user: Manager,
    file: Annotated[UploadFile, File(description="the photo about to be enrolled")],
) -> FacesOut:
    """The faces a photo shows and which one each pick rule would take, so that the manager can
    choose before enrolling. Nothing is kept: the photo and its faces live in this request only,
    as a probe's do, and nothing is audited because nothing is held."""
    get_watchlist(session, name)
    _, _, (width, height), faces = _read_faces(file, model_unit())
    picks: dict[str, int | None] = {}
    reasons: dict[str, str] = {}
    for rule in Pick:
        face, why = pick_face(faces, width, height, rule)
        picks[rule.value] = next((i for i, f in enumerate(faces) if f is face), None)
        if face is None:
            reasons[rule.value] = why
    return FacesOut(
        width=width,
        height=height,
        faces=[FaceBox(box=f.box.as_list(), eye_distance=round(eye_distance(f), 1)) for f in faces],
        picks=picks,
        reasons=reasons,
    )


@router.post(
    "/{name}/subjects/{subject}/images",
    response_model=ImageOut,
    status_code=201,
    responses={
        409: {"description": "already enrolled, or the configured face model is not installed"},
        413: {"description": "too large"},
        422: {"description": "not a usable image"},
    },
)
def upload_image(
    name: str,
    subject: str,
    session: DbSession,
    user: Manager,
    file: Annotated[UploadFile, File(description="JPEG or PNG of the subject's face")],
    pick: Annotated[
        Pick | None,
        Form(description="several faces: take the largest or the centre one, if it dominates"),
    ] = None,
    box: Annotated[
        str | None,
        Form(description="several faces: the one in this box, 'x1,y1,x2,y2' (the console's click)"),
    ] = None,
) -> ImageOut:
    """Enrol a reference image, kept whole, with the configured face model's template of the
    one face it shows, or of the face that ``pick`` or ``box`` says is meant (the template
    records its box; ``POST .../faces`` shows the boxes first). ``POST
    /api/watchlists/{name}/re-embed`` adds another model's template later."""
    watchlist = get_watchlist(session, name)
    record = _subject(session, watchlist, subject)
    unit = model_unit()
    chosen = _parse_box(box)
    content, filename, (width, height), faces = _read_faces(file, unit)
    face, why = pick_face(faces, width, height, pick, chosen)
    if face is None:
        raise HTTPException(422, why)
    digest = hashlib.sha256(content).hexdigest()
    if any(i.sha256 == digest for i in record.images):
        raise HTTPException(409, "this image is already enrolled for this subject")
    image = add_reference_image(
        session,
        record,
        filename=filename,
        content=content,
        face=face,
        width=width,
        height=height,
    )
    audit.append(
        session,
        actor=user.name,
        action="enrol",
        obj=f"watchlist:{watchlist.name}:subject-id:{record.id}:image:{image.id}:{digest[:16]}",
        purpose=_why(record)[:500],
    )
    session.commit()
    return _image_out(image, unit.name)


@router.post(
    "/{name}/re-embed",
    response_model=ReembedOut,
    responses={
        409: {"description": "the face model is not installed"},
        422: {"description": "unknown face model"},
    },
)
def reembed(
    name: str, session: DbSession, user: Manager, body: ReembedIn | None = None
) -> ReembedOut:
    """Make a face model's templates (default: the configured model) from the reference images
    already kept, for every image that lacks one: a new model without collecting the photos
    again. Audited with the count, as the command line's 'openlfr watchlist re-embed'. Each
    subject's templates are committed as they are made: a refused image is listed, not fatal,
    and a second call makes only what is still missing."""
    watchlist = get_watchlist(session, name)
    unit = model_unit(body.model if body else None)
    report = reembed_watchlist(session, watchlist, unit, actor=user.name)
    audit.append(
        session,
        actor=user.name,
        action="re-embed",
        obj=f"watchlist:{watchlist.name}:model={unit.name}:templates={report.embedded}",
        purpose="new face model: templates from the kept reference images",
    )
    session.commit()
    return ReembedOut(
        model=report.model,
        embedded=report.embedded,
        already=report.already,
        problems=[ReembedProblem(image_id=i, why=why) for i, why in report.problems],
    )


@router.get(
    "/{name}/subjects/{subject}/images/{image_id}",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}}},
)
def view_image(
    name: str,
    subject: str,
    image_id: RowId,
    session: DbSession,
    user: Reader,
    purpose: Annotated[Purpose, Query()] = "watchlist review",
) -> Response:
    """One reference image (audited as a view)."""
    watchlist = get_watchlist(session, name)
    record = _subject(session, watchlist, subject)
    image = session.get(ReferenceImage, image_id)
    if image is None or image.subject_id != record.id:
        raise NotFoundError(f"no image {image_id} of subject {subject!r}")
    audit.append(
        session,
        actor=user.name,
        action="view",
        obj=f"watchlist:{watchlist.name}:subject-id:{record.id}:image:{image_id}",
        purpose=purpose,
    )
    session.commit()
    return Response(image.content, media_type=_media_type(image.content))


def _media_type(content: bytes) -> str:
    return "image/png" if content.startswith(b"\x89PNG") else "image/jpeg"


__all__ = ["router", "SafeName"]
