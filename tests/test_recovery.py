"""The service ends a deployment whose runner was killed, and destroys its watchlist copy,
without anyone opening the board or running a command (invariants 3 and 4 when nobody looks)."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from test_supervision import LONG_CLIP, _plan, _until, video  # noqa: F401

from openlfr.governance.scheduler import RecoveryScheduler
from openlfr.live.deployment import freeze_snapshot
from openlfr.store import Deployment, SnapshotTemplate, open_store


def test_a_deployment_whose_runner_died_is_ended_by_the_service(
    database_url: str,
    video: Path,  # noqa: F811
) -> None:
    store = open_store(database_url)
    deployment_id = _plan(store, video / LONG_CLIP, timedelta(hours=1))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a runner that is gone
    dead.wait()
    with store() as session:
        deployment = session.get(Deployment, deployment_id)
        freeze_snapshot(session, deployment)
        deployment.status = "running"
        deployment.runner_pid, deployment.runner_host = dead.pid, socket.gethostname()
        session.commit()

    def rows() -> int:
        with store() as session:
            return session.scalar(select(func.count()).select_from(SnapshotTemplate))

    assert rows() > 0
    scheduler = RecoveryScheduler(store, interval_s=0.2)
    scheduler.start()
    try:
        _until(lambda: rows() == 0, "the dead runner's snapshot to be destroyed", timeout_s=20)
    finally:
        scheduler.stop()
    with store() as session:
        deployment = session.get(Deployment, deployment_id)
        assert deployment.status == "ended"
        assert "runner stopped unexpectedly" in deployment.end_reason
