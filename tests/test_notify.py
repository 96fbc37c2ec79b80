"""Alerts pushed out (issue 14, point 2), against real receivers on loopback: an HTTP server in
a thread for the webhook (the signature verifies, 500s are retried, a 4xx is not, a receiver
that hangs costs the pipeline nothing), Debian's mosquitto for MQTT (a paho subscriber gets the
alert at QoS 1, not retained; a broker that comes up late still gets it). Configuration is
audited with its endpoint and never its secret, a probe image goes out only where the policy
allows it, and each delivered message is audited."""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
import pytest
from service_support import insert_alert, plan_deployment, wait_until
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from openlfr.cli import app
from openlfr.errors import PolicyError
from openlfr.live.pipeline import AlertEvent
from openlfr.notify import Dispatcher, Message, PushConfigError
from openlfr.notify.mqtt import MqttSink
from openlfr.notify.mqtt import check_url as mqtt_url
from openlfr.notify.pushes import alert_body, alert_pusher, configure_pushes
from openlfr.notify.webhook import WebhookSink, verify, webhook_secret
from openlfr.notify.webhook import check_url as webhook_url
from openlfr.store.db import open_store
from openlfr.store.models import AlertPush, AuditEntry, Deployment
from openlfr.store.watchlists import create_watchlist

SECRET = "s3cret-for-tests-only-0123456789abcdef"
WAIT_S = 20.0  # generous: a loaded 2-core machine


_until = functools.partial(wait_until, timeout_s=WAIT_S)


def _event(
    alert_id: str = "a1b2c3", kind: str = "new", subject: str = "Alice Example"
) -> AlertEvent:
    return AlertEvent(
        alert_id=alert_id,
        kind=kind,
        camera="north",
        frame=12,
        time_s=0.5,
        track=3,
        subject=subject,
        subject_id=1,
        score=0.71234,
        similarity=0.71234,
        box=[1, 2, 30, 40],
        probe_jpeg=b"\xff\xd8probe-bytes\xff\xd9",
        latency_s=0.2,
    )


def _message(alert_id: str = "a1b2c3") -> Message:
    body = alert_body(_event(alert_id), 7, "Test op", probe_image=False, at=_now())
    return Message(alert_id, "new", body)


def _now() -> datetime:
    return datetime.now(UTC)


# --- a webhook receiver: http.server in a thread -----------------------------------------------


@dataclass
class Receiver:
    """Answers each POST with the next status of ``script`` (then 200), or hangs while
    ``hang`` is set; keeps what it was sent."""

    script: list[int] = field(default_factory=list)
    hang: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                state.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = state.script.pop(0) if state.script else 200
            if state.hang.is_set():
                state.released.wait(60)  # holds the connection open, answering nothing
                return
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/lfr?token=abc"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.released.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("OPENLFR_WEBHOOK_SECRET", SECRET)
    return SECRET.encode()


