"""Log in and out; who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from openlfr.api import roles
from openlfr.api.auth import authenticate, close_session, open_session
from openlfr.api.deps import COOKIE, DbSession, allow, bearer, request_token
from openlfr.api.schemas import LoginRequest, LoginResponse, UserOut
from openlfr.governance import audit
from openlfr.store.models import User

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login", response_model=LoginResponse, responses={401: {"description": "refused"}})
def login(body: LoginRequest, session: DbSession, request: Request, response: Response):
    """Exchange a name and password for a session token (also set as an HttpOnly cookie)."""
    user = authenticate(session, body.name, body.password)
    if user is None:
        audit.append(
            session, actor=body.name, action="login-refused", obj=f"user:{body.name}", purpose="-"
        )
        session.commit()
        raise HTTPException(401, "wrong name or password, or the account is disabled")
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
