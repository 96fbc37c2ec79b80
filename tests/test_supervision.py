"""Supervision of camera workers (issue 15, findings 1-3), with real processes and real signals:
no worker outlives its deployment, a crash is restarted and recorded as a crash, a clean end
stays clean, a deployment whose camera keeps crashing still ends at its hard end, and SIGTERM
to ``openlfr serve`` ends its event streams and its deployments within seconds."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from service_support import authorise_for_tests, enrol_directly, jpeg, token_for, wait_until
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

import openlfr.live.deployment as deployment_module
from openlfr.api.roles import Role
from openlfr.cli import app
from openlfr.live.deployment import create_deployment, recover_crashed, run_deployment
from openlfr.live.supervisor import camera_record
from openlfr.live.worker import WorkerJob, crash_cause
from openlfr.store import Deployment, SnapshotTemplate, open_store
from openlfr.store.watchlists import create_watchlist
from openlfr.vision.models import get_model

LONG_CLIP = "intel-backs-to-camera-no-faces.mp4"  # 139 s: outlasts every test
SHORT_CLIP = "intel-head-pose-face-detection-female.mp4"  # a few seconds
WAIT_S = 60  # generous: workers load their models on a loaded 2-core machine
RUNNING = {"running", "lagging"}  # lagging runs too: a loaded machine drops frames


@pytest.fixture
def video(test_data: Path) -> Path:
    return test_data / "video"


_until = functools.partial(wait_until, timeout_s=WAIT_S)


def _workers(pid: int) -> list[psutil.Process]:
    """The camera workers (multiprocessing spawn children) of process ``pid``."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()) and _alive(child.pid):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _plan(store: sessionmaker[Session], source: Path, lasts: timedelta) -> int:
    """An authorised deployment starting now, one camera on ``source``, one subject."""
    model = get_model().name
    with store() as session:
        create_watchlist(session, "demo")
        session.commit()
    enrol_directly(store, "alice", jpeg(np.full((40, 40, 3), 128, np.uint8)), model=model)
    with store() as session:
        now = datetime.now(UTC)
        d = create_deployment(
            session,
            name="Supervised",
            location="Test square",
            reason="test",
            watchlist="demo",
            starts_at=now,
            ends_at=now + lasts,
            cameras={"north": str(source)},
            created_by="officer",
            model=model,
        )
        authorise_for_tests(d)
        session.commit()
        return d.id


def _camera(store: sessionmaker[Session], deployment_id: int) -> dict:
    with store() as session:
        d = session.get(Deployment, deployment_id)
        return {**camera_record(d.cameras[0], d.status), "deployment": d.status}


def _snapshot_rows(store: sessionmaker[Session]) -> int:
    with store() as session:
        return session.scalar(select(func.count()).select_from(SnapshotTemplate))


