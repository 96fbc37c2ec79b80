"""Deployments: create, freeze the watchlist, run the cameras until the hard end, destroy the copy.

    >>> d = create_deployment(session, name="Oxford St", location="Oxford Circus, north exit",
    ...                       reason="...", watchlist="wanted", starts_at=..., ends_at=...,
    ...                       cameras={"north": "rtsp://10.0.0.5/stream"}, created_by="insp1")
    >>> run_deployment(session_factory, d.id)      # blocks until the end time or a stop

Each camera runs in its own worker process (``openlfr.live.worker``): the frozen templates in,
alert events and counts out through a pipe; a worker cannot outlive the process that runs the
deployment, and a crashed one is restarted with backoff (``openlfr.live.supervisor``). The
parent process alone writes to the store. Whatever ends a deployment (its end time,
``openlfr deployment stop``, a stop from its own process, a failure, or the next start after a
crash) destroys its watchlist snapshot.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from openlfr.errors import NotFoundError, OpenLFRError, PolicyError
from openlfr.governance import audit
from openlfr.governance.authorisation import check_can_start, check_threshold, deployment_model
from openlfr.governance.cameras import check_cameras
from openlfr.governance.policy import Policy, load_policy
from openlfr.governance.review import flag_expired
from openlfr.live.pipeline import LiveConfig
from openlfr.live.supervisor import CameraSupervisor, end_reason
from openlfr.live.worker import WorkerJob, share_graph, shares_graph
from openlfr.matching import default_threshold
from openlfr.matching.shared import SharedGraph
from openlfr.store.models import (
    Camera,
    Deployment,
    ReferenceImage,
    SnapshotTemplate,
    Subject,
    Template,
    as_utc,
    utcnow,
)
from openlfr.store.watchlists import get_watchlist, load_templates
from openlfr.vision.models import get_model

log = logging.getLogger(__name__)


class DeploymentError(OpenLFRError):
    """A deployment cannot be created, started or run as asked."""


def create_deployment(
    session: Session,
    *,
    name: str,
    location: str,
    reason: str,
    watchlist: str,
    starts_at: datetime,
    ends_at: datetime,
    cameras: dict[str, str],
    created_by: str,
    threshold: float | None = None,
    policy: Policy | None = None,
    area: str = "",
    dpia_ref: str = "",
    equality_ref: str = "",
    signage_confirmed: bool = False,
    threshold_override_reason: str | None = None,
    model: str | None = None,
    resources: dict[str, str] | None = None,
) -> Deployment:
    """Record a planned deployment; refuses an empty reason, no camera, a past end, a length
    the policy does not allow, and a threshold below the policy's minimum without a written
    override reason (the override is audited). It still needs authorising before it runs.

    ``model`` is the face model it will search with (default: the configured one), fixed now:
    its watchlist must hold that model's templates when it starts. ``resources`` (camera name
    -> Ray custom resource) pins cameras to the cluster nodes that can reach them."""
    policy = policy or load_policy()
    model = get_model(model).name
    wl = get_watchlist(session, watchlist)  # must exist now; it is frozen at start
    current = sum(1 for s in wl.subjects if not s.expired(utcnow().date()))
    check_threshold(threshold, current, threshold_override_reason, policy, model)
    starts_at, ends_at = as_utc(starts_at), as_utc(ends_at)
    if not reason.strip() or not location.strip():
        raise DeploymentError("a deployment needs a location and a written reason")
    if ends_at <= starts_at:
        raise DeploymentError("a deployment must end after it starts")
    if ends_at <= utcnow():
        raise DeploymentError(f"the end time {ends_at:%Y-%m-%d %H:%M} UTC has already passed")
    if not cameras:
        raise DeploymentError("a deployment needs at least one camera")
    unknown = sorted(set(resources or {}) - set(cameras))
    if unknown:
        raise DeploymentError(f"a resource names no camera of the deployment: {unknown}")
    hours = (ends_at - starts_at).total_seconds() / 3600
    if hours > policy.deployment.max_hours:
        raise PolicyError(
            f"a deployment of {hours:.1f} h is longer than the policy's "
            f"{policy.deployment.max_hours:g} h"
        )
    check_cameras(cameras, policy.cameras)  # no file, host or device the policy does not allow
    deployment = Deployment(
        name=name,
        location=location,
        reason=reason,
        watchlist_name=watchlist,
        threshold=threshold,
        model=model,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=created_by,
        status="planned",
        stop_requested=False,
        area=area,
        dpia_ref=dpia_ref,
        equality_ref=equality_ref,
        signage_confirmed=signage_confirmed,
        threshold_override_reason=(threshold_override_reason or "").strip() or None,
    )
    deployment.cameras = [
        Camera(
            name=cam,
            source=src,
            resource=(resources or {}).get(cam),
            frames=0,
            frames_dropped=0,
            faces_processed=0,
            alerts=0,
        )
        for cam, src in cameras.items()
    ]
    session.add(deployment)
    session.flush()
    if deployment.threshold_override_reason and threshold is not None:
        audit.append(
            session,
            actor=created_by,
            action="threshold-override",
            obj=f"deployment:{deployment.id}:threshold={threshold:g}",
            purpose=deployment.threshold_override_reason[:500],
        )
    return deployment


def get_deployment(session: Session, deployment_id: int) -> Deployment:
    deployment = session.get(Deployment, deployment_id)
    if deployment is None:
        raise NotFoundError(f"no deployment {deployment_id} (see 'openlfr deployment list')")
    return deployment


def freeze_snapshot(session: Session, deployment: Deployment, policy: Policy | None = None) -> int:
    """Copy the watchlist's current, unexpired templates of the deployment's face model, with
    their images; refuses a list larger than the policy allows, and one whose current subjects
    lack templates of that model (saying how many, and how to make them)."""
    policy = policy or load_policy()
    watchlist = get_watchlist(session, deployment.watchlist_name)
    model = deployment_model(deployment)
    today = utcnow().date()
    lacking = load_templates(session, watchlist, model=model, today=today).without_template
    if lacking:
        raise DeploymentError(
            f"{len(lacking)} current subject(s) of watchlist {watchlist.name!r} have no "
            f"{model} template: run 'openlfr watchlist re-embed {watchlist.name} --model {model}'"
        )
    rows = session.execute(
        select(Subject, ReferenceImage.content, Template.embedding)
        .join(ReferenceImage, ReferenceImage.subject_id == Subject.id)
        .join(Template, Template.image_id == ReferenceImage.id)
        .where(Subject.watchlist_id == watchlist.id, Template.model == model)
    ).all()
    subjects = set()
    flag_expired(session, today)  # left out below, and flagged so that someone reviews them
    for subject, image, embedding in rows:
        if subject.expired(today):
            continue
        subjects.add(subject.id)
        session.add(
            SnapshotTemplate(
                deployment_id=deployment.id,
                subject_id=subject.id,
                subject_name=subject.name,
                model=model,
                embedding=embedding,
                image=image,
            )
        )
    if not subjects:
        raise DeploymentError(f"watchlist {watchlist.name!r} has no current subject to search for")
    if len(subjects) > policy.watchlist.max_subjects_per_deployment:
        raise PolicyError(
            f"watchlist {watchlist.name!r} has {len(subjects)} current subjects; the policy "
            f"allows {policy.watchlist.max_subjects_per_deployment} per deployment"
        )
    session.flush()
    return len(subjects)


def destroy_snapshot(session: Session, deployment: Deployment) -> None:
    session.execute(delete(SnapshotTemplate).where(SnapshotTemplate.deployment_id == deployment.id))


def end_deployment(session: Session, deployment: Deployment, reason: str) -> None:
    destroy_snapshot(session, deployment)
    deployment.status = "ended"
    deployment.ended_at = utcnow()
    deployment.end_reason = reason
    deployment.runner_pid = None
    session.commit()


def _runner_alive(deployment: Deployment) -> bool:
    if deployment.runner_host != socket.gethostname():
        return True  # run from another machine: only that machine can tell
    if deployment.runner_pid is None:
        return False
    try:
        os.kill(deployment.runner_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_crashed(session: Session) -> list[int]:
    """End every deployment marked running whose runner is gone; returns their ids."""
    recovered = []
    for deployment in session.scalars(select(Deployment).where(Deployment.status == "running")):
        if not _runner_alive(deployment):
            end_deployment(session, deployment, "recovered after the runner stopped unexpectedly")
            recovered.append(deployment.id)
    return recovered


def request_stop(session: Session, deployment_id: int) -> None:
    deployment = get_deployment(session, deployment_id)
    if deployment.status != "running":
        raise DeploymentError(f"deployment {deployment_id} is {deployment.status}, not running")
    deployment.stop_requested = True
    session.commit()


class StopRequest:
    """A stop asked of a deployment from inside the process that runs it (a signal, the
    service shutting down), without a round trip to the store. ``request`` only assigns an
    attribute, so it is safe to call from a signal handler."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason


