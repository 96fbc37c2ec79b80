"""The live pipeline: frames in, alerts out, everything else dropped.

    >>> pipeline = LivePipeline(index, camera="gate-1")
    >>> for frame in source.frames():
    ...     for event in pipeline.process(frame):
    ...         print(event.subject, event.score)

Per frame: detect at a working resolution, follow faces with a tracker, and search a track only
on its best shots: the first usable one at once (so an alert comes within a second of the face
becoming usable), then a later shot only when its quality beats every searched shot by a clear
margin, at most ``max_searches_per_track`` times. ``research_after_s`` and ``track_motion``
(both off by default) also search a track again that long after its last search, and carry
tracks forward at their velocity: the quality score cannot see a face half covered by a nearer
head. They found 4 more of 127 watchlisted passers-by on the pass-by clips, but short soaks grew
the workers' memory with them, so they stay settings until that is explained (docs/live.md). A
probe that raises no alert is discarded as soon as its search ends: its chip and embedding are
locals of ``_search`` and nothing about it is logged or kept but the counts (DESIGN.md,
invariant 1).
"""

from __future__ import annotations

import bisect
import time
import uuid
from dataclasses import dataclass, field

import cv2
import numpy as np

from openlfr.live.sources import Frame
from openlfr.live.tracker import IouTracker, Track
from openlfr.matching import WatchlistIndex
from openlfr.vision.detect import Detection
from openlfr.vision.faces import analyse_face
from openlfr.vision.models import get_model
from openlfr.vision.quality import Quality


@dataclass
class LiveConfig:
    threshold: float | None = None  # None: calibrated for the watchlist's size
    working_width: int = 960  # frames are scaled to this width for detection (up or down)
    upsample: int = 0
    min_eye_distance_px: float = 18.0  # a face smaller than this is not yet usable
    min_frontalness: float = 0.35
    max_searches_per_track: int = 3
    quality_margin: float = 0.08  # a later shot is searched if this much better
    research_after_s: float = float("inf")  # ... or this long after its last search
    track_min_iou: float = 0.3
    track_max_missed: int = 12
    track_motion: bool = False  # carry tracks forward at their velocity (docs/live.md)
    realert_window_s: float = 120.0  # one alert per subject per camera within this window
    crop_margin: float = 0.4  # probe crop kept with an alert: the box grown by this share


@dataclass
class AlertEvent:
    """An alert raised (``kind="new"``) or improved by a stronger shot (``kind="update"``)."""

    alert_id: str
    kind: str
    camera: str
    frame: int
    time_s: float
    track: int
    subject: str
    subject_id: int
    score: float
    similarity: float
    box: list[int]
    probe_jpeg: bytes = field(repr=False)
    latency_s: float  # from the face first being usable to this alert


# Upper bounds (seconds) of the 1:N search time histogram /metrics exposes: the exact index
# takes well under a millisecond at 2,000 templates, the approximate one about 1-5 ms per query
# at 1,000,000 (issue 13), so the buckets are dense below 10 ms and coarse above.
SEARCH_BUCKETS_S = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def _no_searches() -> tuple[int, ...]:
    return (0,) * (len(SEARCH_BUCKETS_S) + 1)  # the last bucket: above every bound


@dataclass
class CameraCounts:
    frames: int = 0
    frames_dropped: int = 0
    faces_processed: int = 0  # tracks searched at least once
    searches: int = 0
    alerts: int = 0
    # The 1:N search's time: the total, and how many searches took at most each of
    # SEARCH_BUCKETS_S (one count per bucket, not cumulative; the last: longer than them all).
    # A tuple, replaced at each search: a shallow copy of the counts (a cluster actor's) is
    # then a snapshot, not a view the pipeline goes on changing.
    search_s: float = 0.0
    search_hist: tuple[int, ...] = field(default_factory=_no_searches)

    def timed(self, seconds: float, searches: int) -> None:
        """One index search of ``searches`` probes that took ``seconds``: each probe is counted
        at its share, the time per query a watchlist's index is measured by."""
        self.search_s += seconds
        bucket = bisect.bisect_left(SEARCH_BUCKETS_S, seconds / searches)
        hist = list(self.search_hist)
        hist[bucket] += searches
        self.search_hist = tuple(hist)


@dataclass
class _Raised:
    alert_id: str
    score: float
    at: float