def test_webhook_is_signed_over_timestamp_and_body_and_names_no_one(
    receiver: Receiver, secret: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENLFR_PUBLIC_URL", "https://lfr.example.police.uk/")
    dispatcher = Dispatcher(WebhookSink(receiver.url, secret))
    body = alert_body(_event(), 7, "Test op", probe_image=False, at=_now())
    dispatcher.submit(Message("a1b2c3", "new", body))
    _until(lambda: receiver.requests, "the webhook's POST")
    stats = dispatcher.close()
    headers, received = receiver.requests[0]
    assert received == body
    assert verify(secret, headers, received)
    assert headers["x-openlfr-signature"].startswith("sha256=")
    assert headers["x-openlfr-event"] == "new" and headers["content-type"] == "application/json"
    # a changed body, another secret, or a replay after the tolerance all fail
    assert not verify(secret, headers, received.replace(b"0.7123", b"0.9999"))
    assert not verify(b"another-secret-of-some-length", headers, received)
    stamp = int(headers["x-openlfr-timestamp"])
    moved = {**headers, "x-openlfr-timestamp": str(stamp + 1)}  # the timestamp is signed too
    assert not verify(secret, moved, received, now=stamp)
    later = stamp + 301
    assert not verify(secret, headers, received, now=later)
    data = json.loads(received)
    assert data == {
        "type": "new",
        "id": "a1b2c3",
        "deployment_id": 7,
        "deployment": "Test op",
        "camera": "north",
        "time": data["time"],
        "score": 0.7123,
        "url": "https://lfr.example.police.uk/#alert=a1b2c3",
        "has_probe_image": False,
    }
    assert b"Alice" not in received and b"probe-bytes" not in received
    assert stats.sent == 1 and stats.failed == stats.dropped == 0


def test_webhook_retries_500s_with_backoff_and_gives_up_on_a_4xx(
    receiver: Receiver, secret: bytes
) -> None:
    receiver.script = [500, 503, 200]
    dispatcher = Dispatcher(WebhookSink(receiver.url, secret), backoff_s=0.2)
    dispatcher.submit(_message("retried"))
    _until(lambda: dispatcher.stats.sent, "delivery after two 5xx")
    assert len(receiver.requests) == 3
    deliveries = {h["x-openlfr-delivery"] for h, _ in receiver.requests}
    assert len(deliveries) == 1  # one message, three attempts: a receiver can drop duplicates
    assert all(verify(secret, h, b) for h, b in receiver.requests)  # each attempt re-signed
    assert dispatcher.stats.retries == 2

    receiver.script = [400]
    dispatcher.submit(_message("refused"))
    _until(lambda: dispatcher.stats.failed, "the refusal to be counted")
    time.sleep(0)  # nothing to wait for: a refusal is final
    assert len(receiver.requests) == 4  # not retried
    stats = dispatcher.close()
    assert (stats.sent, stats.retries, stats.failed, stats.dropped) == (1, 2, 1, 0)


def test_a_hanging_receiver_does_not_slow_the_pipeline(receiver: Receiver, secret: bytes) -> None:
    """While the receiver holds every request open, handing an alert over costs microseconds:
    the queue takes what it can, the rest is counted dropped, and the end of the deployment
    waits no longer than its grace period."""
    receiver.hang.set()
    dispatcher = Dispatcher(WebhookSink(receiver.url, secret, timeout_s=30), queue_size=10)
    dispatcher.submit(_message("first"))
    _until(lambda: receiver.requests, "the first request to hang")
    costs = []
    for i in range(2000):
        started = time.perf_counter()
        dispatcher.submit(_message(f"alert-{i}"))
        costs.append(time.perf_counter() - started)
    costs_ms = np.array(costs) * 1000
    print(
        f"submit while the receiver hangs: median {np.median(costs_ms) * 1000:.1f} us, "
        f"p99 {np.percentile(costs_ms, 99) * 1000:.1f} us, max {costs_ms.max():.2f} ms"
    )
    assert np.median(costs_ms) < 1.0 and costs_ms.sum() < 1000  # no wait on the receiver
    stats = dispatcher.stats
    assert stats.dropped == 2000 - 10 and stats.queued == 11 and stats.sent == 0
    started = time.monotonic()
    stats = dispatcher.close(grace_s=1.0)
    assert time.monotonic() - started < 5  # the hung request is abandoned, not waited for
    assert stats.dropped == 2000 - 10 + 10 and stats.sent == 0
    assert len(receiver.requests) == 1  # nothing else got through while it hung


def test_a_dead_receiver_is_retried_then_given_up(secret: bytes) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dispatcher = Dispatcher(
        WebhookSink(f"http://127.0.0.1:{port}/x", secret), attempts=3, backoff_s=0.05
    )
    started = time.perf_counter()
    dispatcher.submit(_message())
    assert time.perf_counter() - started < 0.05
    _until(lambda: dispatcher.stats.failed, "the dead receiver to be given up")
    stats = dispatcher.close()
    assert (stats.sent, stats.retries, stats.failed) == (0, 2, 1)


def test_the_webhook_secret_is_required_and_kept_private(
    monkeypatch: pytest.MonkeyPatch, openlfr_home: Path
) -> None:
    monkeypatch.delenv("OPENLFR_WEBHOOK_SECRET", raising=False)
    with pytest.raises(PushConfigError, match="no secret is set"):
        webhook_secret()
    openlfr_home.mkdir(parents=True, exist_ok=True)
    path = openlfr_home / "webhook-secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o644)
    with pytest.raises(PushConfigError, match="chmod 600"):
        webhook_secret()
    path.chmod(0o600)
    assert webhook_secret() == SECRET.encode()
    monkeypatch.setenv("OPENLFR_WEBHOOK_SECRET", "short")
    with pytest.raises(PushConfigError, match="too short"):
        webhook_secret()


@pytest.mark.parametrize(
    ("check", "url", "problem"),
    [
        (webhook_url, "ftp://example.org/x", "http:// or https://"),
        (webhook_url, "https://user:pw@example.org/x", "no credentials"),
        (webhook_url, "https://example.org:99999/x", "not a usable"),
        (webhook_url, "https://example.org/a b", "no spaces"),
        (webhook_url, "http://[::1/x", "not a usable"),
        (mqtt_url, "http://broker.example", "mqtt://"),
        (mqtt_url, "mqtt://u:p@broker.example", "OPENLFR_MQTT_PASSWORD"),
        (mqtt_url, "mqtt://broker.example/some/topic", "openlfr/<deployment id>/alerts"),
    ],
)
def test_bad_endpoints_are_refused_clearly(
    check: Callable[[str], str], url: str, problem: str
) -> None:
    with pytest.raises(PushConfigError, match=problem):
        check(url)


@pytest.fixture
def store(database_url: str) -> sessionmaker[Session]:
    """The store without accounts (argon2 hashing one per role is slow); the API test adds
    the one it logs in with."""
    return open_store(database_url)


def _allow_probe_images(home: Path) -> None:
    """The force's policy lets pushed alerts carry the probe crop (the rest kept as it is)."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "policy.toml").open("a") as policy:
        policy.write("\n[push]\nallow_probe_image = true\n")


# --- configured per deployment, audited, run beside it -----------------------------------------


def test_configuration_is_audited_without_secret_and_probe_images_need_the_policy(
    store: sessionmaker[Session],
    secret: bytes,
    monkeypatch: pytest.MonkeyPatch,
    openlfr_home: Path,
) -> None:
    scene = plan_deployment(store)
    with store() as session:
        d = session.get(Deployment, scene.deployment_id)
        with pytest.raises(PolicyError, match="allow_probe_image"):
            configure_pushes(
                session, d, actor="officer", webhook_url="https://h.example/x", probe_image=True
            )
        monkeypatch.delenv("OPENLFR_WEBHOOK_SECRET")
        with pytest.raises(PushConfigError, match="no secret"):
            configure_pushes(session, d, actor="officer", webhook_url="https://h.example/x")
        monkeypatch.setenv("OPENLFR_WEBHOOK_SECRET", SECRET)
        configure_pushes(
            session,
            d,
            actor="officer",
            webhook_url="https://h.example/x?token=receiver-token",
            mqtt_url="mqtt://broker.example",
        )
        session.commit()
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "alert-push-set")
        ).all()
        assert [(e.actor, e.object) for e in entries] == [
            ("officer", f"deployment:{d.id}:webhook=https://h.example/x?..."),
            ("officer", f"deployment:{d.id}:mqtt=mqtt://broker.example"),
        ]
        everything = " ".join(
            f"{e.object} {e.purpose}" for e in session.scalars(select(AuditEntry))
        )
        assert SECRET not in everything and "receiver-token" not in everything
    # the force's policy allows it, and this deployment asks for it: then it may go
    _allow_probe_images(openlfr_home)
    other = plan_deployment(store)
    with store() as session:
        d = session.get(Deployment, other.deployment_id)
        (push,) = configure_pushes(
            session, d, actor="officer", mqtt_url="mqtt://b.example", probe_image=True
        )
        assert push.probe_image


def test_a_deployment_s_pusher_delivers_audits_each_push_and_keeps_counts(
    store: sessionmaker[Session], receiver: Receiver, secret: bytes, openlfr_home: Path
) -> None:
    _allow_probe_images(openlfr_home)
    scene = plan_deployment(store)
    alert_id = insert_alert(
        store, scene, np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20, 3), np.uint8)
    )
    with store() as session:
        d = session.get(Deployment, scene.deployment_id)
        configure_pushes(session, d, actor="officer", webhook_url=receiver.url, probe_image=True)
        session.commit()
    pusher = alert_pusher(store, scene.deployment_id, backoff_s=0.1)
    assert pusher is not None
    receiver.script = [500]
    event = _event(alert_id)
    pusher.submit(event)
    _until(lambda: len(receiver.requests) == 2, "the retried POST")
    results = pusher.close()
    (stats,) = results.values()
    assert (stats.sent, stats.retries, stats.failed, stats.dropped) == (1, 1, 0, 0)
    data = json.loads(receiver.requests[-1][1])
    assert data["has_probe_image"] and data["deployment"] == "Test op"
    import base64

    assert base64.b64decode(data["probe_image"]) == event.probe_jpeg
    assert b"Alice" not in receiver.requests[-1][1]
    with store() as session:
        push = session.scalars(select(AlertPush)).one()
        assert (push.sent, push.retries, push.failed, push.dropped) == (1, 1, 0, 0)
        (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.action == "alert-push"))
        assert entry.object == f"alert:{alert_id}:webhook"
        assert "probe image included" in entry.purpose and SECRET not in entry.purpose
    assert alert_pusher(store, plan_deployment(store).deployment_id) is None  # none configured


def test_cli_plans_with_pushes_and_shows_them_without_secret(
    store: sessionmaker[Session], secret: bytes
) -> None:
    with store() as session:
        create_watchlist(session, "demo")
        session.commit()
    common = [
        "deployment", "create", "--name", "Pushed", "--location", "Gate 3", "--reason", "test",
        "--watchlist", "demo", "--end", "+2h", "--camera", "north=/dev/null",
    ]  # fmt: skip
    refused = CliRunner().invoke(app, [*common, "--mqtt", "mqtt://b.example", "--push-probe-image"])
    assert refused.exit_code != 0 and "allow_probe_image" in refused.output
    made = CliRunner().invoke(
        app, [*common, "--webhook", "https://hooks.example/lfr", "--mqtt", "mqtt://b.example:1884"]
    )
    assert made.exit_code == 0, made.output
    deployment_id = int(made.stdout.strip().splitlines()[0])
    shown = CliRunner().invoke(app, ["deployment", "show", str(deployment_id), "--json"])
    pushes = json.loads(shown.stdout)["pushes"]
    assert [(p["kind"], p["endpoint"], p["probe_image"]) for p in pushes] == [
        ("webhook", "https://hooks.example/lfr", False),
        ("mqtt", "mqtt://b.example:1884", False),
    ]
    assert SECRET not in shown.stdout


def test_api_plans_with_a_webhook_and_never_shows_a_secret(
    store: sessionmaker[Session], secret: bytes
) -> None:
    from fastapi.testclient import TestClient
    from service_support import PASSWORD, token_for, user_name

    from openlfr.api import create_app
    from openlfr.api.auth import create_user
    from openlfr.api.roles import Role

    with store() as session:
        create_watchlist(session, "demo")
        create_user(
            session, user_name(Role.AUTHORISING_OFFICER), Role.AUTHORISING_OFFICER, PASSWORD
        )
        session.commit()
    headers = {"Authorization": f"Bearer {token_for(store, Role.AUTHORISING_OFFICER)}"}
    with TestClient(create_app(store, poll_alerts=False)) as client:
        body = {
            "name": "Pushed",
            "location": "Gate 3",
            "reason": "test",
            "watchlist": "demo",
            "ends_at": (_now() + timedelta(hours=2)).isoformat(),
            "cameras": [{"name": "north", "source": "/dev/null"}],
            "webhook_url": "https://hooks.example/lfr?token=t0",
        }
        bad = client.post(
            "/api/deployments", headers=headers, json={**body, "webhook_url": "ftp://x"}
        )
        assert bad.status_code == 422 and "http://" in bad.text
        made = client.post("/api/deployments", headers=headers, json=body)
        assert made.status_code == 201, made.text
        (push,) = made.json()["pushes"]
        assert push["kind"] == "webhook" and push["endpoint"] == "https://hooks.example/lfr?..."
        shown = client.get(f"/api/deployments/{made.json()['id']}", headers=headers)
        assert shown.json()["pushes"] == made.json()["pushes"]
        board = client.get("/api/deployments", headers=headers).json()
        assert [d["pushes"] for d in board] == [made.json()["pushes"]]
    with store() as session:
        logged = " ".join(f"{e.object} {e.purpose}" for e in session.scalars(select(AuditEntry)))
    for text in (made.text, shown.text, logged):
        assert SECRET not in text and "token=t0" not in text
    assert "webhook=https://hooks.example/lfr?..." in logged


# --- MQTT against Debian's mosquitto ----------------------------------------------------------


def _mosquitto() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if not found:
        pytest.skip("Debian's mosquitto is not installed (apt-get install -y mosquitto)")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Broker:
    port: int
    start: Callable[[], None]
    stop: Callable[[], None]
    log: Path  # complete once it has stopped (mosquitto buffers its stdout)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """mosquitto on a free loopback port, started when the test calls ``start``."""
    binary, port = _mosquitto(), _free_port()
    conf = tmp_path / "mosquitto.conf"
    log = tmp_path / "mosquitto.log"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "log_dest stdout\nlog_type all\n"
    )
    processes: list[subprocess.Popen] = []

    def start() -> None:
        # its log on stdout, into a file of ours: as root it would write files as 'mosquitto'
        with log.open("ab") as out:
            processes.append(
                subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
            )

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        _until(listening, "mosquitto to listen")

    def stop() -> None:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)

    yield Broker(port, start, stop, log)
    stop()


def _subscriber(port: int, topic: str) -> tuple[paho.Client, list[paho.MQTTMessage]]:
    got: list[paho.MQTTMessage] = []
    subscribed = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-subscriber")
    client.on_connect = lambda c, *_: c.subscribe([(topic, 1), ("openlfr/+/available", 1)])
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, message: got.append(message)
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert subscribed.wait(WAIT_S), "the test subscriber could not subscribe"
    return client, got


def test_mqtt_publishes_the_alert_at_qos_1_unretained(broker: Broker) -> None:
    broker.start()
    subscriber, got = _subscriber(broker.port, "openlfr/+/alerts")
    try:
        dispatcher = Dispatcher(MqttSink(f"mqtt://127.0.0.1:{broker.port}", 7), backoff_s=0.2)
        message = _message("mqtt-alert")
        dispatcher.submit(message)
        _until(lambda: [m for m in got if m.topic == "openlfr/7/alerts"], "the alert on MQTT")
        _until(lambda: [m for m in got if m.payload == b"online"], "openlfr/7/available online")
        stats = dispatcher.close()
        (alert,) = [m for m in got if m.topic == "openlfr/7/alerts"]
        assert alert.payload == message.body and alert.qos == 1 and not alert.retain
        assert stats.sent == 1 and stats.failed == stats.dropped == 0
        _until(lambda: [m for m in got if m.payload == b"offline"], "available offline")
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    # a newcomer to the topic is handed the state (offline), never an old alert
    late, late_got = _subscriber(broker.port, "openlfr/+/alerts")
    try:
        _until(lambda: late_got, "the retained availability")
        time.sleep(0.3)  # give a wrongly retained alert time to arrive as well
        assert [(m.topic, m.payload) for m in late_got] == [("openlfr/7/available", b"offline")]
    finally:
        late.loop_stop()
        late.disconnect()


def test_mqtt_broker_down_at_start_gets_the_alert_once_it_is_up(broker: Broker) -> None:
    dispatcher = Dispatcher(
        MqttSink(f"mqtt://127.0.0.1:{broker.port}", 8), attempts=12, backoff_s=0.25,
        backoff_max_s=1.0,
    )  # fmt: skip
    started = time.perf_counter()
    dispatcher.submit(_message("while-down"))
    assert time.perf_counter() - started < 0.05  # the pipeline does not wait for the broker
    _until(lambda: dispatcher.stats.retries >= 1, "a failed attempt while the broker is down")
    broker.start()
    _until(lambda: dispatcher.stats.sent, "the alert after the broker came up")
    stats = dispatcher.close()
    assert (stats.sent, stats.failed, stats.dropped) == (1, 0, 0)
    # No subscriber can be there before the broker is: the broker's own log says it got the
    # alert, once, at QoS 1 (q1), not retained (r0).
    broker.stop()
    received = [
        line
        for line in broker.log.read_text().splitlines()
        if "Received PUBLISH" in line and "'openlfr/8/alerts'" in line
    ]
    assert len(received) == 1 and "q1, r0" in received[0], received


# --- wired where deployments run: deployment run, the service's runner --------------------------


def _planned_with_webhook(store: sessionmaker[Session], url: str) -> tuple[int, str]:
    """A planned deployment pushing to ``url``, and an alert of it in the store."""
    scene = plan_deployment(store)
    alert_id = insert_alert(
        store, scene, np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20, 3), np.uint8)
    )
    with store() as session:
        d = session.get(Deployment, scene.deployment_id)
        configure_pushes(session, d, actor="officer", webhook_url=url)
        session.commit()
    return scene.deployment_id, alert_id


def _fake_run(alert_id: str):  # type: ignore[no-untyped-def]
    """run_deployment as far as its callers see it: one alert through ``on_alert``, then the
    end (the cameras themselves are tested in test_live and test_supervision)."""

    def run(store, deployment_id, *, on_alert=None, **_: object):  # type: ignore[no-untyped-def]
        on_alert(_event(alert_id))
        with store() as session:
            d = session.get(Deployment, deployment_id)
            d.status, d.end_reason = "ended", "time limit reached"
            session.commit()
            return d

    return run


def test_deployment_run_pushes_each_alert_and_prints_the_counts(
    store: sessionmaker[Session],
    receiver: Receiver,
    secret: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import openlfr.live.deployment as deployment_module

    deployment_id, alert_id = _planned_with_webhook(store, receiver.url)
    monkeypatch.setattr(deployment_module, "run_deployment", _fake_run(alert_id))
    result = CliRunner().invoke(app, ["deployment", "run", str(deployment_id)])
    assert result.exit_code == 0, result.output
    ((headers, body),) = receiver.requests
    assert verify(secret, headers, body) and json.loads(body)["id"] == alert_id
    assert "1 sent, 0 retries, 0 failed, 0 dropped" in result.stderr
    with store() as session:
        assert session.scalars(select(AlertPush)).one().sent == 1


def test_a_run_without_the_webhook_secret_is_refused_before_it_starts(
    store: sessionmaker[Session], receiver: Receiver, secret: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id, _ = _planned_with_webhook(store, receiver.url)
    monkeypatch.delenv("OPENLFR_WEBHOOK_SECRET")
    result = CliRunner().invoke(app, ["deployment", "run", str(deployment_id)])
    assert result.exit_code != 0 and "no secret is set" in result.stderr
    with store() as session:
        assert session.get(Deployment, deployment_id).status == "planned"


def test_the_service_runner_pushes_each_alert(
    store: sessionmaker[Session],
    receiver: Receiver,
    secret: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import openlfr.api.live as live

    deployment_id, alert_id = _planned_with_webhook(store, receiver.url)
    monkeypatch.setattr(live, "run_deployment", _fake_run(alert_id))
    runner = live.DeploymentRunner(store, live.Broadcaster())
    runner.start(deployment_id)
    runner.shutdown()
    ((headers, body),) = receiver.requests
    assert verify(secret, headers, body) and json.loads(body)["id"] == alert_id
    with store() as session:
        assert session.scalars(select(AlertPush)).one().sent == 1


def test_migration_0007_downgrades_and_upgrades(store: sessionmaker[Session]) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from openlfr.store.db import alembic_config

    plan_deployment(store)  # a deployment survives both ways
    engine = store.kw["bind"]
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0006")
        assert "alert_pushes" not in inspect(connection).get_table_names()
        command.upgrade(cfg, "head")
        assert "alert_pushes" in inspect(connection).get_table_names()
    with store() as session:
        assert session.scalars(select(Deployment)).one().name == "Test op"


@pytest.mark.slow
def test_the_console_link_opens_that_alert(store: sessionmaker[Session], db_backend: str) -> None:
    """The link a push carries (``/#alert=<id>``) opens that alert after the reviewer logs in,
    not the head of the queue."""
    if db_backend != "sqlite":
        pytest.skip("a console test: the store behind it is tested on SQLite alone")
    from service_support import PASSWORD, LiveServer, user_name

    from openlfr.api import create_app
    from openlfr.api.auth import create_user
    from openlfr.api.roles import Role

    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = os.environ.get("OPENLFR_CHROMIUM", "/usr/bin/chromium")
    if not shutil.which(chromium):
        pytest.skip(f"no chromium at {chromium} (apt-get install -y chromium)")
    with store() as session:
        create_user(session, user_name(Role.REVIEWER), Role.REVIEWER, PASSWORD)
        session.commit()
    scene = plan_deployment(store)
    grey = np.full((20, 20, 3), 90, np.uint8)
    ids = [insert_alert(store, scene, grey, grey, subject=name) for name in ("amy", "ben", "cal")]
    with (
        LiveServer(create_app(store, poll_alerts=False)) as server,
        sync_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(f"{server.url}/#alert={ids[1]}")
            page.fill("input[name=name]", user_name(Role.REVIEWER))
            page.fill("input[name=password]", PASSWORD)
            page.keyboard.press("Enter")
            title = page.locator("#alert-title")
            title.wait_for(state="visible", timeout=WAIT_S * 1000)
            sync_api.expect(title).to_have_text("Possible match: ben", timeout=WAIT_S * 1000)
        finally:
            browser.close()