def run_deployment(
    session_factory: sessionmaker[Session],
    deployment_id: int,
    *,
    on_alert: Any = None,
    poll_s: float = 0.5,
    stop: StopRequest | None = None,
    cluster: str | None = None,
) -> Deployment:
    """Start a deployment, run every camera until the end time or a stop (``openlfr deployment
    stop``, or ``stop.request(reason)`` from this process), then end it. A crashed camera
    worker is restarted with backoff while it runs (``openlfr.live.supervisor``).

    ``cluster`` (a Ray head's HOST:PORT) runs each camera as an actor on that cluster instead
    (``openlfr.live.cluster``); the cluster is joined and checked before anything is copied."""
    with session_factory() as session:
        recover_crashed(session)
        deployment = get_deployment(session, deployment_id)
        if deployment.status != "planned":
            raise DeploymentError(f"deployment {deployment_id} is {deployment.status}")
        now = utcnow()
        if now >= as_utc(deployment.ends_at):
            raise DeploymentError(f"deployment {deployment_id} ended at {deployment.ends_at}")
        if now < as_utc(deployment.starts_at):
            raise DeploymentError(
                f"deployment {deployment_id} is authorised from {deployment.starts_at} UTC"
            )
        policy = load_policy()
        if not deployment.authorised_by or not deployment.signage_confirmed:
            check_can_start(deployment, 1, policy)  # says which is missing, before any copy
        with contextlib.ExitStack() as joined:
            # an address nobody answers on, or an unsafe cluster, fails here: nothing started
            config = joined.enter_context(_cluster(cluster)) if cluster else None
            return _start_and_run(session, deployment, policy, on_alert, poll_s, stop, config)
    raise AssertionError("unreachable")  # pragma: no cover


