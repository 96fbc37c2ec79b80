"""What a control room costs the service: ``GET /metrics`` and the board (``GET
/api/deployments``) with many running deployments in one store (issue 13, point 5).

    python benchmarks/metrics_scrape.py [--deployments 10 50] [--cameras 4] [--alerts-per-camera 10]
        [--database-url URL] [--repeat 5] [--json FILE]

Each size fills a fresh store (SQLite in a temporary folder, or a new database on the
PostgreSQL server ``--database-url`` names, e.g. ``$OPENLFR_TEST_POSTGRES_URL``, dropped after)
with running deployments whose cameras carry counts, a search histogram and alerts as runners
write them, then times both endpoints through the app (in process, no network), best of
``--repeat``. Prints one JSON line per size: milliseconds, bytes and series per scrape.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from openlfr.api import create_app
from openlfr.api.auth import create_user, open_session
from openlfr.live.pipeline import CameraCounts
from openlfr.live.supervisor import _store_counts
from openlfr.store.db import open_store
from openlfr.store.models import Alert, Camera, Deployment, User, Watchlist


@contextmanager
def _database(server_url: str | None) -> Iterator[str]:
    if not server_url:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'metrics.sqlite3'}"
        return
    server = make_url(server_url)
    name = f"openlfr_metrics_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _fill(url: str, deployments: int, cameras: int, alerts: int) -> str:
    """Running deployments as runners leave them; returns an officer's session token."""
    store = open_store(url)
    now = datetime.now(UTC)
    with store() as session:
        create_user(session, "officer", "authorising-officer", "a long enough password")
        session.add(Watchlist(name="demo", description=""))
        for i in range(deployments):
            d = Deployment(
                name=f"Operation {i}",
                location="somewhere",
                reason="benchmark",
                watchlist_name="demo",
                starts_at=now,
                ends_at=now + timedelta(hours=4),
                created_by="planner",
                status="running",
                started_at=now,
                authorised_by="inspector",
                authorised_at=now,
            )
            for j in range(cameras):
                camera = Camera(name=f"camera-{j}", source="rtsp://10.0.0.1/stream")
                camera.state, camera.fps, camera.last_frame_at = "running", 25.0, now
                counts = CameraCounts(frames=90_000, frames_dropped=900, faces_processed=600)
                counts.searches = 800
                counts.timed(0.0004 * 800, 800)
                _store_counts(camera, counts, CameraCounts())
                camera.drop_rate = 0.01
                d.cameras.append(camera)
            session.add(d)
        session.flush()
        for camera in session.scalars(select(Camera)):
            for k in range(alerts):
                session.add(
                    Alert(
                        id=uuid.uuid4().hex,
                        deployment_id=camera.deployment_id,
                        camera_id=camera.id,
                        track=k,
                        frame=k,
                        time_s=float(k),
                        subject_id=1,
                        subject_name="subject",
                        score=5.0,
                        similarity=0.9,
                        box=[0, 0, 10, 10],
                        latency_s=0.2 + 0.05 * (k % 10),
                        probe_image=b"",
                        reference_image=b"",
                    )
                )
        officer = session.scalar(select(User).where(User.name == "officer"))
        token, _ = open_session(session, officer)
        session.commit()
    return token


def run(args: argparse.Namespace) -> list[dict]:
    results = []
    for deployments in args.deployments:
        with _database(args.database_url) as url:
            token = _fill(url, deployments, args.cameras, args.alerts_per_camera)
            headers = {"Authorization": f"Bearer {token}"}
            row: dict = {
                "deployments": deployments,
                "cameras": deployments * args.cameras,
                "alerts": deployments * args.cameras * args.alerts_per_camera,
                "database": make_url(url).get_backend_name(),
            }
            with TestClient(create_app(open_store(url), poll_alerts=False)) as client:
                for path, key in (("/metrics", "metrics"), ("/api/deployments", "board")):
                    client.get(path, headers=headers)  # warm: the first call imports and plans
                    best = float("inf")
                    for _ in range(args.repeat):
                        started = time.perf_counter()
                        answer = client.get(path, headers=headers)
                        best = min(best, time.perf_counter() - started)
                    assert answer.status_code == 200, answer.text
                    row[f"{key}_ms"] = round(best * 1000, 1)
                    row[f"{key}_kib"] = round(len(answer.content) / 1024, 1)
                    if key == "metrics":
                        lines = answer.text.splitlines()
                        row["series"] = sum(1 for line in lines if line and line[0] != "#")
            results.append(row)
            print(json.dumps(row))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--cameras", type=int, default=4, help="per deployment")
    parser.add_argument("--alerts-per-camera", type=int, default=10)
    parser.add_argument("--database-url", default=os.environ.get("OPENLFR_TEST_POSTGRES_URL"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
