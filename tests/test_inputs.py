"""Hostile input (issue 15, findings 7, 8 and 11): image uploads within a CPU budget, camera
sources only where the policy allows, no control characters in any text that is stored."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_support import BASIS, token_for
from sqlalchemy import select
from typer.testing import CliRunner

from openlfr.api.app import iter_routes
from openlfr.api.roles import Role
from openlfr.api.schemas import In
from openlfr.cli import app as cli
from openlfr.governance.cameras import CameraRefused, check_source
from openlfr.governance.policy import CameraRules, Policy
from openlfr.live.sources import open_source
from openlfr.store.models import Camera, Subject, Watchlist

# The issue asks for a refusal within 1 s of CPU; the bound leaves room for a loaded machine.
# Before the fix these took 21.8 s (6000x6600) and about 10 s (6000x4000).
CPU_BOUND_S = 2.0


def _black_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def big_pngs() -> dict[str, bytes]:
    """The issue's 6000x6600 black PNG (over the pixel budget), and 6000x4000 (24 MP, just
    under it: decoded, then detected on a shrunk copy)."""
    return {"over": _black_png(6000, 6600), "under": _black_png(6000, 4000)}


def _auth(store, role: Role) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {token_for(store, role)}"}


def _subject(client: TestClient, headers: dict[str, str]) -> str:
    client.post("/api/watchlists", headers=headers, json={"name": "demo"})
    body = {"name": "bob", "category": "missing-at-risk", "reason": "test", **BASIS}
    assert client.post("/api/watchlists/demo/subjects", headers=headers, json=body).is_success
    return "/api/watchlists/demo/subjects/bob/images"


# --- finding 8: every upload refused within a CPU budget ----------------------------------------


def test_near_limit_images_are_refused_by_the_enrol_endpoint_within_the_cpu_budget(
    client: TestClient, store, big_pngs: dict[str, bytes]
) -> None:
    manager = _auth(store, Role.WATCHLIST_MANAGER)
    url = _subject(client, manager)
    client.post(url, headers=manager, files={"file": ("warm.png", _black_png(64, 64))})
    for kind, message in (("over", "over the limit of 24,000,000"), ("under", "face")):
        started = time.process_time()  # the app runs in this process: its CPU is counted
        answer = client.post(url, headers=manager, files={"file": (f"{kind}.png", big_pngs[kind])})
        spent = time.process_time() - started
        assert answer.status_code == 422 and message in answer.json()["detail"], answer.text
        assert spent < CPU_BOUND_S, f"{kind}: {spent:.2f} s of CPU"


def test_near_limit_images_are_refused_by_the_cli_import_within_the_cpu_budget(
    tmp_path: Path, big_pngs: dict[str, bytes], database_url: str
) -> None:
    people = tmp_path / "people"
    (people / "bob").mkdir(parents=True)
    runner = CliRunner()
    assert runner.invoke(cli, ["watchlist", "create", "wl"]).exit_code == 0
    for kind, message in (("over", "over the limit"), ("under", "no face found")):
        for old in (people / "bob").iterdir():
            old.unlink()
        (people / "bob" / f"{kind}.png").write_bytes(big_pngs[kind])
        args = ["watchlist", "import", "wl", str(people), "--category", "missing-at-risk"]
        args += ["--reason", "test", "--legal-basis", "test", "--authorised-by", "insp-test"]
        started = time.process_time()  # fewer than 4 images: analysed in this process
        result = runner.invoke(cli, [*args, "--workers", "1"])
        spent = time.process_time() - started
        assert message in result.output, result.output
        assert spent < CPU_BOUND_S, f"{kind}: {spent:.2f} s of CPU"


# --- finding 7: camera sources only where the policy allows -------------------------------------


def test_the_default_policy_refuses_local_files_alike_whether_or_not_they_exist(
    tmp_path: Path, openlfr_home: Path
) -> None:
    rules = CameraRules()  # the defaults: rtsp(s) to any ordinary host, files under media/
    messages = set()
    for spec in ("/etc/passwd", "/etc/no-such-file", "../../etc/passwd", str(tmp_path)):
        with pytest.raises(CameraRefused) as refused:
            check_source(spec, rules)
        messages.add(str(refused.value).replace(spec, "SPEC"))
    assert messages == {
        "SPEC: camera source refused by the policy: a local file or folder must be under one "
        "of cameras.local_paths"
    }
    media = openlfr_home / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes(b"")
    assert check_source(str(media / "clip.mp4"), rules) == (media / "clip.mp4").resolve()
    (media / "link.mp4").symlink_to("/etc/passwd")  # judged by where it points
    with pytest.raises(CameraRefused, match="cameras.local_paths"):
        check_source(str(media / "link.mp4"), rules)
    for spec in ("concat:/etc/passwd|x", "file:///etc/passwd", "0"):
        with pytest.raises(CameraRefused):
            check_source(spec, rules)
    # the opener checks before it opens anything: no "no such file" for a refused path
    with pytest.raises(CameraRefused):
        open_source("/etc/no-such-file", policy=Policy())


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://127.0.0.1/x",
        "rtsp://127.1/x",  # FFmpeg's resolver reads these as 127.0.0.1 too
        "rtsp://2130706433/x",
        "rtsp://localhost:8554/x",
        "rtsp://[::1]/x",
        "rtsp://[::ffff:127.0.0.1]/x",
        "rtsp://169.254.169.254/latest/meta-data",  # the cloud metadata service
        "rtsp://0.0.0.0/x",
        "rtsp://224.0.0.1/x",
        "rtsp://user:secret@10.0.0.5\\@127.0.0.1/x",
    ],
)
def test_loopback_link_local_and_tricks_are_refused_unless_listed(url: str) -> None:
    with pytest.raises(CameraRefused) as refused:
        check_source(url, CameraRules())
    assert "secret" not in str(refused.value)  # credentials stay out of messages


def test_schemes_and_hosts_follow_the_policy() -> None:
    default = CameraRules()
    assert check_source("rtsp://user:pw@10.0.0.5:554/stream", default)
    for url in ("http://10.0.0.5/x.mjpg", "rtmp://10.0.0.5/x", "udp://10.0.0.5:5000"):
        with pytest.raises(CameraRefused, match="not in cameras.schemes"):
            check_source(url, default)
    listed = CameraRules(schemes=("rtsp", "https"), hosts=("10.20.0.0/16", "*.cams.example"))
    assert check_source("https://10.20.3.4/x", listed)
    with pytest.raises(CameraRefused, match="not in cameras.hosts"):
        check_source("rtsp://10.0.0.5/x", listed)
    loopback = CameraRules(hosts=("127.0.0.1/32",))
    assert check_source("rtsp://127.0.0.1:8554/x", loopback)
    with pytest.raises(ValueError, match="neither a host name nor an address"):
        CameraRules(hosts=("not a host!",))


class _Listener:
    """A loopback TCP listener that counts who connects: did the service fetch the URL?"""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/stream.mjpg"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def _wait_for(condition, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def listener() -> Iterator[_Listener]:
    server = _Listener()
    yield server
    server.sock.close()


def test_a_refused_url_is_never_fetched_and_an_allowed_one_is(listener: _Listener) -> None:
    refusing = Policy(cameras=CameraRules(schemes=("http",)))  # http on, loopback not listed
    with pytest.raises(CameraRefused, match="loopback"):
        open_source(listener.url, policy=refusing)
    # A connection of our own, accepted after anything the refused call could have made:
    socket.create_connection(listener.sock.getsockname(), timeout=10).close()
    _wait_for(lambda: listener.connections >= 1)
    assert listener.connections == 1  # ours alone
    allowing = Policy(cameras=CameraRules(schemes=("http",), hosts=("127.0.0.1",)))
    with pytest.raises(Exception):  # noqa: B017 (not an MJPEG server: it cannot open)
        open_source(listener.url, policy=allowing).close()
    _wait_for(lambda: listener.connections > 1)  # the same URL, allowed, is fetched


def test_planning_a_deployment_refuses_files_and_loopback_urls_over_http(
    client: TestClient, store, openlfr_home: Path, listener: _Listener
) -> None:
    (openlfr_home / "policy.toml").write_text("")  # the default policy
    manager = _auth(store, Role.WATCHLIST_MANAGER)
    client.post("/api/watchlists", headers=manager, json={"name": "wl"})
    officer = _auth(store, Role.AUTHORISING_OFFICER)
    answers = {}
    for source in ("/etc/passwd", "/etc/no-such-file", listener.url, "rtsp://127.0.0.1/x", "0"):
        body = {
            "name": "Op",
            "location": "Square",
            "reason": "why here, why now",
            "watchlist": "wl",
            "ends_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
            "cameras": [{"name": "north", "source": source}],
        }
        answer = client.post("/api/deployments", headers=officer, json=body)
        assert answer.status_code == 422, answer.text
        answers[source] = answer.json()["detail"].replace(source, "SPEC")
    assert answers["/etc/passwd"] == answers["/etc/no-such-file"]  # existence not revealed
    assert "scheme 'http'" in answers[listener.url] and "loopback" in answers["rtsp://127.0.0.1/x"]
    assert "cameras.devices" in answers["0"]
    assert listener.connections == 0
    with store() as session:
        assert session.scalar(select(Camera)) is None


# --- finding 11: no NUL or control character in any stored text ---------------------------------


def test_control_characters_are_refused_in_every_body_field_and_parameter(
    client: TestClient, store
) -> None:
    manager = _auth(store, Role.WATCHLIST_MANAGER)
    client.post("/api/watchlists", headers=manager, json={"name": "demo"})
    good = {"name": "bob", "category": "missing-at-risk", "reason": "test", **BASIS}
    url = "/api/watchlists/demo/subjects"
    for field, value in [
        ("legal_basis", "warrant\x00"),  # the two: stored and exported before
        ("authorised_by", "insp\x00"),
        ("authorised_by", "insp\nforged line"),  # one-line fields: no line feed either
        ("category", "missing-at-risk\x1b[2J"),
        ("image_source", "custody\r"),
        ("reason", "wanted\u202e"),  # a bidirectional override displays text reversed
    ]:
        answer = client.post(url, headers=manager, json={**good, field: value})
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["errors"][0]["loc"] == ["body", field]
    free_text = {**good, "reason": "seen twice:\n\tat the station", "legal_basis": "s.1\ns.2"}
    assert client.post(url, headers=manager, json=free_text).status_code == 201
    with store() as session:
        (subject,) = session.scalars(select(Subject)).all()
        assert subject.reason == free_text["reason"]
    auditor = _auth(store, Role.AUDITOR)
    for path, params, headers in [
        ("/api/audit", {"actor": "a\x00"}, auditor),
        ("/api/audit", {"purpose": "audit\x07"}, auditor),
        ("/api/watchlists/de%01mo", {}, manager),
    ]:
        answer = client.get(path, params=params, headers=headers)
        assert answer.status_code == 422 and "not allowed" in answer.text, (path, answer.text)
    upload = client.post(
        f"{url}/bob/images", headers=manager, files={"file": ("x\x1b.jpg", b"x", "image/jpeg")}
    )
    assert upload.status_code == 422 and upload.json()["errors"][0]["loc"] == ["body", "file"]
    exported = client.get("/api/audit/export", params={"format": "csv"}, headers=auditor)
    assert "\x00" not in exported.text and "\x1b" not in exported.text


def test_every_request_body_is_a_checked_model(client: TestClient) -> None:
    """Structural: a request model added later that skips the base class fails here."""
    from pydantic import BaseModel

    def models(annotation: object) -> Iterator[type]:
        from typing import get_args

        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield annotation
            for field in annotation.model_fields.values():
                yield from models(field.annotation)
        for arg in get_args(annotation):
            yield from models(arg)

    bodies = {}
    for route in iter_routes(client.app.routes):
        body = getattr(getattr(route, "dependant", None), "body_params", None) or []
        for param in body:
            for model in models(param.field_info.annotation):
                bodies[model.__name__] = model
    assert {"SubjectCreate", "DeploymentCreate", "CameraIn", "AdjudicationIn"} <= set(bodies)
    unchecked = sorted(name for name, model in bodies.items() if not issubclass(model, In))
    assert not unchecked, f"request models not derived from schemas.In: {unchecked}"


def test_the_cli_refuses_control_characters_before_writing(database_url: str) -> None:
    runner = CliRunner()
    refused = runner.invoke(cli, ["watchlist", "create", "wl", "--description", "a\x1b]0;x\x07"])
    assert refused.exit_code == 2 and "--description" in refused.output
    assert "\x1b" not in refused.output  # named, not echoed to the terminal
    refused = runner.invoke(cli, ["watchlist", "create", "w\x01l"])
    assert refused.exit_code == 2
    from openlfr.store.db import open_store

    with open_store(database_url)() as session:
        assert session.scalar(select(Watchlist)) is None
    made = runner.invoke(cli, ["watchlist", "create", "wl", "--description", "two\nlines"])
    assert made.exit_code == 0, made.output
