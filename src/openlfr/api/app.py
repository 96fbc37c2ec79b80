"""The FastAPI application: routers, error handling, limits, the console, live machinery.

uvicorn --factory openlfr.api.app:create_app      # or: openlfr serve
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openlfr.api import docs
from openlfr.api.auth import GrantRefused
from openlfr.api.limits import max_body_bytes
from openlfr.api.live import AlertPoller, Broadcaster, DeploymentRunner
from openlfr.api.routers import (
    alerts,
    audit,
    auth,
    deployments,
    events,
    metrics,
    models,
    reports,
    subjects,
    users,
    watchlists,
)
from openlfr.api.schemas import refuse_control_characters
from openlfr.api.security import AccessLog, OriginCheck, SecurityHeaders
from openlfr.errors import (
    ImageError,
    ModelMissingError,
    NotFoundError,
    OpenLFRError,
    PolicyError,
)
from openlfr.governance.scheduler import RecoveryScheduler, RetentionScheduler
from openlfr.live.deployment import DeploymentError

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
# Reachable without logging in: the console's static shell (no data in it), the published
# OpenAPI description, and the login itself. Every other route names its roles.
PUBLIC_PATHS = frozenset(
    {"/", "/static", "/openapi.json", "/docs", "/api/auth/login", "/api/auth/enrol"}
)

log = logging.getLogger(__name__)


class BodyLimit:
    """Refuses a request body over the limit with 413, by Content-Length up front and by
    counting when it is streamed, before any endpoint has written anything."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = max_body_bytes()
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            response = JSONResponse(
                {"detail": f"request body over the limit of {limit:,} bytes"}, status_code=413
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            response = JSONResponse(
                {"detail": f"request body over the limit of {limit:,} bytes"}, status_code=413
            )
            await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def _errors(app: FastAPI) -> None:
    """OpenLFR's deliberate errors become 4xx answers with their message."""

    def handler(status: int):  # type: ignore[no-untyped-def]
        async def respond(_request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        return respond

    app.add_exception_handler(NotFoundError, handler(404))
    app.add_exception_handler(DeploymentError, handler(409))
    app.add_exception_handler(PolicyError, handler(422))
    app.add_exception_handler(ImageError, handler(422))
    # a face model this server does not have (the message says how to install it)
    app.add_exception_handler(ModelMissingError, handler(models.MODEL_MISSING))
    app.add_exception_handler(GrantRefused, handler(403))  # the two-person rule
    app.add_exception_handler(OpenLFRError, handler(400))

    async def refused_by_database(_request: Request, exc: DataError) -> JSONResponse:
        # a value the database cannot store (validation should have caught it): nothing written
        return JSONResponse(
            {"detail": f"a value could not be stored: {exc.orig or exc}"[:500]}, status_code=422
        )

    app.add_exception_handler(DataError, refused_by_database)  # type: ignore[arg-type]

    async def database_failed(_request: Request, exc: DBAPIError) -> JSONResponse:
        # The driver's message can quote stored values (PostgreSQL's "Key (name)=(...) already
        # exists"), so neither the answer nor the log carries it: the error's kind and, where
        # the driver knows it, the constraint, for an operator to look into.
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        kind = type(exc.orig or exc).__name__
        log.error("database error %s%s", kind, f" on {constraint}" if constraint else "")
        if isinstance(exc, IntegrityError):
            return JSONResponse(
                {"detail": "refused by the database: it conflicts with what is stored"},
                status_code=409,
            )
        return JSONResponse(
            {"detail": "database error: the request was not completed"}, status_code=500
        )

    app.add_exception_handler(DBAPIError, database_failed)  # type: ignore[arg-type]

    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # the default answer, plus one line a person can read first
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        ]
        return JSONResponse(
            {"detail": "invalid request: " + "; ".join(problems)[:2000], "errors": _plain(exc)},
            status_code=422,
        )

    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]


def _plain(exc: RequestValidationError) -> list[dict]:
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in exc.errors()
    ]


def create_app(store: sessionmaker[Session] | None = None, *, poll_alerts: bool = True) -> FastAPI:
    """The service on ``store`` (default: ``open_store()``, i.e. ``$OPENLFR_DATABASE_URL`` or
    SQLite in ``$OPENLFR_HOME``)."""
    from openlfr.store.db import open_store

    store = store or open_store()
    broadcaster = Broadcaster()
    runner = DeploymentRunner(store, broadcaster)
    poller = AlertPoller(store, broadcaster) if poll_alerts else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        retention = RetentionScheduler(store)  # hourly purges (openlfr.governance.retention)
        retention.start()
        recovery = RecoveryScheduler(store)  # deployments whose runner was killed
        recovery.start()
        if poller:
            poller.start()
        try:
            yield
        finally:
            begin_shutdown(_app)  # again, for servers that did not call it (idempotent)
            retention.stop()
            recovery.stop()
            if poller:
                poller.stop()
            runner.shutdown()

    app = FastAPI(
        title="OpenLFR operator service",
        version="0.1.0",
        description="Watchlists, deployments, live alerts, adjudication, accounts, audit, "
        "transparency reports, data subjects' rights and the face models. "
        "Every call but login needs a bearer token (or the console's cookie); roles bound what "
        "each user may do.",
        lifespan=lifespan,
        # no control character in any query, path or form parameter (bodies: schemas.In)
        dependencies=[Depends(refuse_control_characters)],
        docs_url=None,  # served from local files under a CSP: api/docs.py
        redoc_url=None,
    )
    app.state.store, app.state.broadcaster, app.state.runner = store, broadcaster, runner
    for module in (auth, users, watchlists, deployments, alerts, events, audit, reports, subjects):
        app.include_router(module.router)
    app.include_router(models.router)
    app.include_router(metrics.router)  # /metrics, for Prometheus (api/routers/metrics.py)
    _errors(app)
    app.add_middleware(BodyLimit)
    # the last added runs first: every answer, refusals included, is logged and gets headers
    app.add_middleware(OriginCheck)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog)
    docs.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    return app


def begin_shutdown(app: FastAPI) -> None:
    """The server is stopping: end every event stream and ask every deployment to stop, at
    once. A server must call this when shutdown begins (``openlfr.api.server`` does): it waits
    for open responses before it runs the lifespan's end, and an event stream never ends by
    itself."""
    app.state.broadcaster.close()
    app.state.runner.stop_all()


def iter_routes(routes: list) -> list:  # type: ignore[type-arg]
    """Every route of the app, flattening included routers (newer FastAPI keeps them nested)."""
    flat = []
    for route in routes:
        if hasattr(route, "original_router"):
            flat.extend(iter_routes(route.original_router.routes))
        else:
            flat.append(route)
    return flat


def route_roles(route) -> frozenset[str] | None:  # type: ignore[no-untyped-def]
    """The roles an endpoint admits (from its ``allow(...)`` dependency), None when public."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "roles", None)
        if roles is not None:
            return frozenset(roles)
        stack.extend(dep.dependencies)
    return None
