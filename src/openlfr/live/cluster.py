"""A deployment's cameras on a Ray cluster: one actor per camera, one controller that stores.

    $ openlfr deployment run 7 --cluster 10.0.0.2:6379      # or OPENLFR_RAY_ADDRESS

Each camera's worker is a Ray actor (``CameraActor``), the same clean unit as the local worker
process: the frozen templates in (``run_job``, ``LivePipeline`` and ``open_source`` unchanged),
events out. The actor runs the camera loop in a thread and buffers its events; the controller
(``ClusterSupervisor``, this process) drains them with long-polling calls, sends suppressions
and stops, and is, as on one machine, the only place that stores alerts and the one that
enforces the hard end for the whole cluster. It reuses ``CameraSupervisor``'s bookkeeping:
counts, crashes, restarts, the gap a crash costs, health in the camera's columns.

- **Pinning.** A camera's ``resource`` (``deployment create --camera-resource NAME=RESOURCE``)
  names a Ray custom resource; its actor asks for a small share of it, so it runs only on the
  nodes started with ``--resources='{"RESOURCE": 100}'``: the ones that can reach the camera.
- **Faults.** Actors restart without limit while the deployment runs (``max_restarts=-1``).
  The controller tells a new incarnation by its id, records the crash and the gap, and starts
  the camera again with fresh track ids where a live picture would be. A camera whose node has
  died, and that no live node can take, is ``down`` on the board until one can.
- **The end.** At the end time, on a stop, or on any error, the controller kills every actor
  and frees the snapshot's object. The actors and the object are owned by the controller's
  Ray driver, so if the controller itself dies, Ray kills them and frees it (fate-sharing).
- **No disk.** Ray spills objects to local disk when its object store fills, and falls back to
  memory-mapped files in the spilling directory: either would write a snapshot or a probe to
  disk (DESIGN.md, invariants 1 and 3). Turning automatic spilling off is not enough: a full
  store still spills on demand (measured with Ray 2.60: 90 MiB spilled from an 80 MiB store
  with it off). So a cluster is joined only if its head was started with spilling off *and*
  the spilling directory, which is also the fallback directory, on tmpfs (``HEAD_COMMAND``):
  a "spilled" copy is then one more copy in memory. Each actor checks that directory on its
  own node before it opens a camera; a camera whose node would write it to disk fails.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from openlfr.errors import OpenLFRError
from openlfr.governance.policy import load_policy
from openlfr.live.pipeline import AlertEvent, CameraCounts
from openlfr.live.supervisor import (
    STOP_GRACE_S,
    TRACK_IDS_PER_RUN,
    CameraSupervisor,
    _Slot,
    end_reason,
)
from openlfr.live.worker import WorkerJob, run_job
from openlfr.matching.shared import GraphBytes
from openlfr.store.models import Deployment

log = logging.getLogger(__name__)

ADDRESS_ENV = "OPENLFR_RAY_ADDRESS"
# Where Ray's fallback files would go: tmpfs, so that even a full object store stays in memory.
FALLBACK_DIR = "/dev/shm/openlfr-ray"
# What a head OpenLFR starts (or an operator starts, see HEAD_COMMAND) must say.
NO_SPILL_CONFIG: dict[str, Any] = {
    "automatic_object_spilling_enabled": False,
    "object_spilling_config": json.dumps(
        {"type": "filesystem", "params": {"directory_path": FALLBACK_DIR}}
    ),
}
HEAD_COMMAND = (
    f"mkdir -p {FALLBACK_DIR} && ray start --head --port=6379 --plasma-directory=/dev/shm "
    f"--system-config='{json.dumps(NO_SPILL_CONFIG)}'"
)
CONNECT_TIMEOUT_S = 5.0
DRAIN_WAIT_S = 0.5  # an actor holds a drain call this long for an event: latency, not polling
RESOURCE_SHARE = 0.01  # of a camera's custom resource: any number of cameras fit on its nodes
CAMERA_CPUS = 1.0  # a camera's pipeline keeps about one core busy: Ray places them by cores
RETRY_S = 1.0  # a camera whose actor cannot be reached is tried again this often

_lock = threading.Lock()
_users = 0  # deployments of this process using its Ray connection (the service runs several)


class ClusterError(OpenLFRError):
    """The Ray cluster cannot be used as asked: unreachable, or unsafe (spilling to disk)."""


def spilling_problem(config: dict[str, Any]) -> str | None:
    """Why a cluster with this system config (its head's) could write objects to disk, if it
    could: spilling on (Ray's default), or no spilling directory named (fallback files then go
    to the node's temporary folder on disk)."""
    if config.get("automatic_object_spilling_enabled", True):
        return "its object spilling is on (Ray's default)"
    spilling = json.loads(config.get("object_spilling_config") or "{}")
    directory = spilling.get("params", {}).get("directory_path")
    if isinstance(directory, list):
        directory = directory[0] if directory else None
    if spilling.get("type") != "filesystem" or not directory:
        return "it names no fallback directory (Ray would use its temporary folder, on disk)"
    return None


def fallback_directory(config: dict[str, Any]) -> str:
    spilling = json.loads(config["object_spilling_config"])
    directory = spilling["params"]["directory_path"]
    return str(directory[0] if isinstance(directory, list) else directory)


def on_tmpfs(path: str) -> bool:
    """Whether ``path`` lies on a memory file system (the longest mount point above it)."""
    target, best, kind = os.path.realpath(path), "", ""
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            mount, fstype = fields[1], fields[2]
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, fstype
    return kind in {"tmpfs", "ramfs"}


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"a cluster address is HOST:PORT (the head's GCS port), not {address!r}")
    return host.strip("[]"), int(port)


def check_reachable(address: str) -> None:
    """A TCP connection to the head's GCS port within CONNECT_TIMEOUT_S, or a clear error
    (Ray's own client would retry for a minute before saying much)."""
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ClusterError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): start its head with "
            f"{HEAD_COMMAND!r}, or check the address and the firewall"
        ) from exc