def _runner(deployment_id: int, log: Path) -> subprocess.Popen:
    """``openlfr deployment run ID`` as its own process (the environment names the store)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "openlfr.cli", "deployment", "run", str(deployment_id)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


def test_a_worker_dies_with_its_runner_killed_outright(
    database_url: str, video: Path, tmp_path: Path
) -> None:
    """Finding 1: SIGKILL of 'deployment run' used to leave its camera worker reading the camera
    with the frozen watchlist in memory, as a child of init."""
    store = open_store(database_url)
    deployment_id = _plan(store, video / LONG_CLIP, timedelta(hours=1))
    runner = _runner(deployment_id, tmp_path / "runner.log")
    try:
        _until(lambda: _camera(store, deployment_id)["state"] in RUNNING, "the camera to run")
        [worker] = _workers(runner.pid)
        killed = time.monotonic()
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        _until(lambda: not _alive(worker.pid), "the orphaned worker to die", timeout_s=10)
        print(f"measured: worker gone {time.monotonic() - killed:.2f} s after the runner's kill")
    finally:
        _stop(runner)
        print((tmp_path / "runner.log").read_text(errors="replace"))
    with store() as session:  # the next deployment command destroys what the runner left
        assert recover_crashed(session) == [deployment_id]
    assert _snapshot_rows(store) == 0


def test_sigterm_to_the_runner_stops_the_deployment_and_destroys_its_snapshot(
    database_url: str, video: Path, tmp_path: Path
) -> None:
    """What a service manager sends first: a stop, recorded as such, not a crash."""
    store = open_store(database_url)
    deployment_id = _plan(store, video / LONG_CLIP, timedelta(hours=1))
    runner = _runner(deployment_id, tmp_path / "runner.log")
    try:
        _until(lambda: _camera(store, deployment_id)["state"] in RUNNING, "the camera to run")
        [worker] = _workers(runner.pid)
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == 0
        assert not _alive(worker.pid)
    finally:
        _stop(runner)
        print((tmp_path / "runner.log").read_text(errors="replace"))
    camera = _camera(store, deployment_id)
    assert camera["deployment"] == "ended" and camera["crashes"] == 0
    with store() as session:
        assert session.get(Deployment, deployment_id).end_reason == (
            "stopped: the runner received SIGTERM"
        )
    assert _snapshot_rows(store) == 0


def test_a_killed_worker_is_restarted_and_shown_as_a_crash(
    store: sessionmaker[Session], client, video: Path, tmp_path: Path
) -> None:
    """Finding 2: a SIGKILLed worker used to end the deployment as 'every camera's source
    ended' with no error; now it is restarted, and the board and 'deployment show' say so."""
    deployment_id = _plan(store, video / LONG_CLIP, timedelta(hours=1))
    runner = _runner(deployment_id, tmp_path / "runner.log")
    try:
        _until(lambda: _camera(store, deployment_id)["state"] in RUNNING, "the camera to run")
        [first] = _workers(runner.pid)
        killed = time.monotonic()
        first.send_signal(signal.SIGKILL)
        restarted = _until(
            lambda: (c := _camera(store, deployment_id))["state"] in RUNNING and c["restarts"],
            "the worker to be restarted",
        )
        assert restarted == 1
        print(f"measured: camera running again {time.monotonic() - killed:.1f} s after the kill")
        [second] = _workers(runner.pid)
        assert second.pid != first.pid
        board = client.get(
            f"/api/deployments/{deployment_id}",
            headers={"Authorization": f"Bearer {token_for(store, Role.REVIEWER)}"},
        ).json()
        [camera] = board["cameras"]
        assert board["status"] == "running" and camera["state"] in RUNNING
        assert camera["crashes"] == 1 and camera["restarts"] == 1
        assert camera["last_crash"] == "killed by signal 9 (SIGKILL)"
        assert camera["last_crash_at"] and camera["error"] is None
        cli = CliRunner()
        assert cli.invoke(app, ["deployment", "stop", str(deployment_id)]).exit_code == 0
        assert runner.wait(timeout=WAIT_S) == 0
        assert not _alive(second.pid)
    finally:
        _stop(runner)
        print((tmp_path / "runner.log").read_text(errors="replace"))
    shown = cli.invoke(app, ["deployment", "show", str(deployment_id), "--json"])
    record = json.loads(shown.stdout)
    assert record["end_reason"] == "stopped by an operator"
    [camera] = record["cameras"]
    assert camera["state"] == "ended" and camera["error"] is None
    assert (camera["crashes"], camera["restarts"]) == (1, 1)
    assert camera["last_crash"] == "killed by signal 9 (SIGKILL)"
    # the file resumed where a live picture would be: the gap's frames count as dropped
    assert camera["down_s"] > 0 and camera["frames_dropped"] > 0
    assert _snapshot_rows(store) == 0


