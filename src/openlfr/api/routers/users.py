"""Accounts (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import delete, select

from openlfr.api import roles
from openlfr.api.auth import create_user
from openlfr.api.deps import DbSession, allow
from openlfr.api.schemas import (
    RowId,
    UserCreate,
    UserOut,
    UserUpdate,
)
from openlfr.errors import NotFoundError
from openlfr.governance import audit
from openlfr.store.models import AuthSession, User

router = APIRouter(prefix="/api/users", tags=["users"])
Admin = Annotated[User, Depends(allow(roles.USERS))]


@router.get("", response_model=list[UserOut])
def list_users(session: DbSession, admin: Admin) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


@router.post("", response_model=UserOut, status_code=201)
def add_user(body: UserCreate, session: DbSession, admin: Admin) -> User:
    user = create_user(session, body.name, body.role, body.password)
    audit.append(
        session,
        actor=admin.name,
        action="user-add",
        obj=f"user:{user.name}:{user.role}",
        purpose="account administration",
    )
    session.commit()
    return user


@router.patch("/{user_id}", response_model=UserOut)
def update_user(user_id: RowId, body: UserUpdate, session: DbSession, admin: Admin) -> User:
    """Change a role or disable an account; disabling ends its sessions at once."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user {user_id}")
    if body.role is not None:
        user.role = body.role
    if body.active is not None:
        user.active = body.active
    if body.active is False or body.role is not None:
        session.execute(delete(AuthSession).where(AuthSession.user_id == user.id))
    audit.append(
        session,
        actor=admin.name,
        action="user-update",
        obj=f"user:{user.name}:{user.role}:{'active' if user.active else 'disabled'}",
        purpose="account administration",
    )
    session.commit()
    return user
