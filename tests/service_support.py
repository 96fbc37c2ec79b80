"""Helpers for the service tests: a store with one user per role, alerts inserted directly."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from openlfr.api.auth import create_user
from openlfr.api.roles import Role
from openlfr.live.deployment import create_deployment
from openlfr.store.db import open_store
from openlfr.store.models import Alert, Deployment, Watchlist
from openlfr.store.watchlists import WatchlistEntry

PASSWORD = "correct horse battery"
# What every watchlist entry needs besides its reason (governance, issue 5).
BASIS = {"legal_basis": "test warrant", "authorised_by": "insp-test"}
# A complete entry for tests that enrol directly; dataclasses.replace changes a field.
ENTRY = WatchlistEntry(
    category="wanted-by-courts",
    reason="warrant 123",
    legal_basis="Magistrates' Courts Act 1980 s.1 warrant",
    authorised_by="insp1",
    added_by="pc1",
    image_source="custody",
)


def user_name(role: Role | str) -> str:
    return str(role).replace("-", "_")


def add_users(store: sessionmaker[Session]) -> None:
    with store() as session:
        for role in Role:
            create_user(session, user_name(role), role, PASSWORD)
        session.commit()


def jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@dataclass
class Scene:
    deployment_id: int
    camera_id: int
    alert_ids: list[str] = field(default_factory=list)


def authorise_for_tests(deployment: Deployment) -> None:
    """The authorisation record a deployment needs to run (governance tests check the rules)."""
    deployment.dpia_ref, deployment.equality_ref = "DPIA-T", "EIA-T"
    deployment.authorised_by, deployment.authorised_at = "insp-test", datetime.now(UTC)
    deployment.signage_confirmed = True


def plan_deployment(
    store: sessionmaker[Session], *, suppress: bool = False, watchlist: str = "demo"
) -> Scene:
    """A planned deployment on an (empty if new) watchlist ``watchlist``, one camera."""
    with store() as session:
        if session.query(Watchlist).filter_by(name=watchlist).first() is None:
            session.add(Watchlist(name=watchlist, description=""))
            session.flush()
        now = datetime.now(UTC)
        d = create_deployment(
            session,
            name="Test op",
            location="Test square",
            reason="test",
            watchlist=watchlist,
            starts_at=now,
            ends_at=now + timedelta(hours=2),
            cameras={"north": "/dev/null"},
            created_by="officer",
        )
        d.suppress_no_match = suppress
        authorise_for_tests(d)
        session.commit()
        return Scene(d.id, d.cameras[0].id)


def insert_alert(
    store: sessionmaker[Session],
    scene: Scene,
    probe: np.ndarray,
    reference: np.ndarray,
    subject: str = "alice",
    score: float = 5.2,
) -> str:
    """An alert row as ``run_deployment`` writes it."""
    alert_id = uuid.uuid4().hex
    with store() as session:
        session.add(
            Alert(
                id=alert_id,
                deployment_id=scene.deployment_id,
                camera_id=scene.camera_id,
                track=7,
                frame=120,
                time_s=4.8,
                subject_id=1,
                subject_name=subject,
                score=score,
                similarity=0.95,
                box=[10, 10, 90, 90],
                latency_s=0.3,
                probe_image=jpeg(probe),
                reference_image=jpeg(reference),
            )
        )
        session.commit()
    scene.alert_ids.append(alert_id)
    return alert_id


def service_store(url: str) -> sessionmaker[Session]:
    store = open_store(url)
    add_users(store)
    return store


class LiveServer:
    """The app under uvicorn in a thread on a free loopback port (for SSE and the browser)."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        import socket

        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)

    def __enter__(self) -> LiveServer:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def token_for(store: sessionmaker[Session], role: Role) -> str:
    """A session token without the password round trip (argon2 is slow on purpose)."""
    from sqlalchemy import select

    from openlfr.api.auth import open_session
    from openlfr.store.models import User

    with store() as session:
        user = session.scalar(select(User).where(User.name == user_name(role)))
        token, _ = open_session(session, user)
        session.commit()
    return token


