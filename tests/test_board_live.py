"""A deployment's live state on the board (issue 14, point 4): per camera, frames per second,
frames dropped, faces processed, last frame time and state, as the deployment runs; figures
only, never a picture."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from test_supervision import LONG_CLIP, _camera, _plan, _runner, _stop, _until, video  # noqa: F401
from typer.testing import CliRunner

from openlfr.cli import app
from openlfr.live.supervisor import camera_record
from openlfr.store import open_store
from openlfr.store.models import Camera


def _camera_row(**values: object) -> Camera:
    row = Camera(id=1, name="north", source="rtsp://cam", frames=10, frames_dropped=2)
    row.faces_processed, row.alerts = 3, 0
    for name, value in values.items():
        setattr(row, name, value)
    return row


def test_a_running_camera_without_frames_reads_as_reconnecting() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    fresh = _camera_row(state="running", fps=12.5, last_frame_at=now - timedelta(seconds=1))
    shown = camera_record(fresh, "running", now=now)
    assert (shown["state"], shown["fps"], shown["last_frame_at"]) == (
        "running",
        12.5,
        now - timedelta(seconds=1),
    )
    silent = _camera_row(state="running", fps=0.0, last_frame_at=now - timedelta(seconds=9))
    assert camera_record(silent, "running", now=now)["state"] == "reconnecting"
    # a state left 'running' by a runner that died reads as ended once the deployment has
    assert camera_record(silent, "ended", now=now)["state"] == "ended"
    naive = _camera_row(
        state="running", last_frame_at=(now - timedelta(seconds=1)).replace(tzinfo=None)
    )
    assert camera_record(naive, "running", now=now)["state"] == "running"  # SQLite's naive UTC
    assert camera_record(_camera_row(), "planned")["state"] == "planned"


def test_the_board_shows_rate_and_last_frame_while_running(
    database_url: str,
    video: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    store = open_store(database_url)
    deployment_id = _plan(store, video / LONG_CLIP, timedelta(hours=1))
    runner = _runner(deployment_id, tmp_path / "runner.log")
    try:
        shown = _until(
            lambda: (
                (c := _camera(store, deployment_id))["state"] in {"running", "lagging"}
                and (c["fps"] or 0) > 0
                and c
            ),
            "the camera's frame rate",
        )
        assert 0 < shown["fps"] <= 60  # the clip plays in real time (about 25 fps at most)
        age = datetime.now(UTC) - shown["last_frame_at"]
        assert age < timedelta(seconds=5)
        assert shown["frames"] > 0
        printed = CliRunner().invoke(app, ["deployment", "show", str(deployment_id), "--json"])
        assert printed.exit_code == 0, printed.output
        [camera] = json.loads(printed.output)["cameras"]
        assert camera["fps"] is not None and camera["last_frame_at"]
    finally:
        _stop(runner)
        print((tmp_path / "runner.log").read_text(errors="replace"))
