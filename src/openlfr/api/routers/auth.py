"""Log in and out; who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import StringConstraints

from openlfr.api import roles, throttle
from openlfr.api.auth import authenticate, close_session, enrol, open_session
from openlfr.api.deps import COOKIE, DbSession, allow, bearer, request_token
from openlfr.api.schemas import NO_NUL, In, LoginRequest, LoginResponse, UserOut
from openlfr.governance import audit
from openlfr.store.models import User

router = APIRouter(prefix="/api/auth", tags=["auth"])
REFUSED = "wrong name or password, or the account is disabled"
THROTTLED = {
    401: {"description": "refused"},
    429: {"description": "too many refused logins: wait the Retry-After seconds"},
}


class EnrolRequest(In):  # no control characters (schemas.In)
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)]
    code: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
    password: Annotated[str, StringConstraints(min_length=10, max_length=1000, pattern=NO_NUL)]


def client_address(request: Request) -> str:
    """The peer's address as the server saw it (a proxy's forwarded address only where
    ``openlfr serve --forwarded-allow-ips`` trusts that proxy)."""
    return request.client.host if request.client else "unknown"


def _too_many(session, seconds: int) -> HTTPException:  # type: ignore[no-untyped-def]
    session.commit()
    return HTTPException(
        429, f"too many refused logins: try again in {seconds} s", {"Retry-After": str(seconds)}
    )


def _guarded(session, who, check):  # type: ignore[no-untyped-def]
    """``check()`` (a password or code test) unless ``who`` is locked; failures counted."""
    wait = throttle.retry_after(session, who)
    if wait:
        throttle.throttled(session)
        raise _too_many(session, wait)
    user = check()
    if user is None:
        wait = throttle.record_failure(session, who)
        if wait:
            raise _too_many(session, wait)
        session.commit()
        raise HTTPException(401, REFUSED)
    throttle.record_success(session, user.name)
    return user


@router.post("/login", response_model=LoginResponse, responses=THROTTLED)
def login(body: LoginRequest, session: DbSession, request: Request, response: Response):
    """Exchange a name and password for a session token (also set as an HttpOnly cookie).
    Refused logins are throttled per account and per address (``openlfr.api.throttle``)."""
    who = throttle.subjects(body.name, client_address(request))
    user = _guarded(session, who, lambda: authenticate(session, body.name, body.password))
    token, record = open_session(session, user)
    audit.append(session, actor=user.name, action="login", obj=f"user:{user.name}", purpose="-")
    session.commit()
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=int((record.expires_at - record.created_at).total_seconds()),
    )
    return LoginResponse(
        token=token, expires_at=record.expires_at, user=UserOut.model_validate(user)
    )


@router.post("/enrol", response_model=UserOut, responses=THROTTLED)
def enrol_account(body: EnrolRequest, session: DbSession, request: Request) -> User:
    """The holder of a newly approved account sets its password with the one-time code the
    approving admin handed over; then logs in as usual. Throttled as logins are."""
    who = throttle.subjects(body.name, client_address(request))
    user = _guarded(session, who, lambda: enrol(session, body.name, body.code, body.password))
    audit.append(
        session, actor=user.name, action="user-enrol", obj=f"user:{user.name}", purpose="-"
    )
    session.commit()
    return user


@router.post("/logout", status_code=204)
def logout(
    request: Request,
    response: Response,
    session: DbSession,
    user: Annotated[User, Depends(allow(roles.ALL))],
    credentials=Depends(bearer),  # noqa: B008
) -> None:
    """End this session now."""
    token = request_token(request, credentials)
    if token:
        close_session(session, token)
    audit.append(session, actor=user.name, action="logout", obj=f"user:{user.name}", purpose="-")
    session.commit()
    response.delete_cookie(COOKIE)


@router.get("/me", response_model=UserOut)
def me(user: Annotated[User, Depends(allow(roles.ALL))]) -> User:
    """The logged-in user and their role."""
    return user