def _cluster(address: str) -> contextlib.AbstractContextManager[dict[str, Any]]:
    try:
        from openlfr.live.cluster import connected
    except ImportError as exc:
        raise DeploymentError(
            "running on a cluster needs Ray: install OpenLFR's 'cluster' extra (pip install ray)"
        ) from exc
    return connected(address)


def _start_and_run(
    session: Session,
    deployment: Deployment,
    policy: Policy,
    on_alert: Any,
    poll_s: float,
    stop: StopRequest | None,
    cluster_config: dict[str, Any] | None,
) -> Deployment:
    """Freeze the snapshot, mark the deployment running, run its cameras, end it."""
    now = utcnow()
    size = freeze_snapshot(session, deployment, policy)
    check_can_start(deployment, size, policy)  # the threshold, against the frozen size
    audit.append(
        session,
        actor=deployment.authorised_by or "system",
        action="deployment-run",
        obj=f"deployment:{deployment.id}:subjects={size}",
        purpose="watchlist frozen, cameras starting",
    )
    deployment.status, deployment.started_at = "running", now
    deployment.runner_pid, deployment.runner_host = os.getpid(), socket.gethostname()
    deployment.snapshot_size = size
    session.commit()
    try:
        _run_cameras(session, deployment, on_alert, poll_s, stop, cluster_config)
    except BaseException:
        session.rollback()
        end_deployment(session, deployment, "failed: the runner stopped on an error")
        raise
    return deployment


