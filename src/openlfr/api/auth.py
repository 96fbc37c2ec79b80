"""Accounts: argon2 password hashes, server-side sessions that expire, bootstrap of users."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from openlfr.api.roles import Role
from openlfr.errors import OpenLFRError
from openlfr.live.deployment import as_utc
from openlfr.store.models import AuthSession, User, utcnow

_hasher = PasswordHasher()
# verifying against this when the user is unknown takes as long as a real check: no user probing
_DUMMY_HASH = _hasher.hash("not a password")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MIN_PASSWORD = 10


def session_ttl() -> timedelta:
    """How long a login lasts: ``$OPENLFR_SESSION_TTL_S`` seconds, default one 8-hour shift."""
    return timedelta(seconds=float(os.environ.get("OPENLFR_SESSION_TTL_S", 8 * 3600)))


def create_user(session: Session, name: str, role: str, password: str) -> User:
    if not NAME.match(name):
        raise OpenLFRError("a user name is 1-100 letters, digits, '.', '_' or '-'")
    if role not in set(Role):
        raise OpenLFRError(f"unknown role {role!r}: one of {', '.join(Role)}")
    if len(password) < MIN_PASSWORD:
        raise OpenLFRError(f"a password needs at least {MIN_PASSWORD} characters")
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise OpenLFRError(f"user {name!r} already exists")
    user = User(name=name, role=role, password_hash=_hasher.hash(password), active=True)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The active user with this name and password, else None (same time either way)."""
    user = session.scalar(select(User).where(User.name == name))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return user if user is not None and user.active else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, user: User) -> tuple[str, AuthSession]:
    """A new random token for ``user``; the store keeps only its digest."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    record = AuthSession(
        token_sha256=_digest(token), user_id=user.id, created_at=now, expires_at=now + session_ttl()
    )
    session.add(record)
    session.flush()
    return token, record


def resolve_token(session: Session, token: str) -> tuple[User | None, str]:
    """The user a token belongs to, or None and why not."""
    record = session.scalar(select(AuthSession).where(AuthSession.token_sha256 == _digest(token)))
    if record is None:
        return None, "unknown or closed session: log in again"
    if as_utc(record.expires_at) <= utcnow():
        return None, "session expired: log in again"
    if not record.user.active:
        return None, "account disabled"
    return record.user, ""


def close_session(session: Session, token: str) -> None:
    session.execute(delete(AuthSession).where(AuthSession.token_sha256 == _digest(token)))
