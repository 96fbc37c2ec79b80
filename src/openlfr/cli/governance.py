"""``openlfr retention``, ``openlfr report``, ``openlfr subject``: retention, transparency
reports and data subjects' rights."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from openlfr.cli.common import _audit, _fail, _session, _when, err
from openlfr.errors import OpenLFRError

retention_app = typer.Typer(help="Purge what the policy no longer keeps.", no_args_is_help=True)
subject_app = typer.Typer(help="Data subjects' rights: find, export, erase.", no_args_is_help=True)


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be deleted.")
    ] = False,
) -> None:
    """Delete alerts, false alerts and watchlist copies past the policy's retention periods;
    each purge is audited (counts and ids only)."""
    from openlfr.governance.policy import load_policy
    from openlfr.governance.retention import run_retention
    from openlfr.store.models import utcnow

    with _session() as session:
        try:
            result = run_retention(
                session, utcnow(), load_policy(), dry_run=dry_run, actor=f"cli:{getpass.getuser()}"
            )
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        session.commit()
    for line in result.lines():
        print(line)


def report(
    output: Annotated[Path, typer.Option(help="File to write.")],
    deployment: Annotated[int | None, typer.Option(help="One deployment's report.")] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Period start, YYYY-MM-DD (UTC).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Period end, YYYY-MM-DD, exclusive.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="html, pdf, csv or json.")] = "html",
) -> None:
    """Transparency report without personal data, per deployment or period.

    Alerts, true and false alerts, engagements, arrests, rates and charts (docs/governance.md).
    """
    from openlfr.governance.reports import build_report, write_report

    with _session() as session:
        try:
            made = build_report(
                session,
                deployment_id=deployment,
                start=_when(start) if start else None,
                end=_when(end) if end else None,
            )
            write_report(made, output, fmt)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
    err.print(f"report on {len(made.deployments)} deployments written to {output}")


PurposeOption = Annotated[str, typer.Option(help="Why (recorded in the audit log).")]


@subject_app.command("find")
def subject_find(name: str, purpose: PurposeOption = "subject access request") -> None:
    """What is held about NAME: watchlist entries and alerts (the look-up is audited)."""
    from openlfr.governance.subject_rights import find

    with _session() as session:
        held = find(session, name)
        for subject in held.subjects:
            print(
                f"entry {subject.id}: watchlist {subject.watchlist.name}, {subject.category}, "
                f"{len(subject.images)} images, expires {subject.expires_on or 'never'}"
            )
        for alert in held.alerts:
            print(f"alert {alert.id}: deployment {alert.deployment_id}, {alert.raised_at:%Y-%m-%d}")
        _audit(session, "subject-find", held.summary(), purpose)
        session.commit()
    err.print(f"{len(held.subjects)} watchlist entries, {len(held.alerts)} alerts")


@subject_app.command("export")
def subject_export(
    name: str,
    output: Annotated[Path, typer.Option(help="Folder to write subject.json and images to.")],
    purpose: PurposeOption = "subject access request",
) -> None:
    """Export everything held about NAME: records as JSON, images as files (audited)."""
    from openlfr.governance.subject_rights import export

    with _session() as session:
        try:
            held = export(session, name, output, actor=f"cli:{getpass.getuser()}", purpose=purpose)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        session.commit()
    err.print(f"exported {len(held.subjects)} entries and {len(held.alerts)} alerts to {output}")


@subject_app.command("erase")
def subject_erase(name: str, purpose: PurposeOption = "erasure request") -> None:
    """Erase NAME: entries, images, templates, alerts about them (audited without the name)."""
    from openlfr.governance.subject_rights import erase

    with _session() as session:
        try:
            held = erase(session, name, actor=f"cli:{getpass.getuser()}", purpose=purpose)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        session.commit()
    err.print(f"erased {len(held.subjects)} entries and {len(held.alerts)} alerts")
