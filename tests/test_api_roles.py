"""Invariant 6: every API call is authenticated and roles bound what each user may do.

The matrix is generated from the app's own routes, so a new endpoint is checked the day it is
added, and one added without ``allow(...)`` fails here unless it is declared public."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from service_support import service_store, user_name
from sqlalchemy import select

from openlfr.api import create_app
from openlfr.api.app import PUBLIC_PATHS, iter_routes, route_roles
from openlfr.api.auth import open_session
from openlfr.api.roles import Role
from openlfr.store.models import User

PATH_VALUES = {"which": "probe"}  # path parameters that are not free text or numbers
STREAMS = {"/api/events"}  # endpoints that never finish: refusals checked, not the success


def _routes(app) -> list[tuple[str, str, frozenset[str] | None]]:  # type: ignore[no-untyped-def]
    out = []
    for route in iter_routes(app.routes):
        if not isinstance(route, APIRoute):
            continue
        for method in sorted(route.methods - {"HEAD"}):
            out.append((method, route.path, route_roles(route)))
    return out


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), path)


@pytest.fixture
def setup(database_url: str) -> Iterator[tuple[TestClient, object]]:
    store = service_store(database_url)
    with TestClient(create_app(store, poll_alerts=False)) as client:
        yield client, store


def test_every_route_is_public_on_purpose_or_names_its_roles() -> None:
    app = create_app(poll_alerts=False)
    routes = _routes(app)
    assert len(routes) >= 25
    for method, path, roles in routes:
        if roles is None:
            assert path in PUBLIC_PATHS, f"{method} {path} has no role check"
        else:
            assert roles, f"{method} {path} admits nobody"


def test_role_matrix(setup) -> None:  # type: ignore[no-untyped-def]
    client, store = setup

    def token(role: Role) -> dict[str, str]:
        with store() as session:  # a fresh session each call: logout may close one
            user = session.scalar(select(User).where(User.name == user_name(role)))
            value, _ = open_session(session, user)
            session.commit()
        return {"Authorization": f"Bearer {value}"}

    checked = 0
    for method, path, roles in _routes(client.app):
        if roles is None:
            continue
        url = _concrete(path)
        anonymous = client.request(method, url)
        assert anonymous.status_code == 401, f"{method} {path} without credentials"
        forged = client.request(method, url, headers={"Authorization": "Bearer forged"})
        assert forged.status_code == 401, f"{method} {path} with a forged token"
        for role in Role:
            if role not in roles:
                refused = client.request(method, url, headers=token(role))
                assert refused.status_code == 403, f"{method} {path} as {role}"
                assert role.value in refused.json()["detail"]
            elif path not in STREAMS:
                allowed = client.request(method, url, headers=token(role), json=None)
                assert allowed.status_code not in (401, 403), f"{method} {path} as {role}"
            checked += 1
    assert checked >= 25 * len(Role)
