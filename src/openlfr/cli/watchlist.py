"""``openlfr watchlist``: create, enrol, inspect and prune watchlists."""

from __future__ import annotations

import getpass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from openlfr.cli.common import ModelOption, _actor, _audit, _fail, _model, _progress, _session, err
from openlfr.errors import OpenLFRError


class PickRule(StrEnum):
    """``openlfr.vision.pick.Pick``'s rules, named here so that the command line starts without
    importing the vision stack (numpy, OpenCV) only to list them."""

    LARGEST = "largest"
    CENTRE = "centre"


watchlist_app = typer.Typer(
    help="Create, enrol, inspect and prune watchlists.", no_args_is_help=True
)


@watchlist_app.command("create")
def watchlist_create(
    name: str, description: Annotated[str, typer.Option(help="What the list is for.")] = ""
) -> None:
    """Create an empty watchlist."""
    from openlfr.store.watchlists import create_watchlist

    with _session() as session:
        try:
            create_watchlist(session, name, description)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        _audit(session, "watchlist-create", f"watchlist:{name}", "watchlist management")
        session.commit()
    err.print(f"created watchlist [bold]{name}[/bold]")


@watchlist_app.command("import")
def watchlist_import(
    name: str,
    folder: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="One sub-folder per subject.")
    ],
    category: Annotated[str, typer.Option(help="Policy category, e.g. wanted-by-courts.")],
    reason: Annotated[str, typer.Option(help="Why these people are on the list.")],
    legal_basis: Annotated[
        str, typer.Option(help="The law the entries rest on, e.g. 'warrant 123 (MCA 1980 s.1)'.")
    ],
    authorised_by: Annotated[str, typer.Option(help="Who authorised these entries.")],
    minor: Annotated[
        bool,
        typer.Option("--minor", help="The subjects are under 18 (refused unless policy allows)."),
    ] = False,
    expires: Annotated[str | None, typer.Option(help="Expiry date, YYYY-MM-DD.")] = None,
    source: Annotated[str, typer.Option(help="Where the images came from.")] = "",
    added_by: Annotated[str | None, typer.Option(help="Who adds them (default: you).")] = None,
    upsample: Annotated[int, typer.Option(help="Detector upsampling for small faces.")] = 1,
    workers: Annotated[int | None, typer.Option(help="Processes (default: all cores).")] = None,
    model: ModelOption = None,
    pick: Annotated[
        PickRule | None,
        typer.Option(
            help="For photos with several faces: the largest (at least 1.5x the next by eye "
            "distance) or the centre one (at most half the next one's distance from the centre)."
        ),
    ] = None,
) -> None:
    """Enrol one subject per sub-folder of FOLDER (folder name = subject name), every image in it.

    Images with no face, or several faces of which --pick chooses none, are listed by name with
    the reason and not enrolled. The templates are the face model's (--model); 'openlfr
    watchlist re-embed' adds another model's later.
    """
    unit = _model(model)
    from openlfr.governance.policy import load_policy
    from openlfr.store.enrol import import_folder
    from openlfr.store.watchlists import WatchlistEntry, get_watchlist
    from openlfr.vision.batch import list_images
    from openlfr.vision.pick import Pick

    try:
        expires_on = date.fromisoformat(expires) if expires else None
    except ValueError as exc:
        raise _fail(OpenLFRError(f"--expires {expires!r} is not a date (YYYY-MM-DD)")) from exc
    total = sum(len(list_images([p])) for p in folder.iterdir() if p.is_dir())
    with _session() as session, _progress(total, "enrolling") as progress:
        task = progress.add_task("enrol", total=total)
        try:
            watchlist = get_watchlist(session, name)
            entry = WatchlistEntry(
                category=category,
                reason=reason,
                legal_basis=legal_basis,
                authorised_by=authorised_by,
                added_by=added_by or getpass.getuser(),
                image_source=source or str(folder),
                expires_on=expires_on,
                minor=minor,
            )
            report = import_folder(
                session,
                watchlist,
                folder,
                entry=entry,
                policy=load_policy(),
                upsample=upsample,
                workers=workers,
                model=unit,
                pick=Pick(pick.value) if pick else None,
                on_image=lambda _: progress.advance(task),
            )
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        if report.subjects_added:
            from openlfr.store.watchlists import get_subject

            # Ids, not names: the log outlives an erasure (openlfr subject erase).
            added = [get_subject(session, watchlist, n) for n in report.subjects_added]
            ids = ",".join(str(s.id) for s in added if s is not None)
            why = f"{category}; legal basis: {legal_basis}; authorised by {authorised_by}"
            _audit(session, "enrol", f"watchlist:{watchlist.name}:subject-ids:{ids}", why)
            session.commit()
    for path, why in report.problems:
        err.print(f"[yellow]not enrolled[/yellow] {path}: {why}")
    for subject in report.subjects_without_images:
        err.print(f"[yellow]no subject added[/yellow] for {subject}: no usable image")
    err.print(
        f"{len(report.enrolled)} images enrolled for {len(report.subjects_added)} new subjects; "
        f"{len(report.already_enrolled)} already enrolled; {len(report.problems)} not enrolled"
    )
    if report.problems:
        raise typer.Exit(1)


