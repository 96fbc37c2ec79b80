"""Live alerts: an in-process broadcaster for Server-Sent Events, the deployments this server
runs in background threads, and a poller that picks up alerts written by other processes
(``openlfr deployment run`` on the same store)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, defer, sessionmaker

from openlfr.errors import OpenLFRError
from openlfr.live.deployment import (
    DeploymentError,
    StopRequest,
    get_deployment,
    run_deployment,
)
from openlfr.notify.pushes import alert_pusher
from openlfr.store.models import Alert, Camera, Deployment

log = logging.getLogger(__name__)


class Broadcaster:
    """Fan-out of small event dicts from any thread to every connected event-stream client.

    Each alert is announced once per version (its id and its last update), however many paths
    report it: the deployment thread's callback and the store poller may both see it."""

    # Versions remembered: far more than the poller's window of recent alerts (200), so an
    # alert it can still see is never announced twice, and a server up for months stays small.
    SEEN_LIMIT = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = set()
        self._seen: OrderedDict[str, str] = OrderedDict()
        self.closed = False

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        with self._lock:
            self._clients.add((asyncio.get_running_loop(), queue))
            if self.closed:
                _end(queue)
        return queue

    def close(self) -> None:
        """The service is stopping: every stream gets ``SHUTDOWN`` and ends, so that no client
        holds the shutdown open (the server waits for open responses before it stops)."""
        with self._lock:
            self.closed = True
            clients = list(self._clients)
        for loop, queue in clients:
            with contextlib.suppress(RuntimeError):  # that client's loop has closed
                loop.call_soon_threadsafe(_end, queue)

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        with self._lock:
            self._clients = {c for c in self._clients if c[1] is not queue}

    def publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            clients = list(self._clients)
        for loop, queue in clients:
            try:
                loop.call_soon_threadsafe(_offer, queue, event)
            except RuntimeError:  # that client's loop has closed
                self.unsubscribe(queue)

    def publish_alert(self, alert_id: str, version: str, event: dict[str, Any]) -> None:
        with self._lock:
            if self._seen.get(alert_id) == version:
                return
            self._remember(alert_id, version)
        self.publish(event)

    def mark_seen(self, alert_id: str, version: str) -> None:
        with self._lock:
            self._remember(alert_id, version)

    def _remember(self, alert_id: str, version: str) -> None:
        self._seen[alert_id] = version
        self._seen.move_to_end(alert_id)
        while len(self._seen) > self.SEEN_LIMIT:
            self._seen.popitem(last=False)


SHUTDOWN = {"type": "shutdown"}


