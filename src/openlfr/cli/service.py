"""``openlfr serve``, ``openlfr user``, ``openlfr audit``: the service, accounts, the audit log."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from openlfr.cli.common import _actor, _audit, _fail, _session, err
from openlfr.errors import OpenLFRError

user_app = typer.Typer(help="Operator accounts (bootstrap the first admin).", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Reverse proxies (comma-separated addresses) whose X-Forwarded-For is believed; "
            "by default none is, so no client can pick the address its logins are throttled by."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the operator service: API (OpenAPI at /docs), live alerts and the console at /.
    Requests are logged by route template, never by path (api/security.py)."""
    from openlfr.api.app import create_app
    from openlfr.api.security import log_config
    from openlfr.api.server import serve as run_server

    err.print(f"OpenLFR service on http://{host}:{port}/ (API description: /docs)")
    run_server(  # uvicorn.run, with a shutdown no event stream holds open (api/server.py)
        create_app(),
        host=host,
        port=port,
        log_level=log_level,
        # uvicorn's own access log writes raw paths, some of which hold subject names
        access_log=False,
        log_config=log_config(),
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def scrape_token(
    path: Annotated[
        Path, typer.Argument(help="New file for the token (Prometheus' credentials_file).")
    ],
) -> None:
    """Make a token for a Prometheus server to read /metrics with: written to PATH (readable by
    its owner only), never shown; prints the [metrics] lines for policy.toml, which hold only
    its SHA-256."""
    import hashlib
    import os
    import secrets

    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise _fail(OpenLFRError(f"{path}: cannot create the token file ({exc.strerror})")) from exc
    with os.fdopen(fd, "w") as out:
        out.write(token)
    digest = hashlib.sha256(token.encode()).hexdigest()
    err.print(f"token written to {path}; add to the policy (then no restart is needed):")
    print(f'[metrics]\nscrape_token_sha256 = "{digest}"')


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
    break_glass: Annotated[
        bool,
        typer.Option(
            "--break-glass",
            help="Grant at once, without a second admin's approval (audited as such).",
        ),
    ] = False,
) -> None:
    """Add an account. While fewer than two admins exist, an admin account is made at once (the
    two-person rule needs two); any other account is a request that a second admin approves
    in the console or API, unless --break-glass. The password is prompted for (twice) or read
    from stdin when the account is made at once; a requested one enrols with its code."""
    from sqlalchemy import func, select

    from openlfr.api.auth import create_user, request_account
    from openlfr.store.models import User

    with _session() as session:
        admins = session.scalar(
            select(func.count()).where(User.role == "admin", User.active.is_(True))
        )
        bootstrap = role == "admin" and admins < 2
        try:
            if bootstrap or break_glass:
                user = create_user(session, name, role, _password(password_stdin))
            else:
                user = request_account(session, name, role, _actor())
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        if bootstrap:
            action, purpose = "user-add", "account administration; bootstrap: under two admins"
        elif break_glass:
            action, purpose = "user-add-break-glass", "account administration; no second admin"
        else:
            action, purpose = "user-request", "account administration"
        _audit(session, action, f"user:{user.name}:{user.role}", purpose)
        session.commit()
    if bootstrap or break_glass:
        err.print(f"user [bold]{name}[/bold] added with role {role}")
    else:
        err.print(
            f"user [bold]{name}[/bold] requested with role {role}: a second admin approves it "
            "(console: Users), and its holder enrols with the code the approval shows"
        )


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        raise _fail(OpenLFRError("the passwords differ"))
    return password


@user_app.command("unlock")
def user_unlock(
    name: Annotated[str, typer.Argument(help="An account name, or with --address an address.")],
    address: Annotated[bool, typer.Option("--address", help="NAME is a client address.")] = False,
) -> None:
    """Lift a login lockout (see 'openlfr.api.throttle') and clear its count of failures."""
    from openlfr.api.throttle import Subject, unlock

    subject = Subject("address" if address else "account", name)
    with _session() as session:
        held = unlock(session, subject)
        _audit(session, "login-unlock", f"{subject.kind}:{name}", "account administration")
        session.commit()
    err.print(f"{subject.kind} {name}: " + ("lock lifted" if held else "was not locked"))


@audit_app.command("verify")
def audit_verify(
    kept: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="Also check against this copy of an earlier checkpoint (repeatable).",
        ),
    ] = None,
) -> None:
    """Recompute the audit chain and check it still reaches its signed checkpoint; exit code 1
    and what does not hold (a broken link, a truncation, a missing or forged checkpoint)."""
    from openlfr.governance import audit, checkpoint

    with _session() as session:
        try:
            store = audit.store_of(session) or ""
            copies = [checkpoint.load(path, store) for path in kept or []]
        except checkpoint.CheckpointError as exc:
            err.print(f"[red]audit chain not verified[/red]: {exc}")
            raise typer.Exit(1) from exc
        result = audit.verify(session, copies)
    if result.ok:
        print(f"audit chain intact: {result.entries} entries; checkpoint: {result.checkpoint}")
        if result.unanchored:
            err.print(f"[yellow]{result.unanchored} newer entries not yet anchored[/yellow]")
        return
    where = f" at entry {result.first_bad_id}" if result.first_bad_id is not None else ""
    err.print(f"[red]audit chain broken[/red]{where}: {result.problem}")
    raise typer.Exit(1)


@audit_app.command("anchor")
def audit_anchor(
    reason: Annotated[str, typer.Option(help="Why (recorded in the chain).")],
) -> None:
    """Re-anchor an intact chain at its head: for a store with no checkpoint yet, or after
    checking why the old one no longer holds. Refused on a broken chain; audited."""
    from openlfr.governance import audit

    with _session() as session:
        try:
            new = audit.anchor(session, actor=_actor(), reason=reason[:500])
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        session.commit()
    print(f"audit chain anchored at {new.summary()}")


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Print the store's signed checkpoint, to keep a copy off this host
    ('audit verify --checkpoint FILE' checks against it later)."""
    from openlfr.governance import audit, checkpoint

    with _session() as session:
        store = audit.store_of(session)
    try:
        current = checkpoint.read(store) if store else None
    except checkpoint.CheckpointError as exc:
        raise _fail(exc) from exc
    if current is None:
        raise _fail(OpenLFRError("this store has no checkpoint yet"))
    print(checkpoint.signed(current))