@watchlist_app.command("list")
def watchlist_list() -> None:
    """List watchlists with their number of subjects."""
    from openlfr.store.watchlists import list_watchlists

    table = Table("watchlist", "subjects", "images", "created")
    with _session() as session:
        for w in list_watchlists(session):
            images = sum(len(s.images) for s in w.subjects)
            table.add_row(w.name, str(len(w.subjects)), str(images), f"{w.created_at:%Y-%m-%d}")
    Console().print(table)


@watchlist_app.command("show")
def watchlist_show(name: str) -> None:
    """Show a watchlist's subjects: category, reason, who added them, expiry, images."""
    from openlfr.store.watchlists import get_watchlist

    with _session() as session:
        try:
            watchlist = get_watchlist(session, name)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        table = Table(
            "subject",
            "category",
            "reason",
            "added by",
            "expires",
            "images",
            title=f"watchlist {watchlist.name}",
        )
        images, models = 0, {}  # templates per face model, over the whole list
        for s in watchlist.subjects:
            expiry = str(s.expires_on or "-") + (" (expired)" if s.expired() else "")
            table.add_row(s.name, s.category, s.reason, s.added_by, expiry, str(len(s.images)))
            for image in s.images:
                images += 1
                for t in image.templates:
                    models[t.model] = models.get(t.model, 0) + 1
    Console().print(table)
    from openlfr.vision.models import model_names

    for model in model_names():
        count = models.get(model, 0)
        hint = f": 'openlfr watchlist re-embed {name} --model {model}'" if count < images else ""
        err.print(f"{model} templates: {count} of {images} images{hint}")


@watchlist_app.command("re-embed")
def watchlist_reembed(name: str, model: ModelOption = None) -> None:
    """Make a face model's templates from the reference images already kept, for every image
    that lacks one: a new model without collecting the photos again. Audited."""
    from openlfr.store.watchlists import get_watchlist, reembed_watchlist

    unit = _model(model)
    with _session() as session:
        try:
            watchlist = get_watchlist(session, name)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        total = sum(len(s.images) for s in watchlist.subjects)
        with _progress(total, f"re-embedding with {unit.name}") as progress:
            task = progress.add_task("re-embed", total=total)
            report = reembed_watchlist(
                session,
                watchlist,
                unit,
                actor=_actor(),
                on_image=lambda: progress.advance(task),
            )
        _audit(
            session,
            "re-embed",
            f"watchlist:{watchlist.name}:model={unit.name}:templates={report.embedded}",
            "new face model: templates from the kept reference images",
        )
        session.commit()
    for image_id, why in report.problems:
        err.print(f"[yellow]no template[/yellow] for reference image {image_id}: {why}")
    err.print(
        f"{report.embedded} {unit.name} templates made, {report.already} already there, "
        f"{len(report.problems)} images without a face for this model"
    )
    if report.problems:
        raise typer.Exit(1)


@watchlist_app.command("remove-subject")
def watchlist_remove_subject(name: str, subject: str) -> None:
    """Remove a subject with its reference images and templates."""
    from openlfr.store.watchlists import get_watchlist, remove_subject

    with _session() as session:
        try:
            subject_id = remove_subject(session, get_watchlist(session, name), subject)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        # The id, not the name, as the service's delete: the log outlives the person's entry.
        _audit(
            session, "delete", f"watchlist:{name}:subject-ids:{subject_id}", "watchlist management"
        )
        session.commit()
    err.print(f"removed {subject} from {name}")
