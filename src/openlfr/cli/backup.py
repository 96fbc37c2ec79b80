"""``openlfr backup`` and ``openlfr restore``: the whole store, its audit chain kept verifiable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from openlfr.cli.common import _actor, _fail, err
from openlfr.errors import OpenLFRError


def backup(
    file: Annotated[Path, typer.Argument(help="The backup file to write (mode 0600).")],
    reason: Annotated[
        str, typer.Option(help="Why (recorded in the audit chain).")
    ] = "backup of the store",
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
) -> None:
    """Back up the whole store into one signed file (mode 0600).

    SQLite: its online backup API; PostgreSQL: pg_dump on an exported snapshot. The file holds
    every watchlist image and alert crop: keep it as the store itself is kept."""
    from sqlalchemy.exc import SQLAlchemyError

    from openlfr.config import database_url
    from openlfr.store.backup import backup as make_backup

    try:
        manifest = make_backup(
            database_url(), file, actor=_actor(), purpose=reason[:500], overwrite=force
        )
    except (OpenLFRError, SQLAlchemyError, OSError) as exc:
        raise _fail(exc) from exc
    err.print(f"backed up to {file}: {manifest.summary()}")
    err.print("[yellow]it holds personal data[/yellow]: mode 0600, keep it as the store is kept")


def restore(
    file: Annotated[Path, typer.Argument(help="A file 'openlfr backup' wrote.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit chain).")],
    accept_unsigned: Annotated[
        bool,
        typer.Option(
            "--accept-unsigned",
            help="Restore a backup this host's audit key did not sign (recorded as such).",
        ),
    ] = False,
) -> None:
    """Replace the store with a backup (refused while a deployment runs on it).

    The restored audit chain is checked against the backup's signed manifest, then re-anchored,
    and the restore recorded in it with the checkpoint it replaced."""
    from sqlalchemy.exc import SQLAlchemyError

    from openlfr.config import database_url
    from openlfr.store.backup import restore as restore_backup

    try:
        done = restore_backup(
            database_url(),
            file,
            actor=_actor(),
            reason=reason[:500],
            accept_unsigned=accept_unsigned,
        )
    except (OpenLFRError, SQLAlchemyError, OSError) as exc:
        raise _fail(exc) from exc
    err.print(f"restored {done.manifest.summary()}")
    err.print(f"audit chain re-anchored at {done.anchored.summary()} (recorded in the chain)")
    err.print(f"the checkpoint it replaced (how far the log had gone): {done.replaced}")
    if done.ended_deployments:
        ended = ", ".join(map(str, done.ended_deployments))
        err.print(f"ended deployment(s) {ended}: the backup caught them running")