@contextlib.contextmanager
def connected(address: str) -> Iterator[dict[str, Any]]:
    """This process as a Ray driver of the cluster at ``address``, for as long as the block
    runs; yields the cluster's system config. Refuses an unreachable cluster and one that could
    spill to disk before anything is started. Several deployments of one process (the service)
    share the connection; the last one out closes it."""
    global _users
    import ray
    from ray._private.state import state

    check_reachable(address)
    with _lock:
        if ray.is_initialized():
            current = ray.get_runtime_context().gcs_address
            if _host_port(current) != _host_port(address):
                raise ClusterError(
                    f"this process is already a driver of the Ray cluster at {current}"
                )
            owned = _users > 0
        else:
            try:
                ray.init(address=address, namespace="openlfr", log_to_driver=False)
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError
                raise ClusterError(
                    f"cannot join the Ray cluster at {address}: {exc}{_auth_hint(exc)}"
                ) from exc
            owned = True
        config = state.get_system_config()
        problem = spilling_problem(config)
        if problem is not None:
            if owned and _users == 0:
                ray.shutdown()
            raise ClusterError(
                f"refusing the Ray cluster at {address}: {problem}, so a watchlist snapshot or "
                f"a probe could reach disk. Start its head with: {HEAD_COMMAND}"
            )
        _users += owned
    try:
        yield config
    finally:
        with _lock:
            _users -= owned
            if owned and _users == 0:
                ray.shutdown()


def _auth_hint(exc: BaseException) -> str:
    """What to do when the head refused this driver's token (Ray's message says it deep in
    the exception's causes)."""
    causes, seen = [], exc
    while seen is not None and len(causes) < 10:
        causes.append(f"{type(seen).__name__} {seen}")
        seen = seen.__cause__ or seen.__context__
    if not any("Auth" in text for text in causes):
        return ""
    return (
        " (the head wants token authentication: set RAY_AUTH_MODE=token here and give this "
        "machine the head's token, ~/.ray/auth_token or RAY_AUTH_TOKEN)"
    )


