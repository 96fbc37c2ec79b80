"""Where OpenLFR keeps its data and which database it talks to.

``OPENLFR_HOME`` sets the data directory (a per-user default otherwise);
``OPENLFR_DATABASE_URL`` overrides the database with any SQLAlchemy URL.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The data directory: ``$OPENLFR_HOME``, else ``$XDG_DATA_HOME/openlfr``, else
    ``~/.local/share/openlfr``; created if missing."""
    if home := os.environ.get("OPENLFR_HOME"):
        path = Path(home).expanduser()
    else:
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        path = Path(xdg) / "openlfr"
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """The store's SQLAlchemy URL: ``$OPENLFR_DATABASE_URL``, else SQLite in the data directory."""
    if url := os.environ.get("OPENLFR_DATABASE_URL"):
        return url
    return f"sqlite:///{data_dir() / 'openlfr.sqlite3'}"
