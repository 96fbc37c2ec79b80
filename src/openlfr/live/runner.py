"""Driving a pipeline from a source: one camera's loop, with pace, stop and deadline.

``run_camera`` is the unit of work a worker process (or, later, a cluster actor) runs: a source
in, alert events out through a callback, counts at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from openlfr.live.pipeline import AlertEvent, CameraCounts, LivePipeline
from openlfr.live.sources import FrameSource


def run_camera(
    source: FrameSource,
    pipeline: LivePipeline,
    on_event: Callable[[AlertEvent], None],
    *,
    realtime: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    deadline: float | None = None,
    on_counts: Callable[[CameraCounts], None] | None = None,
    counts_every_s: float = 5.0,
    started: float | None = None,
) -> CameraCounts:
    """Process ``source`` until it ends, ``should_stop()`` is true or ``deadline`` (a
    ``time.time()``) passes. ``realtime`` paces a file as if it were live: frames it cannot
    keep up with are dropped and counted, as a live source's are. ``started`` (a
    ``time.monotonic()``, default now) is when a paced file began playing: a restarted worker
    resumes it where a live picture would be, and counts the frames it missed as dropped."""
    started = time.monotonic() if started is None else started
    last_counts = started
    for frame in source.frames():
        if should_stop() or (deadline is not None and time.time() >= deadline):
            break
        if realtime and not source.live and time.monotonic() - started > frame.time_s + 0.1:
            pipeline.counts.frames_dropped += 1
            continue
        for event in pipeline.process(frame):
            on_event(event)
        if source.live:
            pipeline.counts.frames_dropped = source.dropped
        if on_counts and time.monotonic() - last_counts >= counts_every_s:
            on_counts(pipeline.counts)
            last_counts = time.monotonic()
        if realtime and not source.live:
            ahead = frame.time_s - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    pipeline.finish()
    if source.live:
        pipeline.counts.frames_dropped = source.dropped
    if on_counts:
        on_counts(pipeline.counts)
    return pipeline.counts
