"""Live alerts over Server-Sent Events: an alert reaches a connected client within a second,
whether written by a deployment this server runs or by another process on the same store."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from service_support import (
    LiveServer,
    authorise_for_tests,
    insert_alert,
    plan_deployment,
    read_events,
    service_store,
    token_for,
)
from sqlalchemy import select

from openlfr.api import create_app
from openlfr.api.roles import Role
from openlfr.store.models import Alert, Deployment, SnapshotTemplate


def _listen(url: str, token: str, wanted: int, timeout_s: float) -> tuple[threading.Thread, list]:  # type: ignore[type-arg]
    events: list = []  # type: ignore[type-arg]
    thread = threading.Thread(target=read_events, args=(url, token, wanted, timeout_s, events))
    thread.start()
    time.sleep(0.5)  # connected and subscribed
    return thread, events


def test_alert_written_to_the_store_is_streamed_within_a_second(database_url, astronaut) -> None:  # type: ignore[no-untyped-def]
    store = service_store(database_url)
    scene = plan_deployment(store)
    with LiveServer(create_app(store)) as server:
        thread, events = _listen(server.url, token_for(store, Role.REVIEWER), 1, 10)
        written = time.monotonic()
        alert_id = insert_alert(store, scene, astronaut[:100, :100], astronaut[:100, :100])
        thread.join(timeout=10)
        latency = time.monotonic() - written
    assert [e["alert_id"] for e in events] == [alert_id]
    assert events[0]["camera"] == "north" and events[0]["deployment"] == "Test op"
    assert "probe_image" not in events[0]  # images are fetched, and audited, separately
    assert latency < 1.0


def test_event_stream_refuses_the_wrong_role(database_url) -> None:  # type: ignore[no-untyped-def]
    import httpx

    store = service_store(database_url)
    with LiveServer(create_app(store, poll_alerts=False)) as server:
        headers = {"Authorization": f"Bearer {token_for(store, Role.AUDITOR)}"}
        assert httpx.get(f"{server.url}/api/events", headers=headers).status_code == 403
        assert httpx.get(f"{server.url}/api/events").status_code == 401


@pytest.mark.slow
def test_deployment_started_from_the_api_streams_its_alert(database_url, test_data: Path) -> None:  # type: ignore[no-untyped-def]
    import httpx
    from test_live import _enrol, _frame

    from openlfr.store.watchlists import create_watchlist

    video = test_data / "video" / "intel-head-pose-face-detection-male.mp4"
    store = service_store(database_url)
    with store() as session:
        _enrol(session, create_watchlist(session, "clip"), "walker", _frame(video, 0))
        session.commit()
    with LiveServer(create_app(store, poll_alerts=False)) as server:  # the callback path alone
        officer = {"Authorization": f"Bearer {token_for(store, Role.AUTHORISING_OFFICER)}"}
        body = {
            "name": "Clip",
            "location": "Lab",
            "reason": "test",
            "watchlist": "clip",
            "ends_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
            "cameras": [{"name": "lab", "source": str(video)}],
        }
        made = httpx.post(f"{server.url}/api/deployments", headers=officer, json=body)
        assert made.status_code == 201, made.text
        with store() as session:
            authorise_for_tests(session.get(Deployment, made.json()["id"]))
            session.commit()
        thread, events = _listen(server.url, token_for(store, Role.REVIEWER), 1, 120)
        started = httpx.post(
            f"{server.url}/api/deployments/{made.json()['id']}/start", headers=officer, timeout=60
        )
        assert started.status_code == 202, started.text
        assert started.json()["status"] in ("running", "ended")
        thread.join(timeout=120)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = httpx.get(
                f"{server.url}/api/deployments/{made.json()['id']}", headers=officer
            ).json()
            if status["status"] == "ended":
                break
            time.sleep(0.5)
    assert events and events[0]["subject"] == "walker"
    assert status["status"] == "ended" and status["alerts"] >= 1
    with store() as session:
        assert session.get(Alert, events[0]["alert_id"]) is not None
        assert session.scalar(select(SnapshotTemplate)) is None
        assert session.scalar(select(Deployment)).end_reason == "every camera's source ended"


@pytest.mark.slow
def test_suppressed_face_raises_no_alert_for_that_subject(test_data: Path) -> None:
    from test_live import _enrol, _frame

    from openlfr.live.pipeline import LiveConfig, LivePipeline
    from openlfr.live.sources import open_source
    from openlfr.matching import WatchlistIndex
    from openlfr.store import open_store
    from openlfr.store.watchlists import create_watchlist, load_templates
    from openlfr.vision.models import get_model

    video = test_data / "video" / "intel-head-pose-face-detection-male.mp4"
    model = get_model().name  # _enrol and the pipeline both use the configured model
    store = open_store()
    with store() as session:
        watchlist = create_watchlist(session, "clip")
        _enrol(session, watchlist, "walker", _frame(video, 0))
        session.commit()
        t = load_templates(session, watchlist, model=model)
    index = WatchlistIndex(t.embeddings, t.subject_ids, t.subject_names, model=model)

    def run(suppressed: set[tuple[int, int]]) -> list:  # type: ignore[type-arg]
        pipeline = LivePipeline(index, camera="lab", config=LiveConfig())
        pipeline.suppressed |= suppressed
        events = []
        with open_source(str(video)) as source:
            for frame in source.frames():
                if frame.index >= 31:
                    events.extend(pipeline.process(frame))
        return events

    first = run(set())
    assert [e.subject for e in first if e.kind == "new"] == ["walker"]
    assert run({(first[0].track, first[0].subject_id)}) == []


def test_runner_forwards_new_suppressions_to_their_camera_once(database_url) -> None:  # type: ignore[no-untyped-def]
    import queue

    from openlfr.live.supervisor import forward_suppressions
    from openlfr.store.models import Suppression

    store = service_store(database_url)
    scene = plan_deployment(store, suppress=True)
    queues = {"north": queue.Queue()}
    with store() as session:
        for track, subject in [(3, 1), (4, 2)]:
            session.add(
                Suppression(
                    deployment_id=scene.deployment_id,
                    camera="north",
                    track=track,
                    subject_id=subject,
                    alert_id="a" * 32,
                    created_by="reviewer",
                )
            )
        session.commit()
        last = forward_suppressions(session, scene.deployment_id, 0, queues)
        assert forward_suppressions(session, scene.deployment_id, last, queues) == last
    assert [queues["north"].get_nowait() for _ in range(2)] == [(3, 1), (4, 2)]
    assert queues["north"].empty()


def test_openlfr_serve_publishes_the_api_and_the_console(tmp_path, openlfr_home) -> None:  # type: ignore[no-untyped-def]
    import os
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "openlfr.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=os.environ.copy(), stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json")
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "openlfr serve did not answer"
                time.sleep(0.2)
        assert spec.json()["info"]["title"] == "OpenLFR operator service"
        assert "OpenLFR console" in httpx.get(f"http://127.0.0.1:{port}/").text
        assert httpx.get(f"http://127.0.0.1:{port}/api/alerts").status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_broadcaster_announces_each_alert_version_once_and_stays_bounded() -> None:
    import asyncio

    from openlfr.api.live import Broadcaster

    async def scenario() -> list[dict]:  # type: ignore[type-arg]
        broadcaster = Broadcaster()
        broadcaster.SEEN_LIMIT = 3
        queue = broadcaster.subscribe()
        broadcaster.publish_alert("a", "v1", {"id": "a", "v": 1})
        broadcaster.publish_alert("a", "v1", {"id": "a", "v": 1})  # the poller sees it again
        broadcaster.publish_alert("a", "v2", {"id": "a", "v": 2})  # adjudicated: news again
        for name in "bcd":
            broadcaster.mark_seen(name, "v1")
        assert list(broadcaster._seen) == ["b", "c", "d"]  # "a", the oldest, forgotten
        await asyncio.sleep(0.05)
        return [queue.get_nowait() for _ in range(queue.qsize())]

    assert asyncio.run(scenario()) == [{"id": "a", "v": 1}, {"id": "a", "v": 2}]
