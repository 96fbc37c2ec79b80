"""Opening the store: an engine on any SQLAlchemy URL, with the schema brought up to date."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from openlfr.config import database_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration not yet applied."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def make_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    options = {}
    if make_url(url).get_backend_name() == "postgresql":
        # The audit chain is linked under a table lock and needs each transaction to see the
        # newest entry (governance.audit refuses older snapshots): pin READ COMMITTED, whatever
        # the server's default_transaction_isolation says.
        options["isolation_level"] = "READ COMMITTED"
    # A database error's message would otherwise carry its statement's values (a name, an
    # embedding, an image) into tracebacks and logs, which outlive an erasure.
    engine = create_engine(url, hide_parameters=True, **options)
    if engine.dialect.name == "sqlite":
        # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless asked, per connection.
        @event.listens_for(engine, "connect")
        def _fk_on(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA foreign_keys = ON")

    return engine


def open_store(url: str | None = None) -> sessionmaker[Session]:
    """A session factory on the store at ``url`` (default: ``config.database_url()``), migrated."""
    engine = make_engine(url)
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)
