"""Supervision of a deployment's camera workers: start one per camera, restart a crashed one
with backoff while the deployment runs, count what its gaps cost, stop them all at the end.

A worker *ends* when its source ends (``done``) or cannot be read (``error``: a file that is
not a video, a stream that cannot be opened; a restart would fail the same way). It *crashes*
when it dies any other way: killed by a signal, or an unexpected exception. A crash is recorded
with its cause (the exit signal or code, or the exception's type and message without personal
data) and the worker is restarted after 1, 2, 4... up to 30 s, for as long as the deployment
runs; the deployment still ends at its hard end, whatever its cameras do.

What the board shows about a camera beyond its counts is its ``CameraHealth`` (state, crashes,
restarts, the last crash, time down) with its frame rate and last frame time, in the camera's
own columns (migration 0008), written as the deployment runs; ``camera_record`` reads them
back. A running camera that has had no frame for ``RECONNECTING_AFTER_S`` is shown as
reconnecting: a live source keeps trying to reopen its stream, and a file does not stall.
A running camera that dropped more than ``LAGGING_DROP_SHARE`` of its frames over its last
``LAG_WINDOW`` counts (about 10 s; judged from 5 s on) is shown as lagging: it does not keep
up with its source. A camera waiting for a restart that has had no frame for ``DOWN_AFTER_S``
is shown as down, as is one whose cluster node is lost (the cluster controller writes that).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openlfr.live.pipeline import SEARCH_BUCKETS_S, AlertEvent, CameraCounts
from openlfr.live.worker import WorkerJob, camera_worker
from openlfr.store.models import (
    Adjudication,
    Alert,
    Camera,
    Deployment,
    Suppression,
    as_utc,
    utcnow,
)

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_S = 60.0  # a worker that ran this long before it crashed restarts after BACKOFF_FIRST_S
STOP_GRACE_S = 5.0  # a worker asked to stop that has not ended by then is killed
TRACK_IDS_PER_RUN = 1_000_000  # track ids a worker may use before the next one's begin
RECONNECTING_AFTER_S = 5.0  # a running camera without a new frame for this long
# A camera that keeps up with its source drops a frame now and then (a model's first call, a
# busy moment on the host): a few per cent. Over 10% for 10 s it is falling behind: the frames
# it searches are further apart, so tracks break and a face walking through is seen on fewer
# shots; the operator should know before faces are missed.
LAGGING_DROP_SHARE = 0.10
LAG_WINDOW = 10  # counts (one a second): the drop share is over the last 10 s
# ... and is judged only once it spans 5 s of a worker's counts after its first: a worker's
# first second holds its models' first calls and, for a file resumed after a restart, the
# frames it skips to catch up with where a live picture would be (the gap, not a lag)
LAG_MIN_COUNTS = 5
# One crash restarts in 1 s and its worker runs again within seconds (models load in 3-10 s on
# a busy 2-core host); a camera still without frames 30 s after its last one is crash-looping
# (its backoff has reached 8-16 s): its area is not covered, and the board says so.
DOWN_AFTER_S = 30.0


@dataclass
class CameraHealth:
    """A camera's state (planned, starting, running, restarting, ended, failed), its worker's
    crashes and restarts, the last crash's cause and time, the seconds it had no worker after a
    crash, and the error that stopped it for good, if one did."""

    state: str = "starting"
    crashes: int = 0
    restarts: int = 0
    last_crash: str | None = None
    last_crash_at: datetime | None = None
    down_s: float = 0.0
    error: str | None = None

    def store(self, camera: Camera) -> None:
        for name, value in asdict(self).items():
            setattr(camera, name, value)

    @classmethod
    def of(cls, camera: Camera, deployment_status: str) -> CameraHealth:
        """What the supervisor wrote; a camera that has not run yet is planned (or starting,
        if its deployment has just begun), one without a state after the end has ended."""
        health = cls(**{f.name: getattr(camera, f.name) for f in fields(cls)})
        health.crashes, health.restarts = health.crashes or 0, health.restarts or 0
        health.down_s = health.down_s or 0.0
        if camera.state is None:
            states = {"planned": "planned", "running": "starting"}
            health.state = "failed" if camera.error else states.get(deployment_status, "ended")
        return health


def camera_record(
    camera: Camera, deployment_status: str, now: datetime | None = None
) -> dict[str, Any]:
    """A camera as the API and ``deployment show`` present it: counts, rate and health."""
    health = CameraHealth.of(camera, deployment_status)
    last_frame = as_utc(camera.last_frame_at) if camera.last_frame_at else None
    now = now or utcnow()
    state = health.state
    silent_s = (now - last_frame).total_seconds() if last_frame else 0.0
    if deployment_status != "running" and state in {"starting", "running", "restarting", "down"}:
        state = "ended"  # a runner that died before it could say so
    elif state == "running" and silent_s > RECONNECTING_AFTER_S:
        state = "reconnecting"
    elif state == "running" and (camera.drop_rate or 0.0) > LAGGING_DROP_SHARE:
        state = "lagging"
    elif state in {"restarting", "starting"} and health.crashes:
        # out since its last frame; one that never had a frame, since its deployment began
        started = camera.deployment.started_at if camera.deployment is not None else None
        since = last_frame or (as_utc(started) if started else None) or health.last_crash_at
        if since is not None and (now - as_utc(since)).total_seconds() > DOWN_AFTER_S:
            state = "down"
    return {
        "id": camera.id,
        "name": camera.name,
        "source": camera.source,
        "frames": camera.frames,
        "frames_dropped": camera.frames_dropped,
        "faces_processed": camera.faces_processed,
        "alerts": camera.alerts,
        **asdict(health),
        "state": state,
        "down_s": round(health.down_s, 1),
        "fps": round(camera.fps, 1) if camera.fps is not None else None,
        "drop_rate": round(camera.drop_rate, 3) if camera.drop_rate is not None else None,
        "last_frame_at": last_frame,
        "node": camera.node,
        "resource": camera.resource,
    }


def end_reason(stop: str | None, deadline: float, *, operator_stop: bool = False) -> str | None:
    """Why a deployment must end now, or None: the hard end first, then a stop (a signal's or
    the runner's reason, or an operator's request in the store)."""
    if time.time() >= deadline:
        return "time limit reached"
    return stop or ("stopped by an operator" if operator_stop else None)


def exit_cause(exitcode: int | None) -> str:
    if exitcode is None:
        return "the worker vanished"
    if exitcode < 0:
        try:
            return f"killed by signal {-exitcode} ({signal.Signals(-exitcode).name})"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


@dataclass
class _Slot:
    """One camera under supervision: its current worker, if any, and its history."""

    camera: Camera
    job: WorkerJob
    health: CameraHealth = field(default_factory=CameraHealth)
    process: BaseProcess | None = None
    events: Connection | None = None
    control: Connection | None = None
    finished: bool = False  # its source ended or cannot be read: nothing to restart
    crash: str | None = None  # the cause its current worker reported before it died
    killed: bool = False  # the supervisor killed it at the end: not a crash
    runs: int = 0
    restart_at: float = 0.0  # time.monotonic() when the next worker is due
    run_started: float = 0.0
    down_since: float | None = None
    streak: int = 0  # crashes in a row, each within STABLE_S of its start
    live: bool = False
    rate: float = 0.0  # frames per second a live source delivered (to count a gap's frames)
    base: CameraCounts = field(default_factory=CameraCounts)  # what earlier workers counted
    counts: CameraCounts = field(default_factory=CameraCounts)  # the current worker's
    counted_at: float = 0.0  # time.monotonic() of the current worker's last counts
    # (frames delivered, frames dropped) at the current worker's last counts: the drop share
    recent: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=LAG_WINDOW + 1))


class CameraSupervisor:
    """Runs ``jobs`` (one per camera of ``deployment``) until every source ends, the deadline,
    or ``stop_reason()`` returns a reason; writes alerts, counts and health to ``session``."""

    def __init__(
        self,
        session: Session,
        deployment: Deployment,
        jobs: list[WorkerJob],
        reference: dict[int, bytes],
        *,
        on_alert: Callable[[AlertEvent], None] | None,
        poll_s: float,
        stop_reason: Callable[[], str | None],
    ) -> None:
        self.session, self.deployment, self.reference = session, deployment, reference
        self.on_alert, self.poll_s, self.stop_reason = on_alert, poll_s, stop_reason
        cameras = {c.id: c for c in deployment.cameras}
        self.slots = [_Slot(cameras[job.camera_id], job) for job in jobs]
        self.deadline = jobs[0].deadline
        self.context = mp.get_context("spawn")  # a clean interpreter per camera, as on a cluster
        self.reason: str | None = None
        self._stop_at = 0.0
        self._last_suppression = 0
        self._controls = {s.camera.name: _Control(s) for s in self.slots}
        # (camera id, subject id) -> (alert id, best score, when raised), across worker runs
        self._raised: dict[tuple[int, int], tuple[str, float, float]] = {}
        self._aliases: dict[str, str] = {}  # a restarted worker's alert id -> the stored one's

    def run(self) -> str:
        """Supervise until the end; returns the deployment's end reason. Whatever happens,
        no worker is left running when it returns or raises."""
        try:
            self._loop()
        finally:
            self._kill_all()
        for slot in self.slots:
            slot.health.state = "failed" if slot.health.error else "ended"
            slot.health.store(slot.camera)
        if all(slot.health.error for slot in self.slots):
            return "failed: no camera could run"
        return self.reason or "every camera's source ended"

    def _kill_all(self) -> None:
        """The end, however it came: no worker may outlive it (a cluster's runner kills its
        actors here instead)."""
        for slot in self.slots:
            if slot.process is not None:
                slot.killed = True
                slot.process.kill()
                self._ended(slot)

    def _loop(self) -> None:
        next_check = 0.0
        while True:
            now = time.monotonic()
            if now >= next_check:
                next_check = now + self.poll_s
                self._check_store()
            if self.reason is None and (reason := end_reason(self.stop_reason(), self.deadline)):
                self._stop_all(reason)
            if self.reason is None:
                for slot in self.slots:
                    if slot.process is None and not slot.finished and now >= slot.restart_at:
                        self._start(slot)
            running = [s for s in self.slots if s.process is not None]
            if not running and (self.reason or all(s.finished for s in self.slots)):
                return
            if self.reason and now >= self._stop_at:
                for slot in running:  # asked to stop, and still not ended
                    slot.killed = True
                    slot.process.kill()  # type: ignore[union-attr]
            timeout = self.poll_s
            # the cameras due a restart (an ended one has nothing to wait for)
            idle = [s for s in self.slots if s.process is None and not s.finished]
            waiting = [s.restart_at - now for s in idle]
            if self.reason is None and waiting:
                timeout = min(timeout, max(0.01, min(waiting)))
            for conn in wait([s.events for s in running], timeout=timeout):  # type: ignore[misc]
                self._read(next(s for s in running if s.events is conn))
            self.session.commit()

    def _check_store(self) -> None:
        """Stop requests and suppressions, read once per poll interval (not once per event: a
        busy camera sends many events a second)."""
        self.session.refresh(self.deployment, ["stop_requested"])
        if self.deployment.stop_requested and self.reason is None:
            self._stop_all("stopped by an operator")
        if self.deployment.suppress_no_match:
            self._last_suppression = forward_suppressions(
                self.session, self.deployment.id, self._last_suppression, self._controls
            )

    def _start(self, slot: _Slot) -> None:
        job = slot.job
        job.first_track_id = slot.runs * TRACK_IDS_PER_RUN + 1
        events_in, events_out = self.context.Pipe(duplex=False)
        control_in, control_out = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=camera_worker,
            args=(job, events_out, control_in),
            name=f"openlfr-camera-{slot.camera.name}",
            daemon=True,
        )
        process.start()
        # The parent keeps only its own ends: the worker's death then reads as the end of
        # ``events``, and closing ``control`` reaches the worker as its end.
        events_out.close()
        control_in.close()
        if slot.runs:
            slot.health.restarts += 1
            log.warning("camera %s: worker restarted (restart %d)", slot.camera.name, slot.runs)
        slot.process, slot.events, slot.control = process, events_in, control_out
        slot.runs += 1
        slot.crash, slot.killed, slot.counts = None, False, CameraCounts()
        slot.counted_at = 0.0
        slot.run_started = time.monotonic()
        slot.health.state = "starting"
        slot.health.store(slot.camera)

    def _stop_all(self, reason: str) -> None:
        self.reason = reason
        self._stop_at = time.monotonic() + STOP_GRACE_S
        for slot in self.slots:
            if slot.control is not None:
                slot.control.close()
                slot.control = None

    def _read(self, slot: _Slot) -> None:
        assert slot.events is not None
        for _ in range(100):  # then the other cameras' turn
            try:
                if not slot.events.poll():
                    return
                kind, payload = slot.events.recv()
            except (EOFError, OSError):  # the worker has gone (a message cut short included)
                self._ended(slot)
                return
            self._handle(slot, kind, payload)
            if kind == "done":  # its last word: reap it now rather than wait for the pipe
                self._ended(slot)
                return

    def _handle(self, slot: _Slot, kind: str, payload: Any) -> None:
        camera = slot.camera
        if kind == "alert":
            if time.time() > self.deadline:
                return  # raised after the hard end: not a lawful alert, not kept
            payload = self._one_alert_per_window(slot, payload)
            if payload is None:
                return
            if not _store_alert(self.session, self.deployment, camera, payload, self.reference):
                return
            self.session.commit()  # before the callback, which may tell a reviewer to fetch it
            if self.on_alert:
                self.on_alert(payload)
        elif kind == "counts":
            _rate(camera, slot, payload)
            slot.counts = payload
            _store_counts(camera, slot.base, payload)
        elif kind == "started":
            origin, slot.live = payload
            if slot.job.origin is None:
                slot.job.origin = origin
            if slot.down_since is not None:
                gap = time.monotonic() - slot.down_since
                slot.health.down_s += gap
                if slot.live:  # a file's missed frames are counted by its next worker
                    slot.base.frames_dropped += round(gap * slot.rate)
                slot.down_since = None
            slot.health.state = "running"
            slot.health.store(camera)
            _store_counts(camera, slot.base, slot.counts)
        elif kind == "error":
            slot.health.error = payload
            log.error("camera %s: %s", camera.name, payload)
        elif kind == "crash":
            slot.crash = payload
        elif kind == "done":
            slot.finished = True

    def _one_alert_per_window(self, slot: _Slot, event: AlertEvent) -> AlertEvent | None:
        """A restarted camera forgets the alerts its last run raised: a person still in view
        would raise a second alert within the re-alert window. The controller remembers them
        across runs, so such an alert becomes a stronger shot of the stored one (or nothing,
        if it is not stronger). The camera's alert count comes from its runs' counts, as on one
        machine: a run killed within a second of an alert may leave it one off."""
        key = (slot.camera.id, event.subject_id)
        now = time.monotonic()
        alias = self._aliases.get(event.alert_id)
        previous = self._raised.get(key)
        window = slot.job.config.realert_window_s
        fresh = previous is None or now - previous[2] > window
        if alias is None and event.kind == "new" and not fresh:
            assert previous is not None
            alias = self._aliases[event.alert_id] = previous[0]
        if alias is not None and previous is not None:
            if event.score <= previous[1]:
                return None
            event = replace(event, alert_id=alias, kind="update")
        same = previous is not None and previous[0] == event.alert_id
        self._raised[key] = (event.alert_id, event.score, previous[2] if same else now)
        return event

    def _ended(self, slot: _Slot) -> None:
        """The worker has said ``done`` or its events pipe has closed: it ended, crashed or was
        killed. One that does not exit within STOP_GRACE_S is killed."""
        process = slot.process
        assert process is not None and slot.events is not None
        process.join(timeout=STOP_GRACE_S)  # its pipe has closed: it is on its way out
        if process.is_alive():
            process.kill()
            process.join()
        slot.events.close()
        if slot.control is not None:
            slot.control.close()
        exitcode = process.exitcode
        process.close()
        slot.process = slot.events = slot.control = None
        self._worker_gone(slot, exit_cause(exitcode))

    def _worker_gone(self, slot: _Slot, died: str) -> None:
        """What a worker's end means for its camera, wherever it ran: its counts carried over,
        and either the camera's end or a crash (``slot.crash``, else ``died``) with its
        restart due after the backoff."""
        now = time.monotonic()
        ran = now - slot.run_started
        slot.base = _plus(slot.base, slot.counts)
        if slot.live and ran > 0 and slot.counts.frames:
            slot.rate = (slot.counts.frames + slot.counts.frames_dropped) / ran
        slot.counts = CameraCounts()
        slot.camera.fps = slot.camera.drop_rate = None  # no worker, no rate: the state shows
        _store_counts(slot.camera, slot.base, slot.counts)
        if slot.finished or slot.killed or slot.health.error:
            slot.finished = True
            slot.health.state = "failed" if slot.health.error else "ended"
            slot.health.store(slot.camera)
            return
        cause = slot.crash or died
        slot.health.crashes += 1
        slot.health.last_crash = cause
        slot.health.last_crash_at = utcnow()
        slot.streak = 1 if ran >= STABLE_S else slot.streak + 1
        delay = min(BACKOFF_FIRST_S * 2 ** (slot.streak - 1), BACKOFF_MAX_S)
        slot.restart_at = now + delay
        slot.down_since = slot.down_since or now
        slot.health.state = "restarting"
        slot.health.store(slot.camera)
        log.error(
            "camera %s: worker crashed (%s); restart in %.0f s", slot.camera.name, cause, delay
        )


class _Control:
    """A camera's current worker, as somewhere to ``put`` a suppression."""

    def __init__(self, slot: _Slot) -> None:
        self.slot = slot

    def put(self, suppression: tuple[int, int]) -> None:
        if self.slot.control is None:
            return  # between workers: the next one has new track ids, so nothing is lost
        # OSError: that worker has just died (same as above)
        with contextlib.suppress(OSError):
            self.slot.control.send(suppression)


