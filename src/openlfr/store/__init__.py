"""The database: watchlists, subjects, reference images and templates (SQLite by default)."""

from openlfr.store.db import open_store
from openlfr.store.models import ReferenceImage, Subject, Template, Watchlist

__all__ = ["ReferenceImage", "Subject", "Template", "Watchlist", "open_store"]
