"""Server-Sent Events: alerts as they are raised, for the console's queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from openlfr.api import roles
from openlfr.api.deps import allow
from openlfr.store.models import User

router = APIRouter(prefix="/api", tags=["events"])
KEEPALIVE_S = 15.0


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    request: Request, user: Annotated[User, Depends(allow(roles.ALERT_READ))]
) -> StreamingResponse:
    """``event: alert`` / ``event: deployment`` with a JSON ``data`` line; no images. The
    stream ends with ``event: shutdown`` when the service stops."""
    broadcaster = request.app.state.broadcaster
    queue = broadcaster.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 1000\n: connected\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
                if event["type"] == "shutdown":  # the service is stopping: end the response
                    return
        finally:
            broadcaster.unsubscribe(queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