def test_a_camera_that_keeps_crashing_is_restarted_until_the_hard_end(
    database_url: str, video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every worker of this camera raises as it builds its index (the job is given one more
    subject id than templates): each crash is restarted after a growing delay, and the
    deployment ends at its hard end, not before and not long after, with no worker left."""
    store = open_store(database_url)
    deployment_id = _plan(store, video / LONG_CLIP, timedelta(seconds=20))

    def broken_job(*args: object, **kwargs: object) -> WorkerJob:  # pickled into each worker
        job = WorkerJob(*args, **kwargs)  # type: ignore[arg-type]
        job.subject_ids = np.append(job.subject_ids, job.subject_ids.max() + 1)
        return job

    monkeypatch.setattr(deployment_module, "WorkerJob", broken_job)
    before = set(psutil.Process().children(recursive=True))
    ended = run_deployment(store, deployment_id)
    assert ended.end_reason == "time limit reached"
    late = ended.ended_at.replace(tzinfo=UTC) - ended.ends_at.replace(tzinfo=UTC)
    assert late < timedelta(seconds=10)
    camera = _camera(store, deployment_id)
    assert camera["crashes"] >= 2 and camera["restarts"] >= 1
    cause = camera["last_crash"]  # numpy's exception, with the line that raised it
    assert cause.startswith("IndexError: ") and "index.py:" in cause
    assert camera["state"] == "ended" and camera["error"] is None
    assert _snapshot_rows(store) == 0
    left = [p for p in psutil.Process().children(recursive=True) if p not in before]
    assert not [p for p in left if _alive(p.pid) and "spawn_main" in " ".join(p.cmdline())]


def test_every_source_ending_is_still_a_clean_end(database_url: str, video: Path) -> None:
    store = open_store(database_url)
    deployment_id = _plan(store, video / SHORT_CLIP, timedelta(hours=1))
    ended = run_deployment(store, deployment_id)
    assert ended.end_reason == "every camera's source ended"
    camera = _camera(store, deployment_id)
    assert (camera["state"], camera["crashes"], camera["restarts"]) == ("ended", 0, 0)
    assert camera["error"] is None and camera["last_crash"] is None and camera["frames"] > 0


def test_a_crash_cause_names_no_subject() -> None:
    names = {1: "Alan Smithee", 2: "Jo"}
    try:
        raise KeyError("Alan Smithee (Jo) not in the index")
    except KeyError as exc:
        cause = crash_cause(exc, names.values())
    assert "Alan" not in cause and "Jo)" not in cause
    assert cause.startswith("KeyError: '[subject] ([subject]) not in the index'")
    assert "test_supervision.py:" in cause


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sigterm_to_serve_ends_streams_and_deployments_at_once(
    store: sessionmaker[Session], video: Path, tmp_path: Path
) -> None:
    """Finding 3: SIGTERM to 'openlfr serve' with a client on /api/events used to wait for the
    client (49 s), and the deployment it ran went on until its file ended."""
    deployment_id = _plan(store, video / LONG_CLIP, timedelta(hours=1))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "openlfr.cli", "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    stream: dict[str, object] = {}
    try:

        def answers() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"the server exited ({server.returncode}): see its log")
            try:
                return httpx.get(f"{url}/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _until(answers, "the server to answer")
        officer = {"Authorization": f"Bearer {token_for(store, Role.AUTHORISING_OFFICER)}"}
        started = httpx.post(
            f"{url}/api/deployments/{deployment_id}/start", headers=officer, timeout=WAIT_S
        )
        assert started.status_code == 202, started.text
        _until(lambda: _camera(store, deployment_id)["state"] in RUNNING, "the camera to run")
        [worker] = _workers(server.pid)

        def listen() -> None:
            reviewer = {"Authorization": f"Bearer {token_for(store, Role.REVIEWER)}"}
            lines = []
            with (
                httpx.Client(timeout=httpx.Timeout(5, read=120)) as http,
                http.stream("GET", f"{url}/api/events", headers=reviewer) as response,
            ):
                stream["status"] = response.status_code
                for line in response.iter_lines():
                    lines.append(line)
                    if line.startswith(": connected"):
                        stream["connected"] = True
            stream["lines"], stream["ended_at"] = lines, time.monotonic()

        client = threading.Thread(target=listen, daemon=True)
        client.start()
        _until(lambda: stream.get("connected"), "the event stream to open")
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        stopped_in = time.monotonic() - signalled
        client.join(timeout=10)
    finally:
        _stop(server)
        print(log.read_text(errors="replace"))
    print(
        f"measured: server exited {stopped_in:.1f} s after SIGTERM, "
        f"event stream ended after {stream.get('ended_at', float('nan')) - signalled:.1f} s"
    )
    assert stopped_in < 20, f"the server took {stopped_in:.1f} s to stop"
    assert stream["status"] == 200 and "event: shutdown" in stream["lines"]
    assert stream["ended_at"] - signalled < 10
    assert not _alive(worker.pid)
    with store() as session:
        d = session.get(Deployment, deployment_id)
        assert d.status == "ended" and d.end_reason == "stopped: the service shut down"
    assert _snapshot_rows(store) == 0
