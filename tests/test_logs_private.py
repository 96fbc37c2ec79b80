"""Database errors say what failed, never with which values: a traceback in a log must not
carry a subject's name, an embedding or an image (they outlive an erasure)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from openlfr.store import open_store
from openlfr.store.models import Watchlist


def test_a_database_error_hides_its_values(database_url: str) -> None:
    store = open_store(database_url)
    with store() as session:
        session.add(Watchlist(name="wanted-alan-smith", description=""))
        session.commit()
    with store() as session:
        session.add(Watchlist(name="wanted-alan-smith", description=""))
        with pytest.raises(IntegrityError) as error:
            session.commit()
    message = str(error.value)
    assert "watchlists" in message  # still says what failed
    assert "parameters hidden" in message
    if not database_url.startswith("postgresql"):
        assert "alan-smith" not in message
    # PostgreSQL's own DETAIL quotes the key ("Key (name)=(...) already exists"): the service
    # never passes such a message on (below)


def test_the_service_answers_a_database_conflict_without_its_values(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi.testclient import TestClient
    from service_support import service_store

    from openlfr.api import create_app

    store = service_store(database_url)
    app = create_app(store, poll_alerts=False)

    @app.post("/test/duplicate")
    def duplicate() -> None:  # a write that slips past the routers' own checks
        with store() as session:
            for _ in range(2):
                session.add(Watchlist(name="wanted-alan-smith", description=""))
                session.flush()

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/test/duplicate")
    assert answer.status_code == 409 and "conflicts" in answer.json()["detail"]
    assert "alan-smith" not in answer.text
    assert "database error" in caplog.text
    assert "alan-smith" not in caplog.text