def forward_suppressions(
    session: Session, deployment_id: int, after_id: int, queues: dict[str, Any]
) -> int:
    """Put each suppression recorded since ``after_id`` to its camera (``queues``: camera name
    -> anything with ``put``); returns the last id seen."""
    rows = session.scalars(
        select(Suppression)
        .where(Suppression.deployment_id == deployment_id, Suppression.id > after_id)
        .order_by(Suppression.id)
    ).all()
    for row in rows:
        if row.camera in queues:
            queues[row.camera].put((row.track, row.subject_id))
        after_id = row.id
    return after_id


def _rate(camera: Camera, slot: _Slot, counts: CameraCounts) -> None:
    """Frames per second the camera delivered since its worker's last counts (about 1 s, so
    the board's figure is current, not a run's average), and when its last frame came."""
    now = time.monotonic()
    delivered = counts.frames + counts.frames_dropped
    before = slot.counts.frames + slot.counts.frames_dropped
    if delivered > before:
        camera.last_frame_at = utcnow()
    if slot.counted_at and now > slot.counted_at:
        camera.fps = (delivered - before) / (now - slot.counted_at)
    else:  # a new worker's first counts: its drop share is counted from them on
        slot.recent.clear()
    slot.recent.append((delivered, counts.frames_dropped))
    judged = len(slot.recent) > LAG_MIN_COUNTS
    camera.drop_rate = drop_share(slot.recent) if judged else None
    slot.counted_at = now


