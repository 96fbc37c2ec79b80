"""Soak (issue 15): a deployment runs an hour of simulated time on a looping clip while its
cameras drop every few minutes and a reviewer adjudicates; memory and file descriptors must
stay flat and every alert must be stored once.

    python benchmarks/soak.py [--data ../shared/data] [--minutes 60] [--speedup 6]
        [--cameras 2] [--drop-every 240] [--drop-for 30] [--database-url URL] [--json FILE]

About eleven minutes on 2 cores with the defaults (ten of them the simulated hour). Everything
is the project's own and real:

- the *cameras* are IP cameras on loopback, one HTTP MJPEG stream each (the format many IP
  cameras serve), in a separate process that decodes two real clips of the shared data with
  the project's video source (``intel-face-demographics-walking-and-pause.mp4`` then
  ``intel-head-pose-face-detection-female-and-male.mp4``) and loops them; each camera starts
  at its own point of the loop. The soak's policy file allows them in writing (``http`` from
  ``127.0.0.1``), as a force would for cameras it controls;
- a *drop* closes the camera's connection and its listening socket (a camera rebooting, or a
  cut cable): connections are refused until it comes back ``--drop-for`` seconds later. The
  deployment's own ``LiveSource`` notices, reconnects with its backoff and carries on;
- the *deployment* is ``openlfr deployment run`` in its own process (the controller), with
  its spawned camera workers, on a store migrated from scratch (SQLite in a temporary data
  directory unless ``--database-url`` names an existing, empty one, e.g. PostgreSQL); it ends
  with ``openlfr deployment stop``, as an operator ends one;
- the *reviewer* is an account on ``openlfr serve``: it logs in, lists the deployment's alerts,
  fetches both images of each new one and adjudicates it over HTTP, in turn match (with an
  outcome), cannot tell, and no match with suppression of that face.

Simulated time: every clock of the scenario runs ``--speedup`` times faster than the wall
clock, from the moment every camera has its viewer (the workers have loaded their models).
The cameras play the 12 fps clip at 12 x speedup frames per wall second (its frames keep their
1/12 s spacing in simulated time), drops come every ``--drop-every`` and last ``--drop-for``
simulated seconds, the reviewer looks every ``--review-every`` simulated seconds, and the
operator stops the deployment after ``--minutes`` simulated minutes. The pipeline itself runs
at the speed of the CPU, as it would live: it takes the newest frame each time and the rest
count as dropped, so it processes about 1/speedup of the frames a real hour would give it.
Two clocks inside the project are wall clocks and stay so: the re-alert window (120 s between
alerts for one subject on one camera, so 120 x speedup simulated seconds) and the
reconnection backoff (0.5 s, doubling).

Measured, every ``--sample-every`` simulated seconds, from outside the processes (psutil): the
resident memory (RSS) and the open file descriptors of the controller, of each camera worker
and of the service. Reported per ``--interval`` simulated seconds: first, last and max of each;
over the steady state (after ``--warm-up``) a least-squares slope per simulated hour, the
growth from its first sample to its last, and the descriptors' median in its first quarter
against its last half. Then the alerts: the pipeline's own count per camera against the rows
stored (none lost, none extra), no second alert for one subject on one camera within the
re-alert window (no duplicate), each adjudicated exactly once, the alert ids the reviewer saw
equal to those stored; the drops against the reconnections the cameras saw; the deployment's
end, its snapshot gone, and the audit chain intact. It exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

CLIPS = (
    "intel-face-demographics-walking-and-pause.mp4",
    "intel-head-pose-face-detection-female-and-male.mp4",
)
CLIP_FPS = 12.0  # both clips' own rate
# Who is on the watchlist: a face taken from one frame of the loop (clip, frame), found again
# each time the loop passes by; and people who never appear, so that the list is not trivial.
ENROLLED = {"walker": (0, 10), "turner": (1, 0)}
ABSENT = ("amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon")
ABSENT_FOLDER = "faces/misc/faceapi_js/examples/images"
REALERT_WINDOW_S = 120.0  # LiveConfig.realert_window_s, a wall-clock window
PASSWORD = "soak reviewer password"
MIB = 1024 * 1024


@dataclass
class Plan:
    """One soak's scenario; durations in simulated seconds unless named otherwise."""

    data: Path
    minutes: float = 60.0
    speedup: float = 6.0
    cameras: int = 2
    drop_every_s: float = 240.0
    drop_for_s: float = 30.0
    review_every_s: float = 60.0
    sample_every_s: float = 20.0
    interval_s: float = 300.0
    warm_up_s: float = 300.0  # left out of the verdict: first frames, alerts, allocations
    startup_s: float = 180.0  # wall seconds the workers may take to load and connect
    database_url: str | None = None
    # Flat means: over the steady state, RSS grows by at most this much per process (from its
    # first sample to its last, and by its slope over the whole duration), and the median
    # count of descriptors in its last half exceeds that of its first quarter by at most
    # fd_slack (a connection pool may keep one more connection once it has needed it).
    rss_growth_mib: float = 16.0
    fd_slack: int = 1

    def wall(self, sim_s: float) -> float:
        return sim_s / self.speedup


