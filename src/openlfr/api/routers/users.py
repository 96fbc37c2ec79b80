"""Accounts (admin only), under the two-person rule of ``openlfr.api.auth``: one admin asks,
a second admin approves; disabling is at once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import select

from openlfr.api import roles, throttle
from openlfr.api.auth import approve, disable, reject, request_account, request_change
from openlfr.api.deps import DbSession, allow
from openlfr.api.schemas import (
    RowId,
    UserCreate,
    UserOut,
    UserUpdate,
)
from openlfr.errors import NotFoundError
from openlfr.governance import audit
from openlfr.store.models import User, as_utc

router = APIRouter(prefix="/api/users", tags=["users"])
Admin = Annotated[User, Depends(allow(roles.USERS))]
PURPOSE = "account administration"
REFUSED = {403: {"description": "the two-person rule refuses it"}}


class Approved(UserOut):
    # shown once, to the approving admin, who hands it to the account's holder in person
    enrolment_code: str | None = None


class Lock(BaseModel):
    kind: str
    label: str  # an account or address; empty for a name no account has
    locked_until: datetime
    lockouts: int


class Throttling(BaseModel):
    counters: dict[str, int]
    locks: list[Lock]


def _user(session: DbSession, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user {user_id}")
    return user


def _record(session: DbSession, actor: str, action: str, user: User, purpose: str = PURPOSE):  # type: ignore[no-untyped-def]
    state = "active" if user.active else "disabled"
    obj = f"user:{user.name}:{user.role}:{state}"
    if user.pending_role:
        obj += f":pending={user.pending_role}"
    audit.append(session, actor=actor, action=action, obj=obj, purpose=purpose)


@router.get("", response_model=list[UserOut])
def list_users(session: DbSession, admin: Admin) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


@router.post("", response_model=UserOut, status_code=201)
def add_user(body: UserCreate, session: DbSession, admin: Admin) -> User:
    """Ask for a new account. It cannot log in until a second admin approves it and its holder
    enrols with the code the approval gives; a password in the body is not used."""
    user = request_account(session, body.name, body.role, admin.name)
    _record(session, admin.name, "user-request", user)
    session.commit()
    return user


@router.patch("/{user_id}", response_model=UserOut, responses=REFUSED)
def update_user(user_id: RowId, body: UserUpdate, session: DbSession, admin: Admin) -> User:
    """Disable an account (at once, ending its sessions), or ask for a role or an enabling,
    which waits for a second admin's approval."""
    user = _user(session, user_id)
    if body.active is False and user.active:
        disable(session, user)
        _record(session, admin.name, "user-disable", user)
    if body.role is not None or body.active is True:
        asked = request_change(session, user, admin.name, role=body.role, enable=bool(body.active))
        if asked:
            _record(session, admin.name, "user-request", user)
    session.commit()
    return user


@router.post("/{user_id}/approve", response_model=Approved, responses=REFUSED)
def approve_user(user_id: RowId, session: DbSession, admin: Admin) -> Approved:
    """A second admin applies the pending change; for a new account, the answer holds the
    one-time enrolment code (3 days), shown only here."""
    user = _user(session, user_id)
    asked_by = user.pending_by
    code = approve(session, user, admin.name)  # GrantRefused: 403 (api.app)
    _record(session, admin.name, "user-approve", user, f"{PURPOSE}; requested by {asked_by}")
    session.commit()
    return Approved.model_validate(user).model_copy(update={"enrolment_code": code})


@router.post("/{user_id}/reject", response_model=UserOut)
def reject_user(user_id: RowId, session: DbSession, admin: Admin) -> User:
    """Drop a pending change (any admin, the one who asked included)."""
    user = _user(session, user_id)
    reject(session, user)
    _record(session, admin.name, "user-reject", user)
    session.commit()
    return user


@router.get("/login-throttle", response_model=Throttling)
def login_throttle(session: DbSession, admin: Admin) -> Throttling:
    """Refused, throttled and locked-out login counts, and the locks now held."""
    return Throttling(
        counters=throttle.counters(session),
        locks=[
            Lock(
                kind=r.kind, label=r.label, locked_until=as_utc(r.locked_until), lockouts=r.lockouts
            )
            for r in throttle.locks(session)
        ],
    )