def _run_cameras(
    session: Session,
    deployment: Deployment,
    on_alert: Any,
    poll_s: float,
    stop: StopRequest | None,
    cluster_config: dict[str, Any] | None = None,
) -> None:
    snapshot = session.scalars(
        select(SnapshotTemplate).where(SnapshotTemplate.deployment_id == deployment.id)
    ).all()
    embeddings = np.stack([np.frombuffer(t.embedding, dtype="<f4") for t in snapshot])
    subject_ids = np.array([t.subject_id for t in snapshot], dtype=np.int64)
    names = {t.subject_id: t.subject_name for t in snapshot}
    reference = {t.subject_id: t.image for t in snapshot}  # first image per subject is enough
    model = deployment_model(deployment)
    threshold = deployment.threshold or default_threshold(len(names), model)
    deadline = as_utc(deployment.ends_at).timestamp()
    # A list of millions: its graph is built here, once, not by every camera (matching/shared.py)
    built = _build_watching(
        session, deployment, stop, poll_s, deadline, (embeddings, subject_ids, names, model)
    )
    if isinstance(built, str):
        end_deployment(session, deployment, built)
        return
    embeddings, subject_ids, graph = built
    try:
        jobs = [
            WorkerJob(
                camera.id,
                camera.name,
                camera.source,
                embeddings,
                subject_ids,
                names,
                LiveConfig(threshold=threshold),
                deadline,
                model,
                graph=graph,
            )
            for camera in deployment.cameras
        ]
        _supervise(session, deployment, jobs, reference, on_alert, poll_s, stop, cluster_config)
    finally:
        if graph is not None:
            graph.close()  # the graph's memory goes with the last worker holding it


def _build_watching(
    session: Session,
    deployment: Deployment,
    stop: StopRequest | None,
    poll_s: float,
    deadline: float,
    snapshot: tuple[np.ndarray, np.ndarray, dict[int, str], str],
) -> tuple[np.ndarray | None, np.ndarray, SharedGraph | None] | str:
    """``share_graph`` in a thread, while the stop requests and the hard end are watched as the
    cameras' supervisor watches them: a large list's build takes minutes, and a stop must not
    wait for it. Returns what the jobs carry, or the reason the deployment ended first (the
    build is then abandoned, and its graph, should it finish, closed)."""
    if not shares_graph(len(snapshot[0])):  # nothing to build: no thread
        return snapshot[0], snapshot[1], None
    result: list[Any] = []
    lock = threading.Lock()
    abandoned = threading.Event()

    def build() -> None:
        try:
            built = share_graph(*snapshot)
        except BaseException as exc:  # raised in the runner below
            built = exc
        with lock:
            if abandoned.is_set() and not isinstance(built, BaseException) and built[2]:
                built[2].close()  # nobody will use it: its memory goes now
            result.append(built)

    builder = threading.Thread(target=build, name="openlfr-graph-build", daemon=True)
    builder.start()
    while True:
        builder.join(timeout=min(poll_s, 1.0))
        with lock:
            if result:
                if isinstance(result[0], BaseException):
                    raise result[0]
                return result[0]
            session.refresh(deployment, ["stop_requested"])
            stopped = stop.reason if stop is not None else None
            reason = end_reason(stopped, deadline, operator_stop=deployment.stop_requested)
            if reason:
                abandoned.set()
                log.warning("deployment %s ended while its graph was being built", deployment.id)
                return reason


def _supervise(
    session: Session,
    deployment: Deployment,
    jobs: list[WorkerJob],
    reference: dict[int, bytes],
    on_alert: Any,
    poll_s: float,
    stop: StopRequest | None,
    cluster_config: dict[str, Any] | None,
) -> None:
    options: dict[str, Any] = {
        "on_alert": on_alert,
        "poll_s": poll_s,
        "stop_reason": lambda: stop.reason if stop is not None else None,
    }
    if cluster_config is None:
        supervisor = CameraSupervisor(session, deployment, jobs, reference, **options)
    else:
        from openlfr.live.cluster import ClusterSupervisor

        supervisor = ClusterSupervisor(
            session, deployment, jobs, reference, config=cluster_config, **options
        )
    end_deployment(session, deployment, supervisor.run())