# --- the cameras ---------------------------------------------------------------------------


def loop_frames(data: Path) -> tuple[list[bytes], list[int]]:
    """The looping clip as JPEG frames, decoded by the project's own video source, and where
    in the loop each clip starts."""
    from openlfr.live.sources import VideoFileSource

    frames, starts = [], []
    for clip in CLIPS:
        starts.append(len(frames))
        with VideoFileSource(data / "video" / clip) as source:
            for frame in source.frames():
                bgr = cv2.cvtColor(cv2.resize(frame.image, (480, 270)), cv2.COLOR_RGB2BGR)
                ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
                frames.append(jpeg.tobytes())
    return frames, starts


@dataclass
class CameraLog:
    port: int = 0
    connections: list[float] = field(default_factory=list)  # wall times of stream requests
    drops: list[tuple[float, float]] = field(default_factory=list)  # wall (down, back up)
    frames_sent: int = 0


class MjpegCamera:
    """One IP camera: an MJPEG stream of the loop on its own port, which it closes to drop."""

    def __init__(
        self, frames: list[bytes], offset: int, plan: Plan, t0: float, on_first: Any
    ) -> None:
        self.frames, self.offset, self.plan, self.t0 = frames, offset, plan, t0
        self.on_first = on_first  # called with the wall time of the first viewer
        self.log = CameraLog()
        self.down = threading.Event()
        self.connected = threading.Event()
        self._server = self._listen(0)
        self.log.port = self._server.server_address[1]

    def _listen(self, port: int) -> ThreadingHTTPServer:
        camera = self

        class Stream(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                camera.log.connections.append(time.time())
                if not camera.connected.is_set():
                    camera.connected.set()
                    camera.on_first(camera.log.connections[0])
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                tick = 1 / (CLIP_FPS * camera.plan.speedup)
                sent = -1
                with contextlib.suppress(OSError):
                    while not camera.down.is_set():
                        index = int((time.time() - camera.t0) / tick)
                        if index == sent:
                            time.sleep(tick / 2)
                            continue
                        jpeg = camera.frames[(index + camera.offset) % len(camera.frames)]
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            b"Content-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg)
                        )
                        sent = index
                        camera.log.frames_sent += 1
                self.close_connection = True

            def log_message(self, *_: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Stream)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def run_drops(self, phase_s: float, stop: threading.Event) -> None:
        """Drop every drop_every_s, counted from the first viewer (a camera down when the
        deployment starts is another matter: the worker cannot open it at all)."""
        while not self.connected.wait(0.2):
            if stop.is_set():
                return
        first = time.time()
        k = 0
        while True:
            at = first + self.plan.wall(phase_s + k * self.plan.drop_every_s)
            if stop.wait(max(at - time.time(), 0)):
                return
            self.down.set()
            self._server.shutdown()
            self._server.server_close()  # connections now refused
            down = time.time()
            stopping = stop.wait(self.plan.wall(self.plan.drop_for_s))
            self.down.clear()
            self._server = self._listen(self.log.port)
            self.log.drops.append((down, time.time()))
            if stopping:
                return
            k += 1


def serve_cameras(plan: Plan, t0: float, ports: Any, viewers: Any, results: Any, stop: Any) -> None:
    """The camera process: every camera, until ``stop``; (camera, wall time) of each one's
    first viewer onto ``viewers``, their logs onto ``results``."""
    frames, _ = loop_frames(plan.data)
    cameras = [
        MjpegCamera(
            frames,
            i * len(frames) // plan.cameras,
            plan,
            t0,
            lambda at, i=i: viewers.put((i, at)),  # type: ignore[misc]
        )
        for i in range(plan.cameras)
    ]
    ports.put([c.log.port for c in cameras])
    halt = threading.Event()
    threads = [
        threading.Thread(
            target=c.run_drops,
            args=(plan.drop_every_s * (i + 1) / (plan.cameras + 1), halt),
            daemon=True,
        )
        for i, c in enumerate(cameras)
    ]
    for thread in threads:
        thread.start()
    stop.wait()
    halt.set()
    for thread in threads:
        thread.join(timeout=5)
    results.put([asdict(c.log) for c in cameras])


# --- the store, the watchlist and the deployment -------------------------------------------


