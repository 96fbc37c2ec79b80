"""The API's interactive description at /docs, served from this machine.

FastAPI's own /docs page loads Swagger UI from a CDN: that fails on an offline site, and would
tell a third party each time an operator opens it. Here the Swagger UI files come from the
``fastapi-offline`` package, and the page's one inline script is allowed by its SHA-256 in the
page's Content-Security-Policy, so no other inline script can run there. (ReDoc is not served:
it needs inline styles and workers that the policy refuses.)
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from openlfr.api.security import CSP

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
PREFIX = "/docs-assets"


def _script_hashes(html: str) -> list[str]:
    """CSP source expressions for each inline <script> of ``html``."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    ]


def install(app: FastAPI, path: str = "/docs") -> None:
    """Serve Swagger UI at ``path`` for ``app`` (created with ``docs_url=None``)."""
    app.mount(PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} - API",
        swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{PREFIX}/favicon.png",
    ).body.decode()
    policy = CSP.replace(
        "default-src 'self'",
        "default-src 'self'; script-src 'self' " + " ".join(_script_hashes(page)),
    )

    @app.get(path, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": policy})