def drop_share(recent: deque[tuple[int, int]]) -> float | None:
    """The share of frames dropped between the oldest and newest (delivered, dropped) counts;
    None when no frame was delivered between them."""
    (delivered_then, dropped_then), (delivered, dropped) = recent[0], recent[-1]
    if delivered <= delivered_then:
        return None
    return (dropped - dropped_then) / (delivered - delivered_then)


def _plus(a: CameraCounts, b: CameraCounts) -> CameraCounts:
    def add(x: Any, y: Any) -> Any:  # a histogram's buckets add up one by one
        return tuple(i + j for i, j in zip(x, y, strict=True)) if isinstance(x, tuple) else x + y

    return CameraCounts(**{f.name: add(getattr(a, f.name), getattr(b, f.name)) for f in fields(a)})


def _store_counts(camera: Camera, base: CameraCounts, current: CameraCounts) -> None:
    total = _plus(base, current)
    camera.frames, camera.frames_dropped = total.frames, total.frames_dropped
    camera.faces_processed, camera.alerts = total.faces_processed, total.alerts
    camera.searches, camera.search_s = total.searches, total.search_s
    # with its bounds, so that a row written before the buckets changed still reads right
    camera.search_hist = json.dumps({"le": SEARCH_BUCKETS_S, "counts": total.search_hist})


