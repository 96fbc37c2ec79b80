"""``openlfr demo``: the whole loop on the install's own data, in a store of its own.

Run as a user runs it, in a process of its own: the summary with each face model, the console
it serves (real HTTP, a real SIGINT to stop it), and what it refuses before doing any work.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select

from openlfr.demo.clip import FPS, HEIGHT, WIDTH, Walk, write_clip
from openlfr.errors import OpenLFRError

DEMO = [sys.executable, "-m", "openlfr.cli", "demo"]
LISTED = "eileen-collins"


def _installed(model: str) -> bool:
    from openlfr.vision.models import get_model

    try:
        get_model(model)
    except OpenLFRError:
        return False
    return True


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The user's environment as the demo finds it: their own home, store and policy."""
    env = {k: v for k, v in os.environ.items() if k != "OPENLFR_MODEL"}
    env.update(OPENLFR_HOME=str(tmp_path / "home"), **extra)
    return env


def _real_store(tmp_path: Path) -> tuple[str, Path]:
    """A user's store with a watchlist in it, and a policy that would refuse the demo's
    watchlist category: the demo must use neither."""
    from openlfr.store.db import open_store
    from openlfr.store.watchlists import create_watchlist

    path = tmp_path / "real.sqlite3"
    store = open_store(f"sqlite:///{path}")
    with store() as session:
        create_watchlist(session, "real")
        session.commit()
    store.kw["bind"].dispose()
    policy = tmp_path / "strict-policy.toml"
    policy.write_text('[watchlist]\ncategories = ["wanted-by-courts"]\n')
    return f"sqlite:///{path}", policy


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dlib-resnet-v1", "mobilefacenet-v1"])
def test_demo_alerts_on_the_watchlisted_walker_and_not_the_stranger(
    tmp_path: Path, model: str
) -> None:
    if not _installed(model):
        pytest.skip(f"{model} is not installed ('openlfr models install')")
    url, policy = _real_store(tmp_path)
    before = _sha256(tmp_path / "real.sqlite3")
    env = _env(tmp_path, OPENLFR_DATABASE_URL=url, OPENLFR_POLICY=str(policy))
    started = time.monotonic()
    done = subprocess.run(
        [*DEMO, "--no-serve", "--model", model],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])  # the last line, one line
    assert summary["model"] == model
    assert summary["true_alerts"] == summary["alerts"] == 1, done.stderr
    assert summary["false_alerts"] == 0
    # Three walks, a track each; a loaded machine drops frames (the clip plays in real time,
    # as a camera would) and may split a walk in two.
    assert summary["faces_processed"] >= 3
    assert "every camera's source ended" in summary["end_reason"]
    for credit in ("Eileen Collins", "NASA", "Grace M. Hopper", "US Navy", "public domain"):
        assert credit in done.stderr
    passwords = dict(
        re.findall(r"^\s+(officer|reviewer)\s+\S+\s+password: (\S+)$", done.stderr, re.M)
    )
    assert set(passwords) == {"officer", "reviewer"} and all(
        len(p) >= 16 for p in passwords.values()
    )
    print(f"{model}: demo took {took:.1f} s")  # -s shows it; the issue asks well under 60 s

    # Its own directory under OPENLFR_HOME; the user's store and policy untouched.
    home = Path(summary["home"])
    assert home.parent == tmp_path / "home" and home.name.startswith("demo-")
    assert _sha256(tmp_path / "real.sqlite3") == before
    _check_demo_store(f"sqlite:///{home / 'openlfr.sqlite3'}", passwords)
    # and its audit chain verifies where the demo says to look, checkpoint included
    env = {k: v for k, v in env.items() if k not in ("OPENLFR_DATABASE_URL", "OPENLFR_POLICY")}
    verified = subprocess.run(
        [sys.executable, "-m", "openlfr.cli", "audit", "verify"],
        env={**env, "OPENLFR_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0 and "audit chain intact" in verified.stdout, verified.stderr


def _check_demo_store(url: str, passwords: dict[str, str]) -> None:
    """The demo's store as an operator would find it: two accounts with the printed
    passwords, a deployment planned and authorised by different people, ended with its
    snapshot destroyed, the alert pending review, each step audited."""
    from openlfr.api.auth import authenticate
    from openlfr.store.db import open_store
    from openlfr.store.models import (
        Adjudication,
        Alert,
        AuditEntry,
        Deployment,
        SnapshotTemplate,
        User,
    )

    store = open_store(url)
    with store() as session:
        roles = dict(session.execute(select(User.name, User.role)).all())
        assert roles == {"officer": "authorising-officer", "reviewer": "reviewer"}
        for name, password in passwords.items():
            assert authenticate(session, name, password) is not None
        deployment = session.scalars(select(Deployment)).one()
        assert deployment.authorised_by == "officer" != deployment.created_by
        assert deployment.status == "ended"
        assert session.scalar(select(func.count()).select_from(SnapshotTemplate)) == 0
        alert = session.scalars(select(Alert)).one()
        assert alert.subject_name == LISTED
        assert session.scalar(select(func.count()).select_from(Adjudication)) == 0
        actions = set(session.scalars(select(AuditEntry.action)))
        assert {"user-add", "enrol", "deployment-plan", "deployment-authorise"} <= actions
    store.kw["bind"].dispose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_demo_serves_the_console_with_the_alert_waiting_for_review(
    tmp_path: Path, database_url: str, db_backend: str
) -> None:
    """On PostgreSQL the demo is given an empty database (the fixture's); on SQLite it makes
    its own file and ignores the OPENLFR_DATABASE_URL the fixture set."""
    import httpx

    port = _free_port()
    extra = ["--database-url", database_url] if db_backend == "postgresql" else []
    command = [*DEMO, "--port", str(port), "--dir", str(tmp_path / "demo"), *extra]
    demo = subprocess.Popen(
        command, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in demo.stderr], daemon=True).start()
    try:
        seen, address, password = [], None, None
        deadline = time.monotonic() + 240
        while address is None:
            assert time.monotonic() < deadline, "".join(seen)
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert demo.poll() is None, "".join(seen)
                continue
            seen.append(line)
            if m := re.match(r"^\s+reviewer\s+reviewer\s+password: (\S+)$", line):
                password = m.group(1)
            if m := re.search(r"console: (http://\S+/)", line):
                address = m.group(1)
        assert address == f"http://127.0.0.1:{port}/" and password
        while True:  # the service comes up after the address is printed
            try:
                login = httpx.post(
                    f"{address}api/auth/login", json={"name": "reviewer", "password": password}
                )
                break
            except httpx.TransportError:
                assert demo.poll() is None and time.monotonic() < deadline, "".join(seen)
                time.sleep(0.2)
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['token']}"}
        pending = httpx.get(f"{address}api/alerts", params={"state": "pending"}, headers=auth)
        assert [a["subject_name"] for a in pending.json()] == [LISTED]
        images = f"{address}api/alerts/{pending.json()[0]['id']}/images"
        for which in ("probe", "reference"):  # the crop beside the enrolled photo
            image = httpx.get(f"{images}/{which}", headers=auth)
            assert image.status_code == 200 and image.content[:2] in (b"\xff\xd8", b"\x89P")
        assert "OpenLFR console" in httpx.get(address).text
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C, as the demo says
        code = demo.wait(timeout=30)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    # 130: uvicorn re-raises the SIGINT it shut down on, and a Ctrl-C exits so everywhere
    assert code in (0, 130) and "Traceback" not in "".join(rest), "".join(rest)
    assert '"faces_processed"' not in demo.stdout.read()  # the summary is --no-serve's


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    done = subprocess.run(
        [*DEMO, "--no-serve", "--dir", str(folder)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "not an empty folder" in done.stderr
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_demo_refuses_a_database_that_is_not_empty(tmp_path: Path, database_url: str) -> None:
    from openlfr.store.db import open_store

    open_store(database_url).kw["bind"].dispose()  # migrated: it has tables
    done = subprocess.run(
        [*DEMO, "--no-serve", "--dir", str(tmp_path / "demo"), "--database-url", database_url],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "must be empty" in done.stderr, done.stderr
    assert not (tmp_path / "demo").exists()


def test_demo_refuses_a_port_in_use_before_any_work(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*DEMO, "--port", str(port), "--dir", str(tmp_path / "demo")],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert not (tmp_path / "demo").exists()


def test_clip_is_a_real_video_of_the_walks(tmp_path: Path) -> None:
    head = np.full((200, 200, 3), 128, np.uint8)
    walks = [Walk("a", head, 0.0), Walk("b", head, 1.0, flip=True, light=0.5, blur_far=2)]
    clip = write_clip(tmp_path / "clip.avi", walks, tail_s=0.5)
    capture = cv2.VideoCapture(str(clip.path))
    read = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (HEIGHT, WIDTH, 3)
        read += 1
    capture.release()
    assert read == clip.frames == round(4.5 * FPS)
    assert clip.who_at(0.5, slack_s=0) == {"a"} and clip.who_at(3.5, slack_s=0) == {"b"}
