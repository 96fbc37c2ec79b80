"""One control room (issue 13, point 5): /metrics for Prometheus, and the board's camera states.

/metrics is read by any signed-in role or the policy's scrape token, parsed here with
prometheus-client's own parser; it counts faces, never names. The board's states (running,
reconnecting, lagging, down) are derived from what the runners write. Two deployments run by two
``openlfr deployment run`` processes against one PostgreSQL, served by one ``openlfr serve``,
both show on the board and in /metrics."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from service_support import (
    authorise_for_tests,
    enrol_directly,
    insert_alert,
    jpeg,
    plan_deployment,
    token_for,
    wait_until,
)
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from openlfr.api.roles import Role
from openlfr.cli import app
from openlfr.live.deployment import create_deployment
from openlfr.live.pipeline import SEARCH_BUCKETS_S, CameraCounts
from openlfr.live.supervisor import (
    DOWN_AFTER_S,
    LAGGING_DROP_SHARE,
    _plus,
    _store_counts,
    camera_record,
    drop_share,
)
from openlfr.store.models import Camera, Deployment
from openlfr.store.watchlists import create_watchlist
from openlfr.vision.models import get_model

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SUBJECT = "Zebedee Quartermain"  # must never reach /metrics


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _samples(families: dict, name: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of one family."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in families[name].samples}


# --- the board's states ------------------------------------------------------------------------


def _camera(**values: object) -> Camera:
    row = Camera(id=1, name="north", source="rtsp://cam", frames=100, frames_dropped=0)
    row.faces_processed, row.alerts, row.crashes, row.restarts = 3, 0, 0, 0
    row.state, row.fps, row.last_frame_at = "running", 25.0, NOW - timedelta(seconds=1)
    for name, value in values.items():
        setattr(row, name, value)
    return row


def test_a_camera_dropping_over_a_tenth_of_its_frames_is_lagging() -> None:
    assert camera_record(_camera(drop_rate=0.05), "running", NOW)["state"] == "running"
    lagging = camera_record(_camera(drop_rate=LAGGING_DROP_SHARE + 0.01), "running", NOW)
    assert (lagging["state"], lagging["drop_rate"]) == ("lagging", 0.11)
    # no frame at all for 5 s is reconnecting, whatever it dropped before
    silent = _camera(drop_rate=0.5, last_frame_at=NOW - timedelta(seconds=9))
    assert camera_record(silent, "running", NOW)["state"] == "reconnecting"
    assert camera_record(_camera(drop_rate=0.5), "ended", NOW)["state"] == "ended"


def test_a_camera_waiting_for_a_restart_too_long_is_down() -> None:
    def restarting(last_frame_s: float | None, crashes: int = 2) -> str:
        last = NOW - timedelta(seconds=last_frame_s) if last_frame_s is not None else None
        row = _camera(state="restarting", crashes=crashes, fps=None, last_frame_at=last)
        row.last_crash_at = NOW - timedelta(seconds=1)
        return camera_record(row, "running", NOW)["state"]

    assert restarting(5) == "restarting"  # a blip: back within seconds
    assert restarting(DOWN_AFTER_S + 5) == "down"
    # one that never had a frame: counted from its deployment's start
    never = _camera(state="starting", crashes=3, fps=None, last_frame_at=None)
    never.deployment = Deployment(status="running", started_at=NOW - timedelta(minutes=2))
    assert camera_record(never, "running", NOW)["state"] == "down"
    # a first start is no restart, however long its models take to load
    first = _camera(state="starting", fps=None, last_frame_at=None)
    first.deployment = Deployment(status="running", started_at=NOW - timedelta(minutes=2))
    assert camera_record(first, "running", NOW)["state"] == "starting"
    # the cluster controller's 'down' (its node lost) shows as it is, until the end
    assert camera_record(_camera(state="down", node="w2"), "running", NOW)["state"] == "down"
    assert camera_record(_camera(state="down"), "ended", NOW)["state"] == "ended"
    assert camera_record(_camera(state="down", node="w2"), "running", NOW)["node"] == "w2"


def test_drop_share_and_search_time_in_the_counts() -> None:
    assert drop_share(deque([(0, 0), (100, 5), (200, 30)])) == pytest.approx(0.15)
    assert drop_share(deque([(200, 30), (200, 30)])) is None  # nothing delivered
    counts = CameraCounts(searches=3)
    counts.timed(0.0003, 1)  # one probe in 0.3 ms
    counts.timed(0.004, 2)  # two probes in one batch: 2 ms each
    counts.timed(5.0, 1)  # beyond every bound
    assert counts.search_hist[1] == 1 and counts.search_hist[3] == 2
    assert counts.search_hist[-1] == 1 and counts.search_s == pytest.approx(5.0043)
    total = _plus(counts, counts)  # a restarted worker's counts add to the earlier ones'
    assert total.search_hist[3] == 4 and total.searches == 6
    row = _camera()
    _store_counts(row, counts, CameraCounts())
    stored = json.loads(row.search_hist)
    assert stored["le"] == list(SEARCH_BUCKETS_S) and sum(stored["counts"]) == 4
    assert (row.searches, row.search_s) == (3, pytest.approx(5.0043))


# --- /metrics ----------------------------------------------------------------------------------


def _running(store: sessionmaker[Session], scene) -> None:  # type: ignore[no-untyped-def]
    """As a runner on some host writes it: running, a rate, counts and a search histogram."""
    with store() as session:
        d = session.get(Deployment, scene.deployment_id)
        d.status, d.started_at = "running", datetime.now(UTC)
        camera = d.cameras[0]
        camera.state, camera.fps, camera.last_frame_at = "running", 24.5, datetime.now(UTC)
        camera.frames, camera.frames_dropped, camera.drop_rate = 480, 120, 0.2
        counts = CameraCounts(frames=480, frames_dropped=120, faces_processed=4, searches=5)
        counts.timed(0.0004, 5)
        counts.alerts = 1
        _store_counts(camera, counts, CameraCounts())
        session.commit()


def test_metrics_for_every_role_and_the_scrape_token_and_never_a_name(
    client: TestClient, store: sessionmaker[Session], openlfr_home: Path
) -> None:
    scene = plan_deployment(store)
    _running(store, scene)
    grey = np.full((40, 40, 3), 128, np.uint8)
    insert_alert(store, scene, grey, grey, subject=SUBJECT)  # latency 0.3 s

    assert client.get("/metrics").status_code == 401
    forged = client.get("/metrics", headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401
    for role in Role:
        shown = client.get(
            "/metrics", headers={"Authorization": f"Bearer {token_for(store, role)}"}
        )
        assert shown.status_code == 200, role
    token = "a-scraper's-long-random-token"
    scrape = {"Authorization": f"Bearer {token}"}
    assert client.get("/metrics", headers=scrape).status_code == 401  # not set in the policy
    digest = hashlib.sha256(token.encode()).hexdigest()
    policy = openlfr_home / "policy.toml"
    policy.write_text(policy.read_text() + f'\n[metrics]\nscrape_token_sha256 = "{digest}"\n')
    scraped = client.get("/metrics", headers=scrape)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert scraped.headers["cache-control"] == "no-store"
    assert SUBJECT.split()[0] not in scraped.text and "rtsp" not in scraped.text

    families = _families(scraped.text)
    camera = (("camera", "north"), ("deployment", str(scene.deployment_id)))
    values = {
        name: _samples(families, name)[(name + suffix, camera)]
        for name, suffix in [
            ("openlfr_camera_fps", ""),
            ("openlfr_camera_frames", "_total"),
            ("openlfr_camera_frames_dropped", "_total"),
            ("openlfr_camera_faces_processed", "_total"),
            ("openlfr_camera_alerts", "_total"),
            ("openlfr_camera_drop_ratio", ""),
        ]
    }
    assert values == {
        "openlfr_camera_fps": 24.5,
        "openlfr_camera_frames": 480,
        "openlfr_camera_frames_dropped": 120,
        "openlfr_camera_faces_processed": 4,
        "openlfr_camera_alerts": 1,
        "openlfr_camera_drop_ratio": 0.2,
    }
    states = _samples(families, "openlfr_camera_state")
    assert [dict(k[1])["state"] for k, v in states.items() if v == 1] == ["lagging"]
    search = _samples(families, "openlfr_camera_search_seconds")
    assert search[("openlfr_camera_search_seconds_count", camera)] == 5
    assert search[("openlfr_camera_search_seconds_bucket", (*camera, ("le", "0.0005")))] == 5
    latency = _samples(families, "openlfr_camera_alert_latency_seconds")
    assert latency[("openlfr_camera_alert_latency_seconds_bucket", (*camera, ("le", "0.25")))] == 0
    assert latency[("openlfr_camera_alert_latency_seconds_bucket", (*camera, ("le", "0.5")))] == 1
    assert latency[("openlfr_camera_alert_latency_seconds_sum", camera)] == pytest.approx(0.3)
    pending = _samples(families, "openlfr_deployment_alerts_pending")
    assert list(pending.values()) == [1]
    # OpenMetrics for a scraper that asks for it
    asked = client.get("/metrics", headers={**scrape, "Accept": "application/openmetrics-text"})
    assert asked.headers["content-type"].startswith("application/openmetrics-text")
    assert asked.text.rstrip().endswith("# EOF")


def test_deployment_show_and_the_scrape_token_command(
    store: sessionmaker[Session], tmp_path: Path, openlfr_home: Path
) -> None:
    scene = plan_deployment(store)
    _running(store, scene)
    with store() as session:
        session.get(Deployment, scene.deployment_id).cameras[0].node = "camera-host-2"
        session.commit()
    shown = CliRunner().invoke(app, ["deployment", "show", str(scene.deployment_id), "--json"])
    assert shown.exit_code == 0, shown.output
    [camera] = json.loads(shown.output)["cameras"]
    assert (camera["state"], camera["drop_rate"], camera["node"]) == (
        "lagging",
        0.2,
        "camera-host-2",
    )

    token_file = tmp_path / "scrape.token"
    made = CliRunner().invoke(app, ["scrape-token", str(token_file)])
    assert made.exit_code == 0, made.output
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text()
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert token not in made.output and f'scrape_token_sha256 = "{digest}"' in made.output
    again = CliRunner().invoke(app, ["scrape-token", str(token_file)])  # never overwritten
    assert again.exit_code != 0 and token_file.read_text() == token


# --- several deployments, several runners, one store, one service ------------------------------


def _plan_two(store: sessionmaker[Session], sources: list[Path]) -> list[int]:
    """Two authorised deployments starting now, one camera each (on ``sources``), on one
    watchlist of one."""
    model = get_model().name
    with store() as session:
        create_watchlist(session, "demo")
        session.commit()
    enrol_directly(store, SUBJECT, jpeg(np.full((40, 40, 3), 128, np.uint8)), model=model)
    ids = []
    with store() as session:
        now = datetime.now(UTC)
        names = (("East gate", "east"), ("West gate", "west"))
        for (name, camera), source in zip(names, sources, strict=True):
            d = create_deployment(
                session,
                name=name,
                location="Test square",
                reason="test",
                watchlist="demo",
                starts_at=now,
                ends_at=now + timedelta(hours=1),
                cameras={camera: str(source)},
                created_by="officer",
                model=model,
            )
            authorise_for_tests(d)
            session.flush()
            ids.append(d.id)
        session.commit()
    return ids


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen, Path]]]:
    """Processes a test starts (with their logs), killed and their logs printed at its end."""
    started: list[tuple[subprocess.Popen, Path]] = []
    yield started
    for process, _ in started:
        if process.poll() is None:
            process.kill()
    for process, log in started:
        process.wait(timeout=30)
        print(f"--- {' '.join(process.args[3:])}\n{log.read_text(errors='replace')}")


def _start(processes: list, tmp_path: Path, *args: str) -> subprocess.Popen:  # type: ignore[type-arg]
    log = tmp_path / f"{'-'.join(args)}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "openlfr.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    processes.append((process, log))
    return process


def test_one_service_shows_two_deployments_run_by_two_runners_on_one_postgresql(
    store: sessionmaker[Session],
    db_backend: str,
    test_data: Path,
    tmp_path: Path,
    processes: list,  # type: ignore[type-arg]
) -> None:
    if db_backend != "postgresql":
        pytest.skip("several runners and a service share one store on PostgreSQL")
    # east: 3 s of faces (none on the list), searched, then its deployment ends; west: 139 s
    # without faces, running throughout
    video = test_data / "video"
    ids = _plan_two(
        store, [video / "openmpf-indoor-group.mp4", video / "intel-backs-to-camera-no-faces.mp4"]
    )
    port = _free_port()
    server = _start(processes, tmp_path, "serve", "--port", str(port))
    for deployment_id in ids:  # each as if on a camera host of its own
        _start(processes, tmp_path, "deployment", "run", str(deployment_id))
    url = f"http://127.0.0.1:{port}"
    officer = {"Authorization": f"Bearer {token_for(store, Role.AUTHORISING_OFFICER)}"}

    def board() -> dict[int, dict] | None:
        if server.poll() is not None:
            raise AssertionError(f"the server exited ({server.returncode}): see its log")
        try:
            answer = httpx.get(f"{url}/api/deployments", headers=officer, timeout=5)
        except httpx.HTTPError:
            return None
        shown = {d["id"]: {**d["cameras"][0], "status": d["status"]} for d in answer.json()}
        east, west = shown.get(ids[0], {}), shown.get(ids[1], {})
        done = east.get("status") == "ended" and east["state"] == "ended"
        running = west.get("state") in {"running", "lagging"} and west["frames"] > 0
        return shown if done and running else None

    shown = wait_until(board, "east to end and west to run, on the board", timeout_s=150)
    assert {shown[i]["name"] for i in ids} == {"east", "west"}  # type: ignore[index]
    assert shown[ids[0]]["faces_processed"] > 0  # type: ignore[index]
    with store() as session:
        scene_camera = session.get(Deployment, ids[0]).cameras[0].id
    grey = np.full((40, 40, 3), 128, np.uint8)
    from service_support import Scene

    insert_alert(store, Scene(ids[0], scene_camera), grey, grey, subject=SUBJECT)
    scraped = httpx.get(f"{url}/metrics", headers=officer, timeout=10)
    assert scraped.status_code == 200
    assert SUBJECT.split()[0] not in scraped.text and SUBJECT.split()[1] not in scraped.text
    families = _families(scraped.text)
    frames = {
        dict(labels)["camera"]: value
        for (_, labels), value in _samples(families, "openlfr_camera_frames").items()
    }
    assert set(frames) == {"east", "west"} and min(frames.values()) > 0
    names = {
        dict(labels)["name"]
        for (_, labels), _ in _samples(families, "openlfr_deployment_info").items()
    }
    assert names == {"East gate", "West gate"}
    latency = _samples(families, "openlfr_camera_alert_latency_seconds")
    counts = {
        dict(labels)["camera"]: value
        for (name, labels), value in latency.items()
        if name.endswith("_count")
    }
    assert counts == {"east": 1, "west": 0}
    search = _samples(families, "openlfr_camera_search_seconds")
    searched = {
        dict(labels)["camera"]: value
        for (name, labels), value in search.items()
        if name.endswith("_count")
    }
    assert searched["east"] > 0 and searched["west"] == 0  # the east runner timed its searches
    east = (("camera", "east"), ("deployment", str(ids[0])))
    spent = search[("openlfr_camera_search_seconds_sum", east)]
    each_ms = 1000 * spent / searched["east"]
    west = (("camera", "west"), ("deployment", str(ids[1])))
    drops = _samples(families, "openlfr_camera_drop_ratio").get(("openlfr_camera_drop_ratio", west))
    print(
        f"measured: east {searched['east']:.0f} searches, {each_ms:.3f} ms each; west drops {drops}"
    )
    info = _samples(families, "openlfr_deployment_info")
    assert {dict(labels)["status"] for (_, labels) in info} == {"ended", "running"}
    stop = httpx.post(f"{url}/api/deployments/{ids[1]}/stop", headers=officer, timeout=10)
    assert stop.status_code == 202, stop.text
    for process, _ in processes[1:]:  # both runners end cleanly, their snapshots destroyed
        assert process.wait(timeout=60) == 0
