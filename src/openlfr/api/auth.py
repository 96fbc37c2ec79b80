"""Accounts: argon2 password hashes, server-side sessions that expire, bootstrap of users, and
the two-person rule for roles.

The two-person rule: an admin sees no personal data, and must not be able to reach it through
accounts. So every change that lets an account use a role (a new account, a new role, enabling
a disabled account) is a *request* by one admin that takes effect only when a second, different
admin approves it, and an admin can neither request nor approve a change to its own account.
This holds for the admin role too: otherwise one admin could make a second admin and approve
its own requests with it. A new account gets no password from either admin: the approval hands
out a one-time enrolment code, and the account's holder chooses the password with it.
Disabling takes effect at once (it only takes power away).
"""

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
from openlfr.store.models import AuthSession, User, as_utc, utcnow

_hasher = PasswordHasher()
# verifying against this when the user is unknown takes as long as a real check: no user probing
_DUMMY_HASH = _hasher.hash("not a password")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MIN_PASSWORD = 10
ENROL_TTL = timedelta(days=3)


class GrantRefused(OpenLFRError):
    """A role change the two-person rule does not allow (answered 403)."""


def session_ttl() -> timedelta:
    """How long a login lasts: ``$OPENLFR_SESSION_TTL_S`` seconds, default one 8-hour shift."""
    return timedelta(seconds=float(os.environ.get("OPENLFR_SESSION_TTL_S", 8 * 3600)))


def create_user(session: Session, name: str, role: str, password: str) -> User:
    """An active account at once, without a second admin: the host's bootstrap (``openlfr user
    add``, see ``cli/service.py``) and tests. The API never calls it."""
    _check_new(session, name, role)
    _check_password(password)
    user = User(name=name, role=role, password_hash=_hasher.hash(password), active=True)
    session.add(user)
    session.flush()
    return user


def _check_new(session: Session, name: str, role: str) -> None:
    if not NAME.match(name):
        raise OpenLFRError("a user name is 1-100 letters, digits, '.', '_' or '-'")
    if role not in set(Role):
        raise OpenLFRError(f"unknown role {role!r}: one of {', '.join(Role)}")
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise OpenLFRError(f"user {name!r} already exists")


def request_account(session: Session, name: str, role: str, requested_by: str) -> User:
    """A new account that cannot log in: no password, disabled, its role pending approval."""
    _check_new(session, name, role)
    user = User(name=name, role=role, password_hash="", active=False)
    _set_pending(user, role, requested_by)
    session.add(user)
    session.flush()
    return user


def request_change(
    session: Session, user: User, requested_by: str, *, role: str | None, enable: bool
) -> bool:
    """Ask for ``user`` to get ``role`` and/or be enabled; False when it already is so."""
    if requested_by == user.name:
        raise GrantRefused("an admin cannot change the role of, or enable, its own account")
    wanted = role or user.pending_role or user.role
    if wanted == user.role and (user.active or not enable) and user.pending_role is None:
        return False
    _set_pending(user, wanted, requested_by)
    session.flush()
    return True


def approve(session: Session, user: User, approver: str) -> str | None:
    """Apply ``user``'s pending change as a second admin. Returns the one-time enrolment code
    when the account has no password yet (shown once, to the approver, to hand over)."""
    if user.pending_role is None:
        raise OpenLFRError(f"nothing awaits approval for {user.name!r}")
    if approver in (user.pending_by, user.name):
        raise GrantRefused(
            "the two-person rule: a change is approved by a second admin, not by the admin "
            "who asked for it nor by the account it changes"
        )
    user.role, user.active = user.pending_role, True
    _set_pending(user, None, None)
    _end_sessions(session, user)
    code = None
    if not user.password_hash:
        code = secrets.token_urlsafe(24)
        user.enrol_code_sha256 = _digest(code)
        user.enrol_expires_at = utcnow() + ENROL_TTL
    session.flush()
    return code


def reject(session: Session, user: User) -> None:
    """Drop ``user``'s pending change (any admin, the one who asked included)."""
    if user.pending_role is None:
        raise OpenLFRError(f"nothing awaits approval for {user.name!r}")
    _set_pending(user, None, None)
    session.flush()


def enrol(session: Session, name: str, code: str, password: str) -> User | None:
    """The holder of an approved new account sets its password with the one-time code; None if
    the name or code is wrong or the code has expired."""
    _check_password(password)
    user = session.scalar(select(User).where(User.name == name))
    if user is None or user.enrol_code_sha256 is None or user.enrol_expires_at is None:
        return None
    if not secrets.compare_digest(user.enrol_code_sha256, _digest(code)):
        return None
    if as_utc(user.enrol_expires_at) <= utcnow():
        return None
    user.password_hash = _hasher.hash(password)
    user.enrol_code_sha256 = user.enrol_expires_at = None
    session.flush()
    return user


def _set_pending(user: User, role: str | None, by: str | None) -> None:
    user.pending_role, user.pending_by = role, by
    user.pending_at = utcnow() if role else None


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The active user with this name and password, else None (same time either way)."""
    user = session.scalar(select(User).where(User.name == name))
    try:
        # an account still waiting for enrolment has no hash: checked against the dummy
        _hasher.verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
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


def disable(session: Session, user: User) -> None:
    """At once, by one admin: disabling takes a power away and needs no second person."""
    user.active = False
    _end_sessions(session, user)


def _end_sessions(session: Session, user: User) -> None:
    session.execute(delete(AuthSession).where(AuthSession.user_id == user.id))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise OpenLFRError(f"a password needs at least {MIN_PASSWORD} characters")


def close_session(session: Session, token: str) -> None:
    session.execute(delete(AuthSession).where(AuthSession.token_sha256 == _digest(token)))
