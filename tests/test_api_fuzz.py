"""Bad input, generated: schemathesis builds requests from the published OpenAPI description
(``CASES`` per operation, each sent with a token of a role the operation admits) and the service
must answer every one of them without a server error."""

from __future__ import annotations

import os

import pytest
from fastapi.routing import APIRoute
from service_support import service_store, token_for

from openlfr.api import create_app
from openlfr.api.app import iter_routes, route_roles
from openlfr.api.roles import Role

# Generated cases per operation (issue 15 asked for many more than the 4 there were). The value
# keeps the test near 2 minutes on 2 cores; OPENLFR_FUZZ_CASES raises it for a longer hunt.
CASES = int(os.environ.get("OPENLFR_FUZZ_CASES", "30"))

SKIP = {
    ("GET", "/api/events"),  # an endless stream; covered by test_api_live.py
    ("POST", "/api/auth/logout"),  # would end the very session the rest of the run uses
}


def test_generated_requests_never_cause_a_server_error(database_url: str) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    store = service_store(database_url)
    app = create_app(store, poll_alerts=False)
    roles = {
        (method, route.path): route_roles(route)
        for route in iter_routes(app.routes)
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    tokens = {role: token_for(store, role) for role in Role}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tried, problems, statuses, forbidden = 0, [], [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in SKIP:
            continue
        admitted = roles.get(key)
        headers = {"Authorization": f"Bearer {tokens[sorted(admitted)[0]]}"} if admitted else {}

        _probe(operation, key, headers, problems, statuses, forbidden)
        tried += 1
    assert tried >= 25
    assert problems == []
    # each generated call came with a role its operation admits
    assert not forbidden, forbidden[:5]
    assert any(200 <= status < 300 for status in statuses)
    print(sorted(set(statuses)))


def _probe(operation, key, headers, problems, statuses, forbidden) -> None:  # type: ignore[no-untyped-def]
    from hypothesis import HealthCheck, Phase, given, settings

    @given(case=operation.as_strategy())
    @settings(
        max_examples=CASES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def probe(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call(headers=headers)
        statuses.append(response.status_code)
        # a refusal by role; the two-person rule's 403 (an admin approving their own request,
        # which generated ids can hit) is the rule working, not a wrong token
        if response.status_code == 403 and "may not do this" in response.text:
            forbidden.append(f"{key}: {response.text[:200]}")
        if response.status_code >= 500:
            problems.append(f"{key}: {response.status_code} {response.text[:200]}")

    probe()
