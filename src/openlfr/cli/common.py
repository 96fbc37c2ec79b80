"""What every command group shares: the error console, failures, progress, the store, audit."""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from openlfr.errors import OpenLFRError

err = Console(stderr=True, soft_wrap=True)  # paths in messages stay whole, greppable

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Face model (default: $OPENLFR_MODEL, else the best installed; see 'openlfr models').",
    ),
]


def _model(name: str | None):  # type: ignore[no-untyped-def]
    """The face model unit named (or configured), or a clean failure saying what to install."""
    from openlfr.vision.models import get_model

    try:
        return get_model(name)
    except OpenLFRError as exc:
        raise _fail(exc) from exc


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(2)


def _progress(total: int, label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=total < 10 or not err.is_terminal and not _force_progress(),
    )


def _force_progress() -> bool:
    import os

    return bool(os.environ.get("OPENLFR_PROGRESS"))


def _session():  # type: ignore[no-untyped-def]
    from openlfr.store.db import open_store

    return open_store()()


def _actor() -> str:
    """Who the command line acts as in the audit chain: ``cli:<the operating-system user>``."""
    return f"cli:{getpass.getuser()}"


def _audit(session, action: str, obj: str, purpose: str) -> None:  # type: ignore[no-untyped-def]
    from openlfr.governance import audit

    audit.append(session, actor=_actor(), action=action, obj=obj, purpose=purpose[:500])


def _watchlist_index(  # type: ignore[no-untyped-def]
    name: str, model: str | None = None, expected_searches: int | None = None
):
    """The search index of a watchlist's current entries with ``model``'s templates; expired
    ones are named and left out, and so are subjects without a template of that model.
    ``expected_searches`` (about how many faces will be searched, where known) lets a large
    list's index skip building its graph when the build would not pay."""
    from openlfr.matching import WatchlistIndex
    from openlfr.store.watchlists import get_watchlist, load_templates

    unit = _model(model)
    with _session() as session:
        try:
            templates = load_templates(session, get_watchlist(session, name), model=unit.name)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
    for subject in templates.expired:
        err.print(f"[yellow]left out[/yellow] {subject}: watchlist entry expired")
    if templates.without_template:
        err.print(
            f"[yellow]left out[/yellow] {len(templates.without_template)} subject(s) with no "
            f"{unit.name} template: 'openlfr watchlist re-embed {name} --model {unit.name}'"
        )
    return WatchlistIndex(
        templates.embeddings,
        templates.subject_ids,
        templates.subject_names,
        model=unit.name,
        expected_searches=expected_searches,
    )


def _when(text: str) -> datetime:
    """An ISO date-time (UTC unless it says otherwise), ``now``, or ``+90m`` / ``+4h`` from now."""
    from datetime import UTC, timedelta

    now = datetime.now(UTC)
    if text == "now":
        return now
    if text.startswith("+") and text[-1] in "smh" and text[1:-1].replace(".", "").isdigit():
        unit = {"s": "seconds", "m": "minutes", "h": "hours"}[text[-1]]
        return now + timedelta(**{unit: float(text[1:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise OpenLFRError(f"{text!r} is not a time: use ISO 8601, 'now' or '+4h'") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
