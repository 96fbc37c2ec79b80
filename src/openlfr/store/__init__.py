"""The database: watchlists, subjects, reference images and templates (SQLite by default)."""

from openlfr.store.db import open_store
from openlfr.store.models import (
    Adjudication,
    Alert,
    AuditEntry,
    AuthSession,
    Camera,
    Deployment,
    ReferenceImage,
    SnapshotTemplate,
    Subject,
    Suppression,
    Template,
    User,
    Watchlist,
)

__all__ = [
    "Adjudication",
    "Alert",
    "AuditEntry",
    "AuthSession",
    "Camera",
    "Deployment",
    "ReferenceImage",
    "SnapshotTemplate",
    "Subject",
    "Suppression",
    "Template",
    "User",
    "Watchlist",
    "open_store",
]
