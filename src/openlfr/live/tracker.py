"""Face tracks: the same face followed from frame to frame by the overlap of its boxes.

A track is what "faces processed" counts: one passer-by, searched from their best shots, not
once per frame. Faces in an LFR camera's field move little between frames at 10+ fps, so
greedy matching by intersection-over-union is enough; a track that goes unseen for
``max_missed`` frames ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from openlfr.vision.detect import Detection


def iou(a: Detection, b: Detection) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.width * a.height + b.width * b.height - inter)


@dataclass
class Track:
    id: int
    box: Detection
    last_frame: int
    missed: int = 0
    # Filled by the pipeline: when the face first became usable, and what has been searched.
    first_usable_at: float | None = None
    searches: int = 0
    best_searched_quality: float = -1.0
    last_searched_s: float = 0.0  # the frame time of its last search
    alerted_subjects: set[int] = field(default_factory=set)


class IouTracker:
    """Greedy IoU association of each frame's detections with the live tracks."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 12, first_id: int = 1) -> None:
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks: dict[int, Track] = {}
        # A restarted camera worker starts from a higher id, so that a track id (which alerts
        # and suppressions name) never means two faces within one deployment.
        self._next_id = first_id

    def update(
        self, detections: list[Detection], frame_index: int
    ) -> tuple[list[tuple[Track, Detection]], list[Track]]:
        """Match detections to tracks; returns ``(matched or new, ended)``."""
        pairs = sorted(
            (
                (iou(t.box, d), tid, di)
                for tid, t in self.tracks.items()
                for di, d in enumerate(detections)
            ),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_detections: set[int] = set()
        matched: list[tuple[Track, Detection]] = []
        for overlap, tid, di in pairs:
            if overlap < self.min_iou:
                break
            if tid in used_tracks or di in used_detections:
                continue
            used_tracks.add(tid)
            used_detections.add(di)
            track = self.tracks[tid]
            track.box, track.last_frame, track.missed = detections[di], frame_index, 0
            matched.append((track, detections[di]))
        for di, detection in enumerate(detections):
            if di not in used_detections:
                track = Track(self._next_id, detection, frame_index)
                self._next_id += 1
                self.tracks[track.id] = track
                matched.append((track, detection))
        ended = []
        for tid in list(self.tracks):
            if tid not in used_tracks and self.tracks[tid].last_frame != frame_index:
                self.tracks[tid].missed += 1
                if self.tracks[tid].missed > self.max_missed:
                    ended.append(self.tracks.pop(tid))
        return matched, ended

    def end_all(self) -> list[Track]:
        ended = list(self.tracks.values())
        self.tracks.clear()
        return ended
