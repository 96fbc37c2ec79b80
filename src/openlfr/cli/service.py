"""``openlfr serve``, ``openlfr user``, ``openlfr audit``: the service, accounts, the audit log."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from openlfr.cli.common import _audit, _fail, _session, err
from openlfr.errors import OpenLFRError

user_app = typer.Typer(help="Operator accounts (bootstrap the first admin).", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Run the operator service: API (OpenAPI at /docs), live alerts and the console at /."""
    import uvicorn

    from openlfr.api.app import create_app

    err.print(f"OpenLFR service on http://{host}:{port}/ (API description: /docs)")
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[
        str,
        typer.Option(help="admin, watchlist-manager, authorising-officer, reviewer or auditor."),
    ],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add an account; the password is prompted for (twice) or read from stdin."""
    from openlfr.api.auth import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise _fail(OpenLFRError("the passwords differ"))
    with _session() as session:
        try:
            user = create_user(session, name, role, password)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        _audit(session, "user-add", f"user:{user.name}:{user.role}", "account administration")
        session.commit()
    err.print(f"user [bold]{name}[/bold] added with role {role}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit chain; exit code 1 and the first bad entry when it does not hold."""
    from openlfr.governance.audit import verify_chain

    with _session() as session:
        result = verify_chain(session)
    if result.ok:
        print(f"audit chain intact: {result.entries} entries")
        return
    err.print(f"[red]audit chain broken[/red] at entry {result.first_bad_id}: {result.problem}")
    raise typer.Exit(1)
