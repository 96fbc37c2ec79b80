"""Shared fixtures. Real faces come from ``OPENLFR_TEST_DATA`` (tests needing them skip without it);
everything else runs anywhere, with generated images or scikit-image's public-domain astronaut."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker


@pytest.fixture(autouse=True)
def openlfr_home(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own data directory and SQLite store, and a policy whose cameras may
    be the tests' own: files under pytest's temporary folders and the test data, /dev/null
    (planned, never run), webcams 0 and 97 (absent: tests of the error), and HTTP or RTSP on
    loopback. tests/test_inputs.py checks the default policy's refusals."""
    home = tmp_path / "openlfr-home"
    home.mkdir()
    local = [str(tmp_path_factory.getbasetemp()), "/dev/null"]
    if os.environ.get("OPENLFR_TEST_DATA"):
        local.append(os.environ["OPENLFR_TEST_DATA"])
    (home / "policy.toml").write_text(
        "[cameras]\n"
        'schemes = ["rtsp", "rtsps", "http", "https"]\n'
        'hosts = ["127.0.0.0/8", "::1", "localhost"]\n'
        f"local_paths = {json.dumps(local)}\n"
        "devices = [0, 97]\n"
    )
    monkeypatch.setenv("OPENLFR_HOME", str(home))
    monkeypatch.delenv("OPENLFR_DATABASE_URL", raising=False)
    monkeypatch.delenv("OPENLFR_POLICY", raising=False)
    return home


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The shared development data (faces/, video/), or a skip saying how to get it."""
    root = os.environ.get("OPENLFR_TEST_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("real-face data absent: set OPENLFR_TEST_DATA to the shared data folder")
    return Path(root)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A public-domain portrait (Eileen Collins) shipped with scikit-image, RGB uint8."""
    from skimage import data

    return data.astronaut()


# --- databases: SQLite always, PostgreSQL too when OPENLFR_TEST_POSTGRES_URL is set -------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--postgres-url",
        default=os.environ.get("OPENLFR_TEST_POSTGRES_URL"),
        help="a PostgreSQL server URL (a role that may create databases): tests using "
        "`database_url` run on it too, each in a fresh database (.ci/postgres.sh starts one)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames:
        backends = ["sqlite"]
        if metafunc.config.getoption("postgres_url"):
            backends.append("postgresql")
        metafunc.parametrize("db_backend", backends)


@pytest.fixture
def database_url(
    db_backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, openlfr_home
) -> Iterator[str]:
    """The store's URL for this test, also set as OPENLFR_DATABASE_URL for the code under test."""
    if db_backend == "sqlite":
        openlfr_home.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{openlfr_home / 'openlfr.sqlite3'}"
        monkeypatch.setenv("OPENLFR_DATABASE_URL", url)
        yield url
        return
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(request.config.getoption("postgres_url"))
    name = f"openlfr_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("OPENLFR_DATABASE_URL", url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- the operator service ----------------------------------------------------------------------


@pytest.fixture
def store(database_url: str) -> sessionmaker[Session]:
    """The service's store, migrated, with one user per role (service_support.add_users).
    Modules testing the store without accounts override it."""
    from service_support import service_store

    return service_store(database_url)


@pytest.fixture
def client(store: sessionmaker[Session]) -> Iterator[TestClient]:
    """The app over ``store``, without the alert poller (tests insert alerts themselves)."""
    from openlfr.api import create_app

    with TestClient(create_app(store, poll_alerts=False)) as client:
        yield client
