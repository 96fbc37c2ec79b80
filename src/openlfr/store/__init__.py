"""The database: watchlists, subjects, reference images and templates (SQLite by default)."""

from openlfr.store.db import open_store
from openlfr.store.models import (
    Alert,
    Camera,
    Deployment,
    ReferenceImage,
    SnapshotTemplate,
    Subject,
    Template,
    Watchlist,
)

__all__ = [
    "Alert",
    "Camera",
    "Deployment",
    "ReferenceImage",
    "SnapshotTemplate",
    "Subject",
    "Template",
    "Watchlist",
    "open_store",
]