def _offer(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
    if not queue.full():  # a client that reads nothing loses events rather than our memory
        queue.put_nowait(event)


def _end(queue: asyncio.Queue[dict[str, Any]]) -> None:
    """Queue the end of a stream; a full queue loses its oldest event rather than the end."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(SHUTDOWN)


def alert_event(alert: Alert, deployment: str, camera: str) -> dict[str, Any]:
    """What the stream says about an alert: enough to list it, no image (fetched, audited)."""
    return {
        "type": "alert",
        "alert_id": alert.id,
        "kind": "update" if alert.updated_at else "new",
        "deployment_id": alert.deployment_id,
        "deployment": deployment,
        "camera": camera,
        "subject": alert.subject_name,
        "score": round(alert.score, 3),
        "raised_at": alert.raised_at.isoformat() if alert.raised_at else None,
    }


def _version(alert: Alert) -> str:
    return str(alert.updated_at or alert.raised_at)


class AlertPoller:
    """Every ``interval_s``, announce alerts that are new or updated in the store."""

    def __init__(
        self, store: sessionmaker[Session], broadcaster: Broadcaster, interval_s: float = 0.4
    ):
        self.store, self.broadcaster, self.interval_s = store, broadcaster, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openlfr-alert-poller", daemon=True)

    def _recent(self, session: Session) -> list[tuple[Alert, str, str]]:
        rows = session.execute(
            select(Alert, Deployment.name, Camera.name)
            # the event names the alert; its images are fetched (and audited) by id
            .options(defer(Alert.probe_image), defer(Alert.reference_image))
            .join(Deployment, Deployment.id == Alert.deployment_id)
            .join(Camera, Camera.id == Alert.camera_id)
            .order_by(Alert.raised_at.desc())
            .limit(200)
        ).all()
        return [(a, d, c) for a, d, c in rows]

    def start(self) -> None:
        with self.store() as session:  # what is already there is not news
            for alert, _, _ in self._recent(session):
                self.broadcaster.mark_seen(alert.id, _version(alert))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with self.store() as session:
                    for alert, deployment, camera in reversed(self._recent(session)):
                        self.broadcaster.publish_alert(
                            alert.id, _version(alert), alert_event(alert, deployment, camera)
                        )
            except Exception:  # a busy or restarting database: try again next round
                log.exception("alert poller")


class DeploymentRunner:
    """Deployments started from the API, each in a thread running ``run_deployment``."""

    def __init__(self, store: sessionmaker[Session], broadcaster: Broadcaster):
        self.store, self.broadcaster = store, broadcaster
        self._threads: dict[int, threading.Thread] = {}
        self._stops: dict[int, StopRequest] = {}
        self._errors: dict[int, str] = {}
        self._closing = False

    def start(self, deployment_id: int, wait_s: float = 30.0) -> None:
        """Start it and return once it runs; a refusal (wrong status, empty watchlist, outside
        its window) is raised here rather than lost in the thread."""
        if self._closing:
            raise DeploymentError("the service is shutting down: no deployment starts now")
        existing = self._threads.get(deployment_id)
        if existing is not None and existing.is_alive():
            raise DeploymentError(f"deployment {deployment_id} is already running here")
        self._errors.pop(deployment_id, None)
        self._stops[deployment_id] = StopRequest()
        # This thread spawns the camera workers and must outlive them: on Linux they are
        # killed when it ends (live.worker.die_with_parent).
        thread = threading.Thread(
            target=self._run, args=(deployment_id,), name=f"deployment-{deployment_id}", daemon=True
        )
        self._threads[deployment_id] = thread
        thread.start()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            finished = not thread.is_alive()  # read first: the error is set before it ends
            if deployment_id in self._errors:
                raise DeploymentError(self._errors[deployment_id])
            if finished:
                return
            with self.store() as session:
                if get_deployment(session, deployment_id).status != "planned":
                    return
            time.sleep(0.05)

    def _run(self, deployment_id: int) -> None:
        names: dict[int, tuple[str, dict[str, str]]] = {}
        pusher = None

        def on_alert(event: Any) -> None:
            if pusher is not None:
                pusher.submit(event)  # its webhook and MQTT broker: queued, never waited for
            # run_deployment has committed the alert: a client may fetch it at once
            with self.store() as session:
                alert = session.get(Alert, event.alert_id)
                if alert is None:
                    return
                if deployment_id not in names:
                    d = get_deployment(session, deployment_id)
                    names[deployment_id] = (d.name, {c.name: c.name for c in d.cameras})
                payload = alert_event(alert, names[deployment_id][0], event.camera)
                self.broadcaster.publish_alert(alert.id, _version(alert), payload)

        try:
            pusher = alert_pusher(self.store, deployment_id)
            run_deployment(
                self.store,
                deployment_id,
                on_alert=on_alert,
                stop=self._stops[deployment_id],
                # a service that controls a cluster's cameras (docs/scale.md): it is the driver
                cluster=os.environ.get("OPENLFR_RAY_ADDRESS") or None,
            )
        except OpenLFRError as exc:
            self._errors[deployment_id] = str(exc)
        except Exception as exc:
            log.exception("deployment %s failed", deployment_id)
            self._errors[deployment_id] = f"the runner failed: {exc}"
        finally:
            if pusher is not None:
                pusher.close()  # what is still queued gets a few seconds; counts are kept
            self.broadcaster.publish({"type": "deployment", "deployment_id": deployment_id})

    def stop_all(self, reason: str = "stopped: the service shut down") -> None:
        """Ask every deployment of this server to stop, and refuse new starts; returns at once
        (each deployment sees it within its poll interval and destroys its snapshot)."""
        self._closing = True
        for stop in self._stops.values():
            stop.request(reason)

    def shutdown(self, timeout_s: float = 15.0) -> None:
        """Stop every deployment of this server and wait for them to end."""
        self.stop_all()
        for thread in list(self._threads.values()):
            thread.join(timeout=timeout_s)