def write_policy(home: Path) -> None:
    """The force's policy for this soak: the defaults, and its loopback MJPEG cameras allowed
    in writing (a policy without camera rules, before issue 15, needs nothing)."""
    from openlfr.governance.policy import Policy

    if "cameras" in Policy.model_fields:
        (home / "policy.toml").write_text(
            "# the soak's own cameras (benchmarks/soak.py)\n"
            '[cameras]\nschemes = ["http"]\nhosts = ["127.0.0.1"]\n'
        )


def prepare_store(plan: Plan) -> None:
    """Migrate the store, enrol the watchlist and add the accounts."""
    from openlfr.api.auth import create_user
    from openlfr.governance.policy import load_policy
    from openlfr.store.db import open_store
    from openlfr.store.watchlists import (
        WatchlistEntry,
        add_reference_image,
        add_subject,
        create_watchlist,
    )
    from openlfr.vision import find_faces
    from openlfr.vision.image import load_image

    policy = load_policy()
    entry = WatchlistEntry(
        category="missing-at-risk",
        reason="soak test",
        legal_basis="soak test: no real person",
        authorised_by="insp_soak",
        added_by="soak",
        image_source="shared development clip",
    )
    frames, starts = loop_frames(plan.data)
    photos = {  # as the camera shows them
        name: cv2.cvtColor(
            cv2.imdecode(np.frombuffer(frames[starts[c] + f], np.uint8), cv2.IMREAD_COLOR),
            cv2.COLOR_BGR2RGB,
        )
        for name, (c, f) in ENROLLED.items()
    }
    for name in ABSENT:
        photos[name] = load_image(plan.data / ABSENT_FOLDER / name / f"{name}1.jpg")
    factory = open_store(plan.database_url)
    with factory() as session:
        watchlist = create_watchlist(session, "soak")
        for name, image in photos.items():
            face = max(find_faces(image, upsample=1), key=lambda f: f.box.width)
            subject = add_subject(session, watchlist, name=name, entry=entry, policy=policy)
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            add_reference_image(
                session,
                subject,
                filename=f"{name}.jpg",
                content=jpeg.tobytes(),
                face=face,
                width=image.shape[1],
                height=image.shape[0],
            )
        create_user(session, "reviewer_soak", "reviewer", PASSWORD)
        create_user(session, "insp_soak", "authorising-officer", PASSWORD)
        session.commit()
    factory.kw["bind"].dispose()


def plan_deployment(plan: Plan, ports: list[int]) -> int:
    """Plan and authorise the deployment, its hard end late enough for the workers to start
    and the simulated duration to pass (an operator stops it then); returns its id."""
    from openlfr.governance.authorisation import authorise_deployment
    from openlfr.governance.policy import load_policy
    from openlfr.live.deployment import create_deployment
    from openlfr.store.db import open_store

    factory = open_store(plan.database_url)
    with factory() as session:
        ends_at = datetime.now(UTC) + timedelta(
            seconds=plan.startup_s + plan.wall(plan.minutes * 60) + 60
        )
        deployment = create_deployment(
            session,
            name="soak",
            location="loopback",
            reason="soak test of issue 15",
            watchlist="soak",
            starts_at=datetime.now(UTC),
            ends_at=ends_at,
            cameras={
                f"cam{i + 1}": f"http://127.0.0.1:{port}/stream.mjpg"
                for i, port in enumerate(ports)
            },
            created_by="soak",
            dpia_ref="DPIA-SOAK",
            equality_ref="EIA-SOAK",
            signage_confirmed=True,
        )
        deployment.suppress_no_match = True
        authorise_deployment(session, deployment, by="insp_soak", policy=load_policy())
        session.commit()
        deployment_id = deployment.id
    factory.kw["bind"].dispose()
    return deployment_id


# --- the reviewer --------------------------------------------------------------------------