def read_events(url: str, token: str, wanted: int, timeout_s: float, out: list) -> None:  # type: ignore[type-arg]
    """Collect ``wanted`` SSE events (as dicts) into ``out`` within ``timeout_s``."""
    import json
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(timeout=timeout_s) as client,
        client.stream("GET", f"{url}/api/events", headers=headers) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
                if len(out) >= wanted:
                    return
            if time.monotonic() > deadline:
                return


def mark_ran(store: sessionmaker[Session], scene: Scene, *, faces: int, hours: float) -> None:
    """As if the deployment had run for ``hours`` and searched ``faces`` faces (for reports)."""
    with store() as session:
        deployment = session.get(Deployment, scene.deployment_id)
        started = datetime.now(UTC) - timedelta(hours=hours)
        deployment.status, deployment.snapshot_size = "ended", 1
        deployment.started_at, deployment.ended_at = started, started + timedelta(hours=hours)
        deployment.cameras[0].faces_processed = faces
        session.commit()


def adjudicate(
    store: sessionmaker[Session], alert_id: str, decision: str, outcome: str | None = None
) -> None:
    """A reviewer's decision (and outcome) written directly, as the API records them."""
    from openlfr.store.models import Adjudication

    with store() as session:
        session.add(
            Adjudication(
                alert_id=alert_id, reviewer="pc-reviewer", decision=decision, outcome=outcome
            )
        )
        session.commit()


def enrol_directly(
    store: sessionmaker[Session],
    name: str,
    image: bytes,
    watchlist: str = "demo",
    model: str = "dlib-resnet-v1",
) -> int:
    """A watchlist entry with one reference image, without face detection (subject-rights tests
    need the records, not a search): the template, tagged ``model``, is a random unit vector.
    Returns its id."""
    from openlfr.governance.policy import Policy
    from openlfr.store.watchlists import add_reference_image, add_subject, get_watchlist
    from openlfr.vision.detect import Detection
    from openlfr.vision.faces import Face
    from openlfr.vision.models import _units
    from openlfr.vision.quality import Quality

    size = _units()[model].embedding_size
    vector = np.random.default_rng(0).normal(size=size).astype(np.float32)
    face = Face(
        box=Detection(0, 0, 10, 10, 1.0),
        landmarks=np.zeros((5, 2), np.float32),
        quality=Quality(10, 5.0, 100.0, 1.0, 0.0),
        chip=None,
        embedding=vector / np.linalg.norm(vector),
        model=model,
    )
    with store() as session:
        entry = replace(
            ENTRY, category="missing-at-risk", reason="test enrolment", added_by="pc-test", **BASIS
        )
        subject = add_subject(
            session, get_watchlist(session, watchlist), name=name, entry=entry, policy=Policy()
        )
        add_reference_image(
            session, subject, filename=f"{name}.jpg", content=image, face=face, width=10, height=10
        )
        session.commit()
        return subject.id


def wait_until(
    condition: Callable[[], object], what: str, timeout_s: float = 60.0, every_s: float = 0.05
) -> object:
    """Poll ``condition`` until it returns something true, and return that; fail saying
    ``what`` was awaited otherwise (tests poll for a state instead of sleeping a fixed time)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def run_cli(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """``openlfr`` as the operator runs it: its own process, on the store in the environment
    (the timeout is generous: several interpreters start at once on a loaded 2-core machine)."""
    return subprocess.run(
        [sys.executable, "-m", "openlfr.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=os.environ.copy(),
    )


def count_graph_builds(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """Make every list large enough for the approximate index, in this process, and count the
    graphs built here (one entry each)."""
    import openlfr.matching.approximate as ann
    import openlfr.matching.index as index_module

    builds: list[int] = []

    class CountedGraph(index_module.TemplateGraph):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            builds.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(ann, "APPROXIMATE_FROM", 2)
    monkeypatch.setattr(index_module, "TemplateGraph", CountedGraph)
    return builds
