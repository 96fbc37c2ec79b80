"""Enrolment from a folder: a subject per sub-folder, every image in it, none skipped silently."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from openlfr.governance.policy import Policy
from openlfr.store.models import Watchlist
from openlfr.store.watchlists import (
    WatchlistEntry,
    add_reference_image,
    add_subject,
    get_subject,
)
from openlfr.vision.batch import ImageResult, analyse_files, list_images
from openlfr.vision.faces import Face
from openlfr.vision.models import FaceModel
from openlfr.vision.pick import Pick, pick_face


@dataclass
class ImportReport:
    enrolled: list[str] = field(default_factory=list)  # image paths
    already_enrolled: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (image path, why)
    subjects_added: list[str] = field(default_factory=list)
    subjects_without_images: list[str] = field(default_factory=list)


def face_meant(result: ImageResult, pick: Pick | None = None) -> tuple[Face | None, str]:
    """The face an image is enrolled for, or None and why it cannot be a reference image:
    exactly one face, or the one ``pick`` says when it clearly dominates (``vision.pick``)."""
    if result.error:
        return None, result.error
    return pick_face(result.faces, result.width, result.height, pick)


def import_folder(
    session: Session,
    watchlist: Watchlist,
    folder: Path,
    *,
    entry: WatchlistEntry,
    policy: Policy,
    upsample: int = 1,
    workers: int | None = None,
    model: FaceModel | str | None = None,
    pick: Pick | None = None,
    on_image: Callable[[str], None] | None = None,
) -> ImportReport:
    """Enrol every sub-folder of ``folder`` as a subject (its name the folder's name). An
    image showing several faces is enrolled for the one ``pick`` chooses, if any.

    Each subject is committed with its images as one transaction: an interrupted import keeps
    the subjects it finished and can be run again (already enrolled images are recognised by
    their content and not added twice).
    """
    entry.check(policy)  # before the slow part: a bad entry would fail every subject
    report = ImportReport()
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    jobs = [(person.name, path) for person in people for path in list_images([person])]
    results = analyse_files(
        [path for _, path in jobs], model=model, upsample=upsample, workers=workers
    )
    by_person: dict[str, list[tuple[Path, ImageResult]]] = {}
    for (name, path), result in zip(jobs, results, strict=True):
        by_person.setdefault(name, []).append((path, result))
        if on_image:
            on_image(str(path))
    for person in people:
        images = by_person.get(person.name, [])
        usable = []
        for path, result in images:
            face, why = face_meant(result, pick)
            if face is None:
                report.problems.append((str(path), why))
            else:
                usable.append((path, result, face))
        if not usable:
            report.subjects_without_images.append(person.name)
            continue
        subject = get_subject(session, watchlist, person.name)
        if subject is None:
            subject = add_subject(session, watchlist, name=person.name, entry=entry, policy=policy)
            report.subjects_added.append(person.name)
        known = {image.sha256 for image in subject.images}
        for path, result, face in usable:
            content = path.read_bytes()
            if hashlib.sha256(content).hexdigest() in known:
                report.already_enrolled.append(str(path))
                continue
            add_reference_image(
                session,
                subject,
                filename=path.name,
                content=content,
                face=face,
                width=result.width,
                height=result.height,
            )
            report.enrolled.append(str(path))
        session.commit()
    return report