def _store_alert(
    session: Session,
    deployment: Deployment,
    camera: Camera,
    event: AlertEvent,
    reference: dict[int, bytes],
) -> bool:
    """Store a new alert, or a stronger shot of one not yet adjudicated; False when the shot
    was not kept because a reviewer has decided on the evidence as it stood (a decision must
    stay on the images it was made on)."""
    alert = session.get(Alert, event.alert_id)
    if alert is None:
        session.add(
            Alert(
                id=event.alert_id,
                deployment_id=deployment.id,
                camera_id=camera.id,
                track=event.track,
                frame=event.frame,
                time_s=event.time_s,
                subject_id=event.subject_id,
                subject_name=event.subject,
                score=event.score,
                similarity=event.similarity,
                box=event.box,
                latency_s=event.latency_s,
                probe_image=event.probe_jpeg,
                reference_image=reference[event.subject_id],
            )
        )
        return True
    decided = session.scalar(select(Adjudication.id).where(Adjudication.alert_id == alert.id))
    if decided is not None:
        return False
    # a stronger shot of the same person: better evidence for the reviewer
    alert.track, alert.frame, alert.time_s = event.track, event.frame, event.time_s
    alert.score, alert.similarity, alert.box = event.score, event.similarity, event.box
    alert.probe_image, alert.updated_at = event.probe_jpeg, utcnow()
    return True
