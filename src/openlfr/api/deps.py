"""Request dependencies: a store session per request, and the authenticated user with a role
check. ``allow(...)`` is the only way an endpoint gets its user, and the role test in
``tests/test_api_roles.py`` reads the ``roles`` it leaves on each route."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from openlfr.api.auth import resolve_token
from openlfr.api.roles import Role
from openlfr.store.models import User

COOKIE = "openlfr_session"
bearer = HTTPBearer(auto_error=False, description="The token from POST /api/auth/login")


def get_session(request: Request) -> Iterator[Session]:
    """A store session for this request; rolled back unless the endpoint commits."""
    with request.app.state.store() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]


def request_token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer token, else the console's session cookie (EventSource and <img> cannot send
    headers; the cookie is HttpOnly and SameSite=Strict)."""
    if credentials is not None:
        return credentials.credentials
    return request.cookies.get(COOKIE)


def authenticated_user(
    request: Request,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    token = request_token(request, credentials)
    if not token:
        raise HTTPException(401, "authentication required", {"WWW-Authenticate": "Bearer"})
    user, why = resolve_token(session, token)
    if user is None:
        raise HTTPException(401, why, {"WWW-Authenticate": "Bearer"})
    return user


def allow(roles: frozenset[Role]) -> Callable[..., User]:
    """A dependency that yields the user if their role is one of ``roles``, else 403."""

    def check(user: Annotated[User, Depends(authenticated_user)]) -> User:
        if user.role not in roles:
            raise HTTPException(
                403, f"role {user.role!r} may not do this (needs: {', '.join(sorted(roles))})"
            )
        return user

    check.roles = roles  # type: ignore[attr-defined]
    return check
