"""Shared fixtures. Real faces come from ``OPENLFR_TEST_DATA`` (tests needing them skip without it);
everything else runs anywhere, with generated images or scikit-image's public-domain astronaut."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def openlfr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data directory and SQLite store."""
    home = tmp_path / "openlfr-home"
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