class CameraActor:
    """One camera on a cluster node: ``start`` runs ``run_job`` in a thread, ``drain`` hands
    over what it said since the last call, ``suppress`` and ``stop`` are the local worker's
    control pipe. Nothing it holds leaves memory (``fallback`` is checked to be tmpfs)."""

    def __init__(self, job: WorkerJob, fallback: str) -> None:
        self.job = job  # without the snapshot: Ray keeps an actor's creation arguments
        self.fallback = fallback
        # A new id each time Ray (re)creates the actor: how the controller tells a restart.
        self.incarnation = uuid.uuid4().hex
        self._events: deque[tuple[str, Any]] = deque()
        self._ready = threading.Condition()
        self._suppressions: deque[tuple[int, int]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(
        self, first_track_id: int, origin: float | None, snapshot: tuple[Any, ...] | None
    ) -> tuple[str, str, int]:
        """Start the camera on ``snapshot`` (templates, subject ids, names, graph: the controller's
        object, handed to each incarnation, never part of the actor's creation record);
        returns (incarnation, node, pid). Once started, a call only says who it is."""
        import ray

        node = f"{socket.gethostname()} {ray.get_runtime_context().get_node_id()[:12]}"
        if self._thread is None and snapshot is not None:
            embeddings, subject_ids, names, graph = snapshot
            job = replace(
                self.job,
                embeddings=embeddings,
                subject_ids=subject_ids,
                subject_names=names,
                graph=graph,
                first_track_id=first_track_id,
                origin=origin,
            )
            self._thread = threading.Thread(target=self._run, args=(job,), daemon=True)
            self._thread.start()
        return self.incarnation, node, os.getpid()

    def _run(self, job: WorkerJob) -> None:
        if not on_tmpfs(self.fallback):
            self._send("error", f"Ray's fallback directory {self.fallback} is not on tmpfs here")
            self._send("done", None)
            return

        def take_control(suppressed: set[tuple[int, int]]) -> bool:
            while self._suppressions:
                suppressed.add(self._suppressions.popleft())
            return self._stop.is_set()

        run_job(job, self._send, take_control)

    def _send(self, kind: str, payload: Any) -> None:
        # counts are the pipeline's own object, updated after this call: a copy is sent
        with self._ready:
            self._events.append((kind, copy.copy(payload) if kind == "counts" else payload))
            self._ready.notify_all()

    def drain(self) -> tuple[str, list[tuple[str, Any]]]:
        """(incarnation, events since the last call), waiting up to DRAIN_WAIT_S for one."""
        with self._ready:
            if not self._events:
                self._ready.wait(DRAIN_WAIT_S)
            events = list(self._events)
            self._events.clear()
        return self.incarnation, events

    def suppress(self, suppression: tuple[int, int]) -> None:
        self._suppressions.append(suppression)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class _Actor:
    """A camera's actor as the controller sees it."""

    handle: Any
    incarnation: str | None = None  # the one running the camera now; None: none is
    pending: Any = None  # the ObjectRef of the call in flight (start or drain)
    starting: bool = False
    node: str | None = None
    node_id: str | None = None
    pid: int | None = None


class _ActorControl:
    """A camera's actor, as somewhere to ``put`` a suppression (see forward_suppressions)."""

    def __init__(self, actor: _Actor) -> None:
        self.actor = actor

    def put(self, suppression: tuple[int, int]) -> None:
        if self.actor.incarnation is not None:  # between runs: the next has new track ids
            self.actor.handle.suppress.remote(suppression)


class ClusterSupervisor(CameraSupervisor):
    """``CameraSupervisor`` with Ray actors for workers (see the module's description)."""

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
        config: dict[str, Any],
    ) -> None:
        super().__init__(
            session,
            deployment,
            jobs,
            reference,
            on_alert=on_alert,
            poll_s=poll_s,
            stop_reason=stop_reason,
        )
        self.fallback = fallback_directory(config)
        self.actors: dict[int, _Actor] = {}
        self._controls: dict[str, Any] = {}  # camera name -> _ActorControl, for suppressions
        self._snapshot: Any = None
        # (camera id, subject id) -> (alert id, score, time.monotonic() it was raised), and
        # the alert ids of restarted runs that stand for one already stored

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        import ray

        self._create_actors()
        next_check = 0.0
        while True:
            now = time.monotonic()
            if now >= next_check:
                next_check = now + self.poll_s
                self._check_store()
                self._mark_down()
            if self.reason is None and (reason := end_reason(self.stop_reason(), self.deadline)):
                self._stop_all(reason)
            if self.reason is None:
                for slot in self.slots:
                    actor = self.actors.get(slot.camera.id)
                    idle = actor is not None and actor.incarnation is None and not actor.starting
                    if idle and not slot.finished and now >= slot.restart_at:
                        self._start(slot)
            busy = [s for s in self.slots if self._busy(s)]
            if not busy and (self.reason or all(s.finished for s in self.slots)):
                return
            if self.reason and now >= self._stop_at:
                for slot in busy:  # asked to stop, and still not ended
                    self._kill(slot, restart=False)
                continue
            for slot in busy:
                actor = self.actors[slot.camera.id]
                if actor.pending is None and actor.incarnation is not None:
                    actor.pending = actor.handle.drain.remote()
            pending = {self.actors[s.camera.id].pending: s for s in busy}
            pending.pop(None, None)
            if pending:
                ready, rest = ray.wait(list(pending), num_returns=1, timeout=self.poll_s)
                if ready and rest:  # whatever else has come back meanwhile
                    more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                    ready += more
                for ref in ready:
                    self._reply(pending[ref], ref)
            else:
                time.sleep(min(self.poll_s, 0.1))
            self.session.commit()

    def _busy(self, slot: _Slot) -> bool:
        actor = self.actors.get(slot.camera.id)
        return actor is not None and (actor.incarnation is not None or actor.starting)

    def _create_actors(self) -> None:
        import ray

        job = self.slots[0].job
        # One object for every camera: the frozen templates, owned by this driver (freed at the
        # end, or by Ray when this process dies), handed to each actor's every start.
        # A large list's graph goes in it as bytes, built once by the runner: each node's object
        # store then holds one copy, which the node's cameras read in place (matching/shared.py).
        graph = GraphBytes.of(job.graph) if job.graph is not None else None
        self._snapshot = ray.put((job.embeddings, job.subject_ids, job.subject_names, graph))
        del graph
        resources = ray.cluster_resources()
        policy = load_policy()  # the controller's camera rules hold on every node
        remote = ray.remote(CameraActor)
        for slot in self.slots:
            wanted = slot.camera.resource
            if wanted and wanted not in resources:
                slot.health.error = f"no node of the cluster offers the resource {wanted!r}"
                slot.finished = True
                slot.health.state = "failed"
                slot.health.store(slot.camera)
                continue
            bare = replace(
                slot.job,
                policy=policy,
                embeddings=np.empty((0, 0), np.float32),
                subject_ids=np.empty(0, np.int64),
                subject_names={},
                graph=None,
            )
            handle = remote.options(
                name=f"openlfr-{self.deployment.id}-{slot.camera.id}",
                max_restarts=-1,
                max_task_retries=0,
                max_concurrency=4,  # a drain waits while a stop or a suppression comes in
                num_cpus=CAMERA_CPUS,
                resources={wanted: RESOURCE_SHARE} if wanted else None,
            ).remote(bare, self.fallback)
            self.actors[slot.camera.id] = _Actor(handle)
            self._controls[slot.camera.name] = _ActorControl(self.actors[slot.camera.id])

    def _start(self, slot: _Slot) -> None:
        actor = self.actors[slot.camera.id]
        first_track_id = slot.runs * TRACK_IDS_PER_RUN + 1
        actor.pending = actor.handle.start.remote(first_track_id, slot.job.origin, self._snapshot)
        actor.starting = True

    def _reply(self, slot: _Slot, ref: Any) -> None:
        import ray

        actor = self.actors[slot.camera.id]
        actor.pending = None
        starting, actor.starting = actor.starting, False
        try:
            value = ray.get(ref)
        except ray.exceptions.RayError as exc:
            if starting and isinstance(exc, ray.exceptions.ActorDiedError):
                # dead for good while restarts are unlimited: it cannot be created there (no
                # OpenLFR or no face model on the node): said, not retried forever
                self._cannot_start(slot, exc)
            elif starting:  # not back yet (restarting, or its node is gone): try again later
                slot.restart_at = time.monotonic() + RETRY_S
            else:
                self._lost(slot, f"the actor died ({type(exc).__name__})")
            return
        if starting:
            self._started(slot, *value)
            return
        incarnation, events = value
        if incarnation != actor.incarnation:  # Ray restarted it behind our back
            self._lost(slot, "the actor was restarted by Ray (its process died)")
            return
        for kind, payload in events:
            self._handle(slot, kind, payload)
            if kind == "crash":  # a fresh process for the next run, as a crashed worker's
                self._kill(slot, restart=True)
                return
            if kind == "done":
                self._kill(slot, restart=False)
                return

    def _cannot_start(self, slot: _Slot, exc: Exception) -> None:
        # Ray's message ends with the creation task's own exception (a traceback before it)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        cause = lines[-1] if lines else type(exc).__name__
        slot.health.error = f"its actor cannot start on the cluster: {cause[:300]}"
        slot.finished = True
        slot.health.state = "failed"
        slot.health.store(slot.camera)
        log.error("camera %s: %s", slot.camera.name, slot.health.error)

    def _started(self, slot: _Slot, incarnation: str, node: str, pid: int) -> None:
        actor = self.actors[slot.camera.id]
        if slot.runs:
            slot.health.restarts += 1
            log.warning("camera %s: actor restarted (restart %d)", slot.camera.name, slot.runs)
        actor.incarnation, actor.node, actor.pid = incarnation, node, pid
        actor.node_id = node.split()[-1]
        slot.camera.node = node
        slot.runs += 1
        slot.crash, slot.killed, slot.counts = None, False, CameraCounts()
        slot.counted_at = 0.0
        slot.run_started = time.monotonic()
        slot.health.state = "starting"
        slot.health.store(slot.camera)
        if self.reason is not None:  # the stop came while it was starting
            actor.handle.stop.remote()

    def _lost(self, slot: _Slot, cause: str) -> None:
        """Its current incarnation has gone: a crash, counted as the local supervisor counts
        one; Ray is already bringing the actor back (or will, once a node can take it)."""
        self.actors[slot.camera.id].incarnation = None
        self._worker_gone(slot, cause)

    def _kill(self, slot: _Slot, *, restart: bool) -> None:
        """End the camera's current run: ``restart`` lets Ray bring the actor back (after a
        crash), otherwise it is gone for good (its end, a stop, the deployment's end)."""
        import ray

        actor = self.actors[slot.camera.id]
        with contextlib.suppress(Exception):  # already dead, or its node is
            ray.kill(actor.handle, no_restart=not restart)
        had_run = actor.incarnation is not None or actor.starting
        actor.incarnation, actor.pending, actor.starting = None, None, False
        if not restart:
            slot.killed = True
            slot.finished = True
        if had_run:
            self._worker_gone(slot, "killed")

    def _kill_all(self) -> None:
        import ray

        for slot in self.slots:
            if slot.camera.id in self.actors:
                self._kill(slot, restart=False)
        if self._snapshot is not None:
            with contextlib.suppress(Exception):
                ray._private.internal_api.free([self._snapshot])
            self._snapshot = None

    def _stop_all(self, reason: str) -> None:
        self.reason = reason
        self._stop_at = time.monotonic() + STOP_GRACE_S
        for actor in self.actors.values():
            if actor.incarnation is not None:
                actor.handle.stop.remote()

    def _mark_down(self) -> None:
        """A camera waiting for its actor whose node has died is down (the board says so)."""
        import ray

        waiting = [
            s
            for s in self.slots
            if s.health.state == "restarting" and self.actors.get(s.camera.id) is not None
        ]
        if not waiting:
            return
        alive = {n["NodeID"][:12] for n in ray.nodes() if n["Alive"]}
        for slot in waiting:
            node_id = self.actors[slot.camera.id].node_id
            if node_id is not None and node_id not in alive:
                slot.health.state = "down"
                slot.health.store(slot.camera)
                log.error("camera %s: its node has died; down", slot.camera.name)


def stored_objects() -> int:
    """Objects held in the object stores of every live node, from the raylets' own stats
    (the tests' proof that a deployment's snapshot is gone from every node)."""
    import ray
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    reply = get_memory_info_reply(get_state_from_address(ray.get_runtime_context().gcs_address))
    return int(reply.store_stats.num_local_objects)
