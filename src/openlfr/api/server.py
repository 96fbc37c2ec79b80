"""The service under uvicorn, with a shutdown that no client can hold open.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections, then waits for every open response
to finish before it runs the application's lifespan end, and an event stream (``/api/events``)
never finishes by itself. So the server tells the application first
(``openlfr.api.app.begin_shutdown``: every stream ends, every deployment is asked to stop), and
cancels whatever response is still open after ``GRACE_S``.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from fastapi import FastAPI

from openlfr.api.app import begin_shutdown

GRACE_S = 5  # seconds open requests get to finish once shutdown begins


class Server(uvicorn.Server):
    def __init__(self, app: FastAPI, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        begin_shutdown(self.app)
        await super().shutdown(sockets)


def serve(app: FastAPI, **options: Any) -> None:
    """``uvicorn.run(app, **options)``, with this shutdown."""
    options.setdefault("timeout_graceful_shutdown", GRACE_S)
    Server(app, uvicorn.Config(app, **options)).run()