class Reviewer:
    """A reviewer on the real service: new alerts are looked at and decided, once each."""

    DECISIONS = (("match", False), ("cannot-tell", False), ("no-match", True))

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30.0)
        self.deployment_id = 0  # set once the deployment is planned
        self.seen: set[str] = set()
        self.decided: dict[str, str] = {}
        self.refused: list[str] = []  # any answer but success, with its status

    def log_in(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                answer = self.http.post(
                    "/api/auth/login", json={"name": "reviewer_soak", "password": PASSWORD}
                )
                answer.raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        self.http.headers["Authorization"] = f"Bearer {answer.json()['token']}"

    def review(self) -> None:
        alerts = self.http.get(
            "/api/alerts", params={"deployment_id": self.deployment_id, "limit": 500}
        ).json()
        for alert in alerts:
            self.seen.add(alert["id"])
            if alert["adjudication"] is not None or alert["id"] in self.decided:
                continue
            for which in ("probe", "reference"):
                self._check(self.http.get(f"/api/alerts/{alert['id']}/images/{which}"))
            decision, suppress = self.DECISIONS[len(self.decided) % len(self.DECISIONS)]
            answer = self.http.post(
                f"/api/alerts/{alert['id']}/adjudication",
                json={"decision": decision, "suppress": suppress},
            )
            if self._check(answer):
                self.decided[alert["id"]] = decision
            if decision == "match":
                self._check(
                    self.http.post(
                        f"/api/alerts/{alert['id']}/outcome", json={"outcome": "engaged"}
                    )
                )

    def _check(self, answer: httpx.Response) -> bool:
        if answer.is_success:
            return True
        self.refused.append(
            f"{answer.request.method} {answer.request.url.path}: {answer.status_code}"
        )
        return False


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Sample:
    sim_s: float
    processes: dict[str, tuple[int, int]]  # label -> (RSS bytes, open descriptors)
    kinds: dict[str, dict[str, int]] = field(default_factory=dict)  # label -> what they are


def descriptor_kinds(pid: int) -> dict[str, int]:
    """What a process's descriptors are (socket, pipe, anon_inode, file), where Linux's /proc
    tells: the clue to what grew, when something did."""
    kinds: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                kind = target.split(":", 1)[0] if ":" in target else "file"
                kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


class Sampler:
    """RSS and descriptors of the controller, its camera workers and the service, by psutil
    from outside; workers are labelled in the order they appear (a new pid is a restart)."""

    def __init__(self, controller: int, service: int) -> None:
        self.controller = psutil.Process(controller)
        self.service = psutil.Process(service)
        self.workers: dict[int, str] = {}
        self.samples: list[Sample] = []

    def sample(self, sim_s: float) -> None:
        processes: dict[str, tuple[int, int]] = {}
        pids: dict[str, int] = {}
        try:
            children = self.controller.children()
            processes["controller"] = self._measure(self.controller)
            pids["controller"] = self.controller.pid
        except psutil.NoSuchProcess:
            return
        for child in children:
            with contextlib.suppress(psutil.Error):
                if child.pid not in self.workers:
                    if "spawn_main" not in " ".join(child.cmdline()):
                        continue  # multiprocessing's resource tracker
                    self.workers[child.pid] = f"worker {len(self.workers) + 1}"
                processes[self.workers[child.pid]] = self._measure(child)
                pids[self.workers[child.pid]] = child.pid
        with contextlib.suppress(psutil.Error):
            processes["service"] = self._measure(self.service)
            pids["service"] = self.service.pid
        kinds = {label: descriptor_kinds(pid) for label, pid in pids.items()}
        self.samples.append(Sample(sim_s, processes, kinds))

    @staticmethod
    def _measure(process: psutil.Process) -> tuple[int, int]:
        return process.memory_info().rss, process.num_fds()


@dataclass
class Series:
    """One process's figures: per interval, and its steady-state trend."""

    label: str
    intervals: list[dict[str, float]]
    rss_slope_mib_per_h: float
    rss_growth_mib: float
    fds_first: int
    fds_max: int
    fds_last: int
    fds_early: int  # the median over the first quarter of the steady state
    fds_late: int  # and over its last half
    fds_slope_per_h: float
    fds_kinds_early: dict[str, int]  # what the descriptors were at the first quarter's end
    fds_kinds_late: dict[str, int]  # and at the last sample
    steady_samples: int
    flat: bool


def trend(
    label: str,
    points: list[tuple[float, int, int]],
    plan: Plan,
    steady_from: float,
    kinds: list[dict[str, int]] | None = None,
) -> Series:
    """``points``: (simulated s, RSS bytes, descriptors). The verdict is on the steady state,
    the samples from ``steady_from`` (simulated s) on."""
    intervals = []
    for start in np.arange(0, max(p[0] for p in points) + 1e-9, plan.interval_s):
        inside = [p for p in points if start <= p[0] < start + plan.interval_s]
        if not inside:
            continue
        rss = [p[1] / MIB for p in inside]
        fds = [p[2] for p in inside]
        intervals.append(
            {
                "from_min": start / 60,
                "rss_first": rss[0], "rss_last": rss[-1], "rss_max": max(rss),
                "fds_first": fds[0], "fds_last": fds[-1], "fds_max": max(fds),
            }
        )  # fmt: skip
    steady = [p for p in points if p[0] >= steady_from] or points[-1:]
    hours = np.array([p[0] for p in steady]) / 3600
    rss = np.array([p[1] for p in steady]) / MIB
    fds = np.array([p[2] for p in steady], dtype=float)
    slope_rss = slope_fds = 0.0
    if len(steady) >= 3 and np.ptp(hours) > 0:
        slope_rss = float(np.polyfit(hours, rss, 1)[0])
        slope_fds = float(np.polyfit(hours, fds, 1)[0])
    growth = float(rss[-1] - rss[0])
    # Descriptors by their medians, the first quarter of the steady state against its last
    # half: a sample may fall inside a reconnection (a socket fewer) or a commit (SQLite's
    # journal open), but a descriptor left behind at each drop raises every later sample.
    quarter, half = max(len(fds) // 4, 1), len(fds) // 2
    early, late = round(float(np.median(fds[:quarter]))), round(float(np.median(fds[half:])))
    steady_kinds = (kinds or [{}] * len(points))[len(points) - len(steady) :]
    early_at, late_at = quarter - 1, len(fds) - 1
    flat = (
        growth <= plan.rss_growth_mib
        and slope_rss * plan.minutes / 60 <= plan.rss_growth_mib
        and late <= early + plan.fd_slack
    )
    return Series(
        label,
        intervals,
        round(slope_rss, 2),
        round(growth, 2),
        int(fds[0]),
        int(fds.max()),
        int(fds[-1]),
        early,
        late,
        round(slope_fds, 2),
        steady_kinds[early_at],
        steady_kinds[late_at],
        len(steady),
        bool(flat),
    )


def series_of(samples: list[Sample], plan: Plan, steady_from: float) -> list[Series]:
    labels = sorted({label for s in samples for label in s.processes}, key=_order)
    return [
        trend(
            label,
            [(s.sim_s, *s.processes[label]) for s in samples if label in s.processes],
            plan,
            steady_from,
            [s.kinds.get(label, {}) for s in samples if label in s.processes],
        )
        for label in labels
    ]


def _order(label: str) -> tuple[int, str]:
    return ({"controller": 0, "service": 2}.get(label, 1), label)


# --- the store's account -------------------------------------------------------------------


def alert_checks(database_url: str | None, deployment_id: int, reviewer: Reviewer) -> dict:
    """Every alert once: against the pipeline's counts, the re-alert window, the adjudication
    record and what the reviewer saw; and the deployment's end."""
    from sqlalchemy import func, select

    from openlfr.governance.audit import verify_chain
    from openlfr.store.db import open_store
    from openlfr.store.models import (
        Adjudication,
        Alert,
        Camera,
        Deployment,
        SnapshotTemplate,
        as_utc,
    )

    factory = open_store(database_url)
    with factory() as session:
        deployment = session.get(Deployment, deployment_id)
        cameras = session.scalars(select(Camera).where(Camera.deployment_id == deployment_id))
        alerts = session.scalars(
            select(Alert).where(Alert.deployment_id == deployment_id).order_by(Alert.raised_at)
        ).all()
        decisions = dict(
            session.execute(
                select(Adjudication.alert_id, func.count())
                .join(Alert, Alert.id == Adjudication.alert_id)
                .where(Alert.deployment_id == deployment_id)
                .group_by(Adjudication.alert_id)
            ).all()
        )
        decided_at = dict(
            session.execute(
                select(Adjudication.alert_id, Adjudication.decided_at)
                .join(Alert, Alert.id == Adjudication.alert_id)
                .where(Alert.deployment_id == deployment_id)
            ).all()
        )
        per_camera = {}
        for camera in cameras:
            stored = sum(1 for a in alerts if a.camera_id == camera.id)
            per_camera[camera.name] = {
                "frames": camera.frames,
                "frames_dropped": camera.frames_dropped,
                "faces_processed": camera.faces_processed,
                "alerts_raised": camera.alerts,  # the worker pipeline's own count
                "alerts_stored": stored,
                "error": camera.error,
                "crashes": camera.crashes,
                "restarts": camera.restarts,
            }
        duplicates = duplicate_alerts(
            [(a.camera_id, a.subject_id, a.raised_at.timestamp()) for a in alerts]
        )
        report = {
            "alerts": len(alerts),
            "per_camera": per_camera,
            "lost": sum(
                max(c["alerts_raised"] - c["alerts_stored"], 0) for c in per_camera.values()
            ),
            "extra": sum(
                max(c["alerts_stored"] - c["alerts_raised"], 0) for c in per_camera.values()
            ),
            "duplicates": duplicates,
            "adjudicated_once": sum(1 for a in alerts if decisions.get(a.id) == 1),
            "adjudicated_more_than_once": sum(1 for n in decisions.values() if n > 1),
            "unadjudicated": sum(1 for a in alerts if a.id not in decisions),
            "reviewer_saw_every_alert": reviewer.seen == {a.id for a in alerts},
            "reviewer_refusals": reviewer.refused,
            # The pipeline improves an alert with a stronger shot; after it has been decided,
            # that replaces the image the reviewer decided on (reported, not failed on).
            "updated_after_adjudication": sum(
                1
                for a in alerts
                if a.updated_at
                and a.id in decided_at
                and as_utc(a.updated_at) > as_utc(decided_at[a.id])
            ),
            "status": deployment.status,
            "end_reason": deployment.end_reason,
            "snapshot_rows_left": session.scalar(
                select(func.count())
                .select_from(SnapshotTemplate)
                .where(SnapshotTemplate.deployment_id == deployment_id)
            ),
            "audit_chain_intact": verify_chain(session).ok,
        }
    factory.kw["bind"].dispose()
    return report


def duplicate_alerts(alerts: list[tuple[int, int, float]], slack_s: float = 5.0) -> int:
    """Alerts (camera, subject, wall time raised) that follow another for the same subject on
    the same camera within the re-alert window: the pipeline promises one per window."""
    last: dict[tuple[int, int], float] = {}
    duplicates = 0
    for camera, subject, at in sorted(alerts, key=lambda a: a[2]):
        previous = last.get((camera, subject))
        if previous is not None and at - previous < REALERT_WINDOW_S - slack_s:
            duplicates += 1
            continue
        last[(camera, subject)] = at
    return duplicates


def drop_checks(cameras: list[dict], end: float) -> list[dict]:
    """Each drop against the reconnection after it: a drop is recovered when the camera saw a
    new connection before the next drop (or the deployment's hard end ``end``). A drop that
    came back too close to the end for the source's backoff (its next try comes within the
    drop's own length again, plus a second) is left out."""
    checks = []
    for i, log in enumerate(cameras):
        connections = sorted(log["connections"])
        recovered, delays = 0, []
        drops = [(d, u) for d, u in log["drops"] if u + (u - d) + 1.0 < end]
        for n, (_, up) in enumerate(drops):
            until = drops[n + 1][0] if n + 1 < len(drops) else end
            after = [c for c in connections if up <= c < until]
            if after:
                recovered += 1
                delays.append(after[0] - up)
        checks.append(
            {
                "camera": f"cam{i + 1}",
                "drops": len(drops),
                "recovered": recovered,
                "connections": len(connections),
                "max_reconnect_wall_s": round(max(delays), 2) if delays else None,
                "frames_sent": log["frames_sent"],
            }
        )
    return checks


# --- the run -------------------------------------------------------------------------------


def store_name(url: str | None) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).get_backend_name() if url else "sqlite"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def soak(plan: Plan, workdir: Path, progress: Any = None) -> dict:
    """Run one soak in ``workdir`` (its data directory and logs); returns the report."""
    say = progress or (lambda _: None)
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OPENLFR_HOME": str(home)}
    env.pop("OPENLFR_POLICY", None)
    if plan.database_url:
        env["OPENLFR_DATABASE_URL"] = plan.database_url
    else:
        env.pop("OPENLFR_DATABASE_URL", None)
    old_env = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    context = mp.get_context("spawn")
    ports_q, viewers_q, results_q = context.Queue(), context.Queue(), context.Queue()
    stop = context.Event()
    started: list[subprocess.Popen] = []
    camera_process = None
    try:
        camera_process = context.Process(
            target=serve_cameras,
            args=(plan, time.time(), ports_q, viewers_q, results_q, stop),
            daemon=True,
        )
        camera_process.start()
        ports = ports_q.get(timeout=120)
        say(f"cameras on ports {ports}")
        setup = time.time()
        write_policy(home)
        prepare_store(plan)
        say(f"store ready in {time.time() - setup:.1f} s")
        cli = [sys.executable, "-m", "openlfr.cli"]
        api_port = free_port()
        service_log = (workdir / "service.log").open("wb")
        service = subprocess.Popen(
            [*cli, "serve", "--port", str(api_port)], stdout=service_log, stderr=service_log
        )
        started.append(service)
        reviewer = Reviewer(f"http://127.0.0.1:{api_port}")
        reviewer.log_in()
        deployment_id = plan_deployment(plan, ports)
        reviewer.deployment_id = deployment_id
        controller_log = (workdir / "controller.log").open("wb")
        controller = subprocess.Popen(
            [*cli, "deployment", "run", str(deployment_id)],
            stdout=controller_log,
            stderr=controller_log,
        )
        started.append(controller)
        sampler = Sampler(controller.pid, service.pid)
        # Simulated time 0: when every camera has its viewer (the workers have loaded their
        # models); the deployment is stopped by an operator a simulated duration later.
        waiting = time.time()
        first_viewer: dict[int, float] = {}
        while len(first_viewer) < plan.cameras:
            if controller.poll() is not None or time.time() - waiting > plan.startup_s:
                log = (workdir / "controller.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the cameras were never all viewed:\n{log}")
            with contextlib.suppress(queue.Empty):
                camera, at = viewers_q.get(timeout=0.5)
                first_viewer[camera] = at
        begin = max(first_viewer.values())
        stop_at = begin + plan.wall(plan.minutes * 60)
        say(f"cameras viewed after {begin - waiting:.1f} s; running {stop_at - begin:.0f} s")
        next_sample = next_review = time.time()
        stopped: float | None = None
        while controller.poll() is None:
            now = time.time()
            if next_sample <= now < stop_at:
                sampler.sample((now - begin) * plan.speedup)
                next_sample += plan.wall(plan.sample_every_s)
            if now >= next_review:
                reviewer.review()
                next_review += plan.wall(plan.review_every_s)
            if now >= stop_at and stopped is None:
                subprocess.run(
                    [*cli, "deployment", "stop", str(deployment_id)],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
                stopped = time.time()
            if stopped is not None and now > stopped + 120:
                controller.kill()
                raise RuntimeError("the deployment did not stop: see controller.log")
            time.sleep(0.1)
        end = time.time()
        reviewer.review()  # what came in at the end
        stop.set()
        cameras = results_q.get(timeout=30)
        steady_from = plan.warm_up_s
        report = {
            "plan": {
                **{k: str(v) if isinstance(v, Path) else v for k, v in asdict(plan).items()},
                "database_url": store_name(plan.database_url),  # never its password
            },
            "controller_exit": controller.returncode,
            "start_s": round(begin - waiting, 1),  # from 'deployment run' to every camera viewed
            "stop_s": round(end - (stopped or end), 1),  # from 'deployment stop' to its exit
            "wall_s": round(stopped - begin, 1) if stopped else None,
            "simulated_min": round((stopped - begin) * plan.speedup / 60, 1) if stopped else None,
            "worker_pids": len(sampler.workers),
            "steady_from_min": round(steady_from / 60, 2),
            "series": [asdict(s) for s in series_of(sampler.samples, plan, steady_from)],
            "drops": drop_checks(cameras, stop_at),
            "alerts": alert_checks(plan.database_url, deployment_id, reviewer),
            "decisions": {
                d: list(reviewer.decided.values()).count(d) for d, _ in Reviewer.DECISIONS
            },
        }
        report["failures"] = failures(report, plan)
        return report
    finally:
        stop.set()
        for process in started:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        if camera_process is not None:
            camera_process.join(timeout=10)
            if camera_process.is_alive():
                camera_process.kill()
        os.environ.clear()
        os.environ.update(old_env)


def failures(report: dict, plan: Plan) -> list[str]:
    """What breaks the soak's promises, in words; empty when it held."""
    found = []
    for series in report["series"]:
        if not series["flat"]:
            found.append(
                f"{series['label']}: not flat (RSS +{series['rss_growth_mib']} MiB, slope "
                f"{series['rss_slope_mib_per_h']} MiB/h; fds "
                f"{series['fds_early']} {series['fds_kinds_early']} then "
                f"{series['fds_late']} {series['fds_kinds_late']})"
            )
    alerts = report["alerts"]
    if alerts["lost"] or alerts["extra"]:
        found.append(
            f"alerts: {alerts['lost']} lost, {alerts['extra']} beyond the pipeline's count"
        )
    if alerts["duplicates"]:
        found.append(f"alerts: {alerts['duplicates']} duplicate(s) within the re-alert window")
    if alerts["unadjudicated"] or alerts["adjudicated_more_than_once"]:
        found.append(
            f"adjudication: {alerts['unadjudicated']} alert(s) undecided, "
            f"{alerts['adjudicated_more_than_once']} decided more than once"
        )
    if not alerts["reviewer_saw_every_alert"] or alerts["reviewer_refusals"]:
        found.append(
            f"reviewer: saw other alerts than stored, or refused {alerts['reviewer_refusals']}"
        )
    if alerts["status"] != "ended" or alerts["end_reason"] != "stopped by an operator":
        found.append(f"deployment: {alerts['status']}, {alerts['end_reason']!r}")
    if alerts["snapshot_rows_left"]:
        found.append(f"deployment: {alerts['snapshot_rows_left']} snapshot rows left")
    if not alerts["audit_chain_intact"]:
        found.append("audit chain broken")
    for camera, counts in alerts["per_camera"].items():
        if counts["error"]:
            found.append(f"{camera}: {counts['error']}")
    for drop in report["drops"]:
        if drop["recovered"] < drop["drops"]:
            found.append(
                f"{drop['camera']}: {drop['drops'] - drop['recovered']} drop(s) never recovered"
            )
    return found


def show(report: dict) -> None:
    console = Console()
    plan = report["plan"]
    console.print(
        f"[bold]Soak[/bold]: {report['simulated_min']} simulated min in {report['wall_s']} wall s "
        f"(x{plan['speedup']:g}), {plan['cameras']} cameras, a drop every "
        f"{plan['drop_every_s']:g} s for {plan['drop_for_s']:g} s, store "
        f"{plan['database_url']}; cameras viewed {report['start_s']} s after 'deployment run', "
        f"which exited {report['stop_s']} s after 'deployment stop'"
    )
    for series in report["series"]:
        table = Table(title=f"{series['label']}: RSS (MiB) and open descriptors per interval")
        for column in ("from min", "RSS first", "last", "max", "fds first", "last", "max"):
            table.add_column(column, justify="right")
        for row in series["intervals"]:
            table.add_row(
                f"{row['from_min']:.0f}",
                *(f"{row[k]:.1f}" for k in ("rss_first", "rss_last", "rss_max")),
                *(str(row[k]) for k in ("fds_first", "fds_last", "fds_max")),
            )
        console.print(table)
        console.print(
            f"  steady state ({series['steady_samples']} samples): RSS slope "
            f"{series['rss_slope_mib_per_h']:+.2f} MiB per simulated hour, growth "
            f"{series['rss_growth_mib']:+.2f} MiB; fds {series['fds_first']} -> "
            f"{series['fds_last']} (median {series['fds_early']} in its first quarter, "
            f"{series['fds_late']} in its last half; "
            f"slope {series['fds_slope_per_h']:+.2f}/h)"
            f" -> {'flat' if series['flat'] else '[red]NOT FLAT[/red]'}"
        )
    table = Table(title="Camera drops")
    for column in (
        "camera",
        "drops",
        "recovered",
        "connections",
        "max reconnect (wall s)",
        "frames sent",
    ):
        table.add_column(column, justify="right")
    for drop in report["drops"]:
        table.add_row(
            *(
                str(drop[k])
                for k in (
                    "camera",
                    "drops",
                    "recovered",
                    "connections",
                    "max_reconnect_wall_s",
                    "frames_sent",
                )
            )
        )
    console.print(table)
    alerts = report["alerts"]
    table = Table(title="Alerts")
    for column in ("camera", "frames", "dropped", "faces", "raised", "stored"):
        table.add_column(column, justify="right")
    for camera, c in alerts["per_camera"].items():
        table.add_row(
            camera,
            *(
                str(c[k])
                for k in (
                    "frames",
                    "frames_dropped",
                    "faces_processed",
                    "alerts_raised",
                    "alerts_stored",
                )
            ),
        )
    console.print(table)
    console.print(
        f"  {alerts['alerts']} alerts: {alerts['lost']} lost, {alerts['extra']} extra, "
        f"{alerts['duplicates']} duplicates; adjudicated once {alerts['adjudicated_once']}, "
        f"more than once {alerts['adjudicated_more_than_once']}, undecided "
        f"{alerts['unadjudicated']} ({report['decisions']}); updated after adjudication "
        f"{alerts['updated_after_adjudication']}; deployment {alerts['status']} "
        f"({alerts['end_reason']}), snapshot rows left {alerts['snapshot_rows_left']}, audit "
        f"chain {'intact' if alerts['audit_chain_intact'] else 'BROKEN'}; worker processes "
        f"seen {report['worker_pids']}"
    )
    if report["failures"]:
        console.print("[red]FAILED[/red]:\n  " + "\n  ".join(report["failures"]))
    else:
        console.print("[green]held[/green]: memory and descriptors flat, every alert stored once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("OPENLFR_TEST_DATA", "../shared/data"))
    )
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated minutes")
    parser.add_argument("--speedup", type=float, default=6.0, help="simulated s per wall s")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--drop-every", type=float, default=240.0, help="simulated s")
    parser.add_argument("--drop-for", type=float, default=30.0, help="simulated s")
    parser.add_argument("--review-every", type=float, default=60.0, help="simulated s")
    parser.add_argument("--sample-every", type=float, default=20.0, help="simulated s")
    parser.add_argument("--interval", type=float, default=300.0, help="simulated s per row")
    parser.add_argument("--warm-up", type=float, default=300.0, help="simulated s left out")
    parser.add_argument("--rss-growth", type=float, default=16.0, help="MiB allowed")
    parser.add_argument("--fd-slack", type=int, default=1, help="descriptors allowed")
    parser.add_argument("--database-url", help="the store (default: SQLite in a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    plan = Plan(
        data=args.data,
        minutes=args.minutes,
        speedup=args.speedup,
        cameras=args.cameras,
        drop_every_s=args.drop_every,
        drop_for_s=args.drop_for,
        review_every_s=args.review_every,
        sample_every_s=args.sample_every,
        interval_s=args.interval,
        warm_up_s=args.warm_up,
        database_url=args.database_url,
        rss_growth_mib=args.rss_growth,
        fd_slack=args.fd_slack,
    )
    with tempfile.TemporaryDirectory(prefix="openlfr-soak-") as workdir:
        report = soak(plan, Path(workdir), progress=lambda m: print(m, flush=True))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    show(report)
    sys.exit(1 if report["failures"] else 0)


if __name__ == "__main__":
    main()