class LivePipeline:
    def __init__(
        self,
        index: WatchlistIndex,
        *,
        camera: str = "camera",
        config: LiveConfig | None = None,
        first_track_id: int = 1,
    ) -> None:
        self.index = index
        self.model = get_model(index.model)  # probes are embedded by the templates' model
        self.camera = camera
        self.config = config or LiveConfig()
        self.tracker = IouTracker(
            self.config.track_min_iou,
            self.config.track_max_missed,
            first_id=first_track_id,
            motion=self.config.track_motion,
        )
        self.counts = CameraCounts()
        self.threshold = (
            index.default_threshold() if self.config.threshold is None else self.config.threshold
        )
        self._raised: dict[int, _Raised] = {}  # subject id -> the alert on this camera
        # (track id, subject id) pairs a reviewer judged "no match": that face is not searched
        # for that subject again (opt-in per deployment; see api/routers/alerts.py)
        self.suppressed: set[tuple[int, int]] = set()

    def warm_up(self) -> None:
        """Load the models now, so that the first frames of a live source are not dropped."""
        self.model.warm_up()

    def process(self, frame: Frame) -> list[AlertEvent]:
        """Run one frame through the pipeline; returns the alert events it caused."""
        self.counts.frames += 1
        detections = self._detect(frame.image)
        matched, _ = self.tracker.update(detections, frame.index)
        shots: list[tuple[Track, Detection, np.ndarray, Quality]] = []
        for track, box in matched:
            if track.searches >= self.config.max_searches_per_track:
                continue
            face = analyse_face(self.model, frame.image, box, self.model.locate(frame.image, box))
            chip, quality = face.chip, face.quality
            if not self._usable(quality):
                continue
            if track.first_usable_at is None:
                track.first_usable_at = frame.read_at
            if (
                track.searches == 0
                or quality.score > track.best_searched_quality + self.config.quality_margin
                or frame.time_s - track.last_searched_s >= self.config.research_after_s
            ):
                shots.append((track, box, chip, quality))
        return self._search(frame, shots) if shots else []

    def finish(self) -> None:
        """End every open track (end of a file or of a deployment)."""
        self.tracker.end_all()

    def _detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        # Scaling small frames up finds the small faces of low-resolution cameras; scaling large
        # ones down keeps detection time bounded. Landmarks and chips use the original frame.
        scale = self.config.working_width / width
        if abs(scale - 1.0) < 0.01:
            return self.model.detect(image, upsample=self.config.upsample)
        small = cv2.resize(
            image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
        )
        return [
            Detection(
                int(d.x1 / scale),
                int(d.y1 / scale),
                min(int(d.x2 / scale), width),
                min(int(d.y2 / scale), height),
                d.score,
            )
            for d in self.model.detect(small, upsample=self.config.upsample)
        ]

    def _usable(self, quality: Quality) -> bool:
        return (
            quality.eye_distance_px >= self.config.min_eye_distance_px
            and quality.frontalness >= self.config.min_frontalness
        )

    def _search(
        self, frame: Frame, shots: list[tuple[Track, Detection, np.ndarray, Quality]]
    ) -> list[AlertEvent]:
        embeddings = self.model.embed([chip for _, _, chip, _ in shots])
        started = time.perf_counter()
        results = self.index.search(embeddings, top_k=1, model=self.model.name)
        self.counts.timed(time.perf_counter() - started, len(shots))
        events = []
        now = time.monotonic()
        for (track, box, _, quality), candidates in zip(shots, results, strict=True):
            if track.searches == 0:
                self.counts.faces_processed += 1
            track.searches += 1
            track.best_searched_quality = max(track.best_searched_quality, quality.score)
            track.last_searched_s = frame.time_s
            self.counts.searches += 1
            if not candidates or candidates[0].score < self.threshold:
                continue  # a non-match: nothing about it outlives this loop
            best = candidates[0]
            if (track.id, best.subject_id) in self.suppressed:
                continue  # a person already judged not to be this subject
            event = self._raise(
                frame, track, box, best.subject, best.subject_id, best.score, best.similarity, now
            )
            if event is not None:
                events.append(event)
        return events

    def _raise(
        self,
        frame: Frame,
        track: Track,
        box: Detection,
        subject: str,
        subject_id: int,
        score: float,
        similarity: float,
        now: float,
    ) -> AlertEvent | None:
        previous = self._raised.get(subject_id)
        fresh = previous is None or frame.time_s - previous.at > self.config.realert_window_s
        if not fresh and score <= previous.score:
            return None
        if fresh:
            alert_id, kind = uuid.uuid4().hex, "new"
            self.counts.alerts += 1
        else:
            alert_id, kind = previous.alert_id, "update"
        self._raised[subject_id] = _Raised(alert_id, score, frame.time_s if fresh else previous.at)
        track.alerted_subjects.add(subject_id)
        return AlertEvent(
            alert_id=alert_id,
            kind=kind,
            camera=self.camera,
            frame=frame.index,
            time_s=round(frame.time_s, 3),
            track=track.id,
            subject=subject,
            subject_id=subject_id,
            score=score,
            similarity=similarity,
            box=box.as_list(),
            probe_jpeg=probe_crop(frame.image, box, self.config.crop_margin),
            latency_s=round(now - (track.first_usable_at or frame.read_at), 3),
        )


def probe_crop(image: np.ndarray, box: Detection, margin: float) -> bytes:
    """The face with some context around it, as JPEG, for the reviewer."""
    height, width = image.shape[:2]
    grow_x, grow_y = int(box.width * margin), int(box.height * margin)
    x1, y1 = max(box.x1 - grow_x, 0), max(box.y1 - grow_y, 0)
    x2, y2 = min(box.x2 + grow_x, width), min(box.y2 + grow_y, height)
    ok, jpeg = cv2.imencode(
        ".jpg", cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
    )
    return jpeg.tobytes() if ok else b""
