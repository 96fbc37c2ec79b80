"""Watchlists in the store: create, enrol, list, remove, and load templates for search."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from openlfr.errors import NotFoundError, OpenLFRError, PolicyError
from openlfr.governance import audit
from openlfr.governance.policy import Policy
from openlfr.store.models import ReferenceImage, Subject, Template, Watchlist
from openlfr.vision.detect import box_iou
from openlfr.vision.faces import Face
from openlfr.vision.models import FaceModel


def create_watchlist(session: Session, name: str, description: str = "") -> Watchlist:
    if not name.strip():
        raise OpenLFRError("a watchlist needs a name")
    if session.scalar(select(Watchlist).where(Watchlist.name == name)) is not None:
        raise OpenLFRError(f"watchlist {name!r} already exists")
    watchlist = Watchlist(name=name, description=description)
    session.add(watchlist)
    session.flush()
    return watchlist


def get_watchlist(session: Session, name: str) -> Watchlist:
    watchlist = session.scalar(select(Watchlist).where(Watchlist.name == name))
    if watchlist is None:
        raise NotFoundError(f"no watchlist named {name!r} (see 'openlfr watchlist list')")
    return watchlist


def list_watchlists(session: Session) -> list[Watchlist]:
    return list(session.scalars(select(Watchlist).order_by(Watchlist.name)))


def get_subject(session: Session, watchlist: Watchlist, name: str) -> Subject | None:
    return session.scalar(
        select(Subject).where(Subject.watchlist_id == watchlist.id, Subject.name == name)
    )


def is_under_18(date_of_birth: date | None, today: date | None = None) -> bool:
    """True when the date of birth is known and less than 18 years ago."""
    if date_of_birth is None:
        return False
    today = today or date.today()
    had_birthday = (today.month, today.day) >= (date_of_birth.month, date_of_birth.day)
    return today.year - date_of_birth.year - (0 if had_birthday else 1) < 18


@dataclass(frozen=True)
class WatchlistEntry:
    """What a watchlist entry records besides the person: the policy category, why, the law it
    rests on, who authorised it, who added it, where the images came from, until when, and
    whether the person is declared under 18. The CLI's import, the API's enrolment and the
    tests all fill one of these."""

    category: str
    reason: str
    legal_basis: str
    authorised_by: str
    added_by: str
    image_source: str = ""
    expires_on: date | None = None
    minor: bool = False

    def check(self, policy: Policy, date_of_birth: date | None = None) -> None:
        """Refuse categories the policy does not allow, a missing reason, legal basis or
        authoriser, a past expiry date, and (unless the policy allows it) a person under 18,
        known from ``date_of_birth`` or declared with ``minor``."""
        policy.check_category(self.category)
        if not self.reason.strip():
            raise OpenLFRError("a subject needs a written reason for being on the watchlist")
        if not self.legal_basis.strip():
            raise PolicyError("a subject needs the legal basis for the entry (--legal-basis)")
        if not self.authorised_by.strip():
            raise PolicyError(
                "a subject needs the name of who authorised the entry (--authorised-by)"
            )
        if self.expires_on is not None and self.expires_on < date.today():
            raise OpenLFRError(f"expiry date {self.expires_on} is in the past")
        if (self.minor or is_under_18(date_of_birth)) and not policy.watchlist.allow_under_18:
            raise PolicyError(
                "the policy does not allow people under 18 on a watchlist "
                "(watchlist.allow_under_18)"
            )


def add_subject(
    session: Session,
    watchlist: Watchlist,
    *,
    name: str,
    entry: WatchlistEntry,
    policy: Policy,
    date_of_birth: date | None = None,
) -> Subject:
    """Add a subject, once ``entry.check`` passes.

    >>> entry = WatchlistEntry("wanted-by-courts", "warrant 123", "MCA 1980 s.1", "insp1", "pc1")
    >>> add_subject(session, watchlist, name="alice", entry=entry, policy=load_policy())
    """
    entry.check(policy, date_of_birth)
    subject = Subject(
        watchlist=watchlist,
        name=name,
        category=entry.category,
        reason=entry.reason,
        image_source=entry.image_source,
        added_by=entry.added_by,
        expires_on=entry.expires_on,
        legal_basis=entry.legal_basis.strip(),
        authorised_by=entry.authorised_by.strip(),
        date_of_birth=date_of_birth,
    )
    session.add(subject)
    session.flush()
    return subject


def add_reference_image(
    session: Session,
    subject: Subject,
    *,
    filename: str,
    content: bytes,
    face: Face,
    width: int,
    height: int,
) -> ReferenceImage:
    """Keep an enrolled photo and the template of the one face in it (of ``face.model``)."""
    if face.embedding is None or not face.model:
        raise ValueError("face has no embedding, or no model tag")
    image = ReferenceImage(
        subject=subject,
        filename=filename,
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        width=width,
        height=height,
    )
    image.templates.append(template_of(face))
    session.add(image)
    session.flush()
    return image


def template_of(face: Face) -> Template:
    assert face.embedding is not None
    return Template(
        model=face.model,
        embedding=face.embedding.astype("<f4").tobytes(),
        box=face.box.as_list(),
        quality={k: v for k, v in face.quality.as_dict().items()},
        quality_score=face.quality.score,
    )


def remove_subject(session: Session, watchlist: Watchlist, name: str) -> int:
    """Delete a subject with their images and templates; returns the subject's id (for the
    audit log, which records ids, not names)."""
    subject = get_subject(session, watchlist, name)
    if subject is None:
        raise NotFoundError(f"no subject {name!r} on watchlist {watchlist.name!r}")
    subject_id = subject.id
    session.delete(subject)
    session.flush()
    return subject_id


@dataclass(frozen=True)
class TemplateSet:
    """All usable templates of a watchlist, as arrays ready for an index."""

    embeddings: np.ndarray  # (n, model's embedding size) float32
    subject_ids: np.ndarray  # (n,) int64
    subject_names: dict[int, str]
    expired: list[str]  # subjects left out because their entry has expired
    model: str
    without_template: list[str]  # current subjects with no template of this model


def load_templates(
    session: Session,
    watchlist: Watchlist,
    *,
    model: str,
    today: date | None = None,
) -> TemplateSet:
    """The watchlist's templates made by ``model``; subjects past their expiry are left out,
    and current subjects with images but no template of ``model`` are named."""
    today = today or date.today()
    rows = session.execute(
        select(Subject.id, Subject.name, Subject.expires_on, Template.embedding)
        .join(ReferenceImage, ReferenceImage.subject_id == Subject.id)
        .join(Template, Template.image_id == ReferenceImage.id)
        .where(Subject.watchlist_id == watchlist.id, Template.model == model)
        .order_by(Subject.id, Template.id)
    ).all()
    names: dict[int, str] = {}
    expired: set[str] = set()
    ids: list[int] = []
    blobs: list[bytes] = []
    for subject_id, name, expires_on, blob in rows:
        if expires_on is not None and expires_on < today:
            expired.add(name)
            continue
        names[subject_id] = name
        ids.append(subject_id)
        blobs.append(blob)
    embeddings = (
        np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1).astype(np.float32)
        if blobs
        else np.zeros((0, _embedding_size(model)), dtype=np.float32)
    )
    has_image = select(ReferenceImage.id).where(ReferenceImage.subject_id == Subject.id).exists()
    lacking = session.scalars(
        select(Subject.name).where(
            Subject.watchlist_id == watchlist.id,
            Subject.id.not_in(list(names)),
            (Subject.expires_on.is_(None)) | (Subject.expires_on >= today),
            has_image,
        )
    ).all()
    return TemplateSet(
        embeddings,
        np.array(ids, dtype=np.int64),
        names,
        sorted(expired),
        model,
        sorted(lacking),
    )


def _embedding_size(model: str) -> int:
    from openlfr.vision.models import _units

    unit = _units().get(model)
    return unit.embedding_size if unit else 0


@dataclass
class ReembedReport:
    model: str
    embedded: int = 0  # templates made
    already: int = 0  # images that had one
    problems: list[tuple[int, str]] = field(default_factory=list)  # (image id, why)


def reembed_watchlist(
    session: Session,
    watchlist: Watchlist,
    model: FaceModel,
    *,
    actor: str,
    on_image: Callable[[], None] | None = None,
) -> ReembedReport:
    """Make ``model``'s template for every kept reference image of the watchlist that lacks
    one, from the image itself (nobody collects photos again). The face meant is the one the
    existing template's box marks (the best overlap), else the only face found. Committed per
    subject, with that subject's audit entry in the same transaction, so an interrupted run
    keeps what it did, audited, and can be run again. The caller audits the run's total."""
    report = ReembedReport(model.name)
    for subject in watchlist.subjects:
        made = 0
        for image in subject.images:
            if image.template_for(model.name) is not None:
                report.already += 1
            elif (why := _reembed_image(image, model)) is not None:
                report.problems.append((image.id, why))
            else:
                made += 1
            if on_image:
                on_image()
        if made:
            audit.append(
                session,
                actor=actor,
                action="re-embed-subject",
                obj=f"watchlist:{watchlist.name}:subject-id:{subject.id}:model={model.name}"
                f":templates={made}",
                purpose="new face model: templates from the kept reference images",
            )
        report.embedded += made
        session.commit()
    return report


def _reembed_image(image: ReferenceImage, model: FaceModel) -> str | None:
    from openlfr.errors import ImageError
    from openlfr.vision.faces import find_faces

    try:
        faces = find_faces(image.content, model=model, upsample=1)
    except ImageError as exc:
        return str(exc)
    if not faces:
        return f"no face found by {model.name}"
    known = image.templates[0].box if image.templates else None
    if known is not None:
        face = max(faces, key=lambda f: box_iou(f.box.as_list(), known))
        if box_iou(face.box.as_list(), known) < 0.3:
            return "the face enrolled before is not found by this model"
    elif len(faces) == 1:
        face = faces[0]
    else:
        return f"{len(faces)} faces found and no earlier template says which is meant"
    image.templates.append(template_of(face))
    return None
