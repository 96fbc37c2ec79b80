"""A camera worker: one camera's source through the pipeline, in a process of its own.

The worker holds the deployment's frozen watchlist in memory, so it must never outlive the
process that supervises it (DESIGN.md, invariants 3 and 4). Two mechanisms that need neither
the supervisor's goodwill nor polling see to that:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the moment the
  thread that started it ends, however it ends (SIGKILL of the runner included);
- everywhere, the pipe multiprocessing keeps from parent to child
  (``multiprocessing.parent_process().sentinel``): the kernel closes it when the parent dies,
  and a thread blocked on it ends the worker.

The supervisor talks to a worker through two pipes of its own: ``events`` (worker to parent:
started, alert, counts, error, crash, done) and ``control`` (parent to worker: suppressions;
closing it asks the worker to stop at the next frame). A pipe per worker, not a shared queue:
a worker killed in the middle of a message corrupts only its own pipe, which dies with it.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from openlfr.errors import OpenLFRError
from openlfr.governance.policy import Policy
from openlfr.live.pipeline import LiveConfig, LivePipeline
from openlfr.live.runner import run_camera
from openlfr.live.sources import open_source
from openlfr.matching import WatchlistIndex
from openlfr.matching.approximate import needs_graph
from openlfr.matching.shared import GraphBytes, SharedGraph, can_share

# The exit code of a worker that found its supervisor gone (it reports to nobody).
ORPHANED_EXIT = 70
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass
class WorkerJob:
    """Everything a camera worker needs: picklable, so it could run on another machine."""

    camera_id: int
    camera: str
    source: str
    embeddings: np.ndarray | None  # None where ``graph`` holds the templates
    subject_ids: np.ndarray
    subject_names: dict[int, str]
    config: LiveConfig
    deadline: float  # time.time() of the deployment's end
    model: str  # the face model of the templates; the worker embeds with the same one
    # When the camera's first worker began playing its source (time.time()): a restarted
    # worker resumes a file where a live picture would be. None for the first worker.
    origin: float | None = None
    first_track_id: int = 1  # each restart takes fresh track ids
    # The policy whose camera rules the source must meet: the controller's, on a cluster node
    # (whose own configuration is not the deployment's); None: this machine's (load_policy()).
    policy: Policy | None = None
    # A large list's graph, built once for every camera (``share_graph``), read in place; then
    # ``subject_ids`` are in the graph's order.
    graph: SharedGraph | GraphBytes | None = None


def shares_graph(templates: int) -> bool:
    """Whether ``share_graph`` builds a graph for a list of ``templates``: one large enough
    for a graph (``approximate.needs_graph``, as ``WatchlistIndex`` decides), on a system that
    can share it."""
    return can_share() and needs_graph(templates)


def share_graph(
    embeddings: np.ndarray, subject_ids: np.ndarray, names: dict[int, str], model: str
) -> tuple[np.ndarray | None, np.ndarray, SharedGraph | None]:
    """Build a list's graph once for all of a deployment's cameras, where ``shares_graph``.
    Returns what the jobs carry: ``(embeddings, subject_ids, graph)``, the embeddings None
    when shared."""
    if not shares_graph(len(embeddings)):
        return embeddings, subject_ids, None
    index = WatchlistIndex(embeddings, subject_ids, names, model=model)
    if index.graph is None:  # FAISS is not installed
        return embeddings, subject_ids, None
    return None, index.graph_ids, SharedGraph.of(index.graph)


def die_with_parent() -> None:
    """Make this process end when its parent does (see the module's description)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    parent = mp.parent_process()
    if parent is None:
        return
    if os.getppid() != parent.pid:  # the parent died before the kernel was told to watch it
        os._exit(ORPHANED_EXIT)
    threading.Thread(
        target=_exit_when_closed, args=(parent.sentinel,), name="parent-watch", daemon=True
    ).start()


def _exit_when_closed(sentinel: int) -> None:
    wait([sentinel])  # blocks: the pipe turns readable only when the parent's end closes
    os._exit(ORPHANED_EXIT)


def crash_cause(exc: BaseException, names: Iterable[str]) -> str:
    """What the board says about an exception: its type, message and innermost line, with the
    snapshot's subject names taken out (a cause is stored and logged; names must not be)."""
    text = f"{type(exc).__name__}: {exc}"
    for name in names:
        if len(name.strip()) >= 2:
            text = text.replace(name, "[subject]")
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return text[:300] + where


def camera_worker(job: WorkerJob, events: Connection, control: Connection) -> None:
    """Worker process body: the camera's source through the pipeline until it ends, the
    deadline passes or ``control`` closes; everything it has to say goes onto ``events``.
    (track, subject id) pairs arriving on ``control`` stop that face alerting for that
    subject. An unexpected exception is reported as a crash and exits with code 1."""
    die_with_parent()
    # Ctrl-C at a terminal reaches the whole process group: the runner stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def take_control(suppressed: set[tuple[int, int]]) -> bool:
        while control.poll():
            try:
                suppressed.add(control.recv())
            except EOFError:  # the supervisor closed its end (or is gone): stop
                return True
        return False

    if not run_job(job, lambda kind, payload: events.send((kind, payload)), take_control):
        sys.exit(1)


def run_job(
    job: WorkerJob,
    send: Callable[[str, Any], None],
    take_control: Callable[[set[tuple[int, int]]], bool],
) -> bool:
    """One camera's run, wherever it runs (a worker process, a cluster actor): the source
    through the pipeline until it ends, the deadline passes or ``take_control`` (called once
    per frame with the pipeline's suppressions, to add to) says stop. Everything it has to say
    goes to ``send(kind, payload)``: started, alert, counts, error, crash, done. Returns False
    when it crashed (the crash has been sent, and no ``done``)."""
    names = job.subject_names.values()
    try:
        prebuilt = job.graph.open() if job.graph is not None else None
        index = WatchlistIndex(
            job.embeddings, job.subject_ids, job.subject_names, model=job.model, prebuilt=prebuilt
        )
        pipeline = LivePipeline(
            index, camera=job.camera, config=job.config, first_track_id=job.first_track_id
        )
        pipeline.warm_up()
        with open_source(job.source, policy=job.policy) as source:
            origin = job.origin or time.time()
            send("started", (origin, source.live))
            run_camera(
                source,
                pipeline,
                lambda e: send("alert", e),
                realtime=True,
                should_stop=lambda: take_control(pipeline.suppressed),
                deadline=job.deadline,
                on_counts=lambda c: send("counts", c),
                counts_every_s=1.0,  # a crash loses at most a second of counts
                started=time.monotonic() - (time.time() - origin),
            )
    except OpenLFRError as exc:  # the camera cannot run as asked: said, not restarted
        send("error", str(exc))
    except Exception as exc:
        send("crash", crash_cause(exc, names))
        return False
    send("done", None)
    return True
