"""Web hardening as ASGI middleware: security headers on every response, a same-origin check
on cookie-authenticated writes (CSRF), and an access log that names routes, not paths.

Why an access log of our own: a raw path holds whatever is in it, and some hold subject names
(``/api/watchlists/wl1/subjects/alan/images``); logs are copied and kept beyond any erasure.
So uvicorn's access log is off (``openlfr serve``) and this one writes the route's template,
``/api/watchlists/{name}/subjects/{subject}/images``, never the path or the query.
"""

from __future__ import annotations

import logging
import os
import time
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openlfr.api.deps import COOKIE

access_log = logging.getLogger("openlfr.access")

# The console and /docs load only their own files: no inline script (the docs page's one
# inline script is allowed by its hash, see api/docs.py), no framing, no plug-ins. Report
# charts are data: images; the subject export is downloaded through a blob: URL.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Writes the cookie does not authenticate: a stale cookie sent along changes nothing there
CREDENTIAL_PATHS = frozenset({"/api/auth/login", "/api/auth/enrol"})


class SecurityHeaders:
    """Adds the headers above to every response; a response that sets its own CSP keeps it.
    API answers are not to be cached: they hold personal data a shared disk must not keep."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if scope["path"].startswith("/api/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, with_headers)


def allowed_origins() -> frozenset[str]:
    """Origins besides the service's own that may write with the cookie, from
    ``$OPENLFR_ALLOWED_ORIGINS`` (comma-separated, e.g. the public name behind a proxy)."""
    raw = os.environ.get("OPENLFR_ALLOWED_ORIGINS", "")
    return frozenset(o.strip().rstrip("/").lower() for o in raw.split(",") if o.strip())


def _same_origin(url: str, host: str) -> bool:
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    return bool(parts.netloc) and (
        parts.netloc.lower() == host.lower() or origin in allowed_origins()
    )


def csrf_refusal(method: str, path: str, headers: Headers) -> str | None:
    """Why a request is refused as cross-site, or None. The rule:

    - reads (GET, HEAD, OPTIONS) and bearer-token requests pass: a foreign page can send
      neither a token nor, without CORS (none is configured), read an answer;
    - any write whose ``Origin`` is not this service's is refused (login included: no page
      elsewhere can log a browser in as somebody else);
    - a write carrying the session cookie and no ``Origin`` must have a same-origin
      ``Referer``; with neither it is refused (every browser that sends the cookie also sends
      ``Origin`` on a write, so only a forged or stripped request lacks both), except for the
      login and enrolment, which the cookie does not authenticate.
    """
    if method not in UNSAFE_METHODS:
        return None
    if headers.get("authorization", "").lower().startswith("bearer "):
        return None
    host = headers.get("host", "")
    origin = headers.get("origin")
    if origin is not None:
        return None if _same_origin(origin, host) else f"Origin {origin[:200]} is not this service"
    if path in CREDENTIAL_PATHS or COOKIE not in cookie_parser(headers.get("cookie", "")):
        return None
    referer = headers.get("referer")
    if referer is None:
        return "a write with the session cookie needs an Origin or Referer header"
    return None if _same_origin(referer, host) else "Referer is not this service"


class OriginCheck:
    """Refuses cross-site writes (``csrf_refusal``) with 403 before any endpoint runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            why = csrf_refusal(scope["method"], scope["path"], Headers(scope=scope))
            if why:
                response = JSONResponse({"detail": f"cross-site request refused: {why}"}, 403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def route_template(scope: Scope) -> str:
    """The matched route's template, e.g. ``/api/alerts/{alert_id}``; ``-`` when none matched
    (a 404's path is whatever the client typed, so it is not logged either)."""
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    return getattr(route, "path", None) or "-"


class AccessLog:
    """One line per request: client, method, route template, status, milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            client = scope.get("client")
            access_log.info(
                '%s "%s %s" %d %.1f ms',
                client[0] if client else "-",
                scope["method"],
                route_template(scope),
                status,
                (time.perf_counter() - started) * 1000,
            )


def log_config() -> dict:  # type: ignore[type-arg]
    """uvicorn's logging set-up with its access log replaced by ``openlfr.access`` (for
    ``uvicorn.run(..., access_log=False, log_config=log_config())``)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["routes"] = {"format": "%(asctime)s %(levelname)s %(message)s"}
    config["handlers"]["routes"] = {
        "formatter": "routes",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
    }
    config["loggers"].pop("uvicorn.access", None)
    config["loggers"]["openlfr.access"] = {
        "handlers": ["routes"],
        "level": "INFO",
        "propagate": False,
    }
    return config
