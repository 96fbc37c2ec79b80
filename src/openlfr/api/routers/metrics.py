"""``GET /metrics``: the Prometheus text exposition of every shown deployment's figures, as
``prometheus-client`` writes it (the collector is ``openlfr.api.metrics``).

Who may read it: any signed-in user's bearer token (or the console's cookie), whatever the
role, or a scraper's token whose SHA-256 the policy sets (``[metrics] scrape_token_sha256``):
Prometheus sends it as a bearer token (``authorization: {credentials_file: ...}`` in its scrape
config). Without either, 401.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry
from prometheus_client.exposition import choose_encoder

from openlfr.api import roles
from openlfr.api.auth import resolve_token
from openlfr.api.deps import DbSession, bearer, request_token
from openlfr.api.metrics import StoreCollector
from openlfr.governance.policy import load_policy

router = APIRouter(tags=["metrics"])


def scraper(
    request: Request,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """Who reads: ``scrape-token`` for the policy's scraper, else the signed-in user's name."""
    token = request_token(request, credentials)
    if not token:
        raise HTTPException(401, "authentication required", {"WWW-Authenticate": "Bearer"})
    digest = load_policy().metrics.scrape_token_sha256
    if digest and secrets.compare_digest(hashlib.sha256(token.encode()).hexdigest(), digest):
        return "scrape-token"
    user, why = resolve_token(session, token)
    if user is None:
        raise HTTPException(401, why, {"WWW-Authenticate": "Bearer"})
    return user.name


scraper.roles = roles.METRICS_READ  # type: ignore[attr-defined]  # read by the role test


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}, "description": "Prometheus text"}},
)
def metrics(
    request: Request, session: DbSession, reader: Annotated[str, Depends(scraper)]
) -> Response:
    """Counters, gauges and histograms per deployment and camera: fps, frames, drops, faces
    processed, alerts, state, crashes and restarts, alert latency and 1:N search time. Running
    deployments and those ended within the hour; it counts faces, never names. The format
    is the one the scraper's Accept header asks for (Prometheus text, or OpenMetrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(session))
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(
        encode(registry), headers={"Content-Type": content_type, "Cache-Control": "no-store"}
    )
