"""Face tracks: the same face followed from frame to frame by the overlap of its boxes.

A track is what "faces processed" counts: one passer-by, searched from their best shots, not
once per frame. Faces in an LFR camera's field move little between frames at 10+ fps, so
greedy matching by intersection-over-union is enough. With ``motion`` (off by default, see
docs/live.md) each track's box is first carried forward at its recent velocity (SORT's motion
model without its Kalman filter), so that a face reappearing from behind a nearer passer-by does
not land on the box where the nearer one was last seen and take over that track. A track that
goes unseen for ``max_missed`` frames ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from openlfr.vision.detect import Detection, box_iou

# The share of the newest step in a track's velocity: HOG's boxes move in steps of a few
# pixels, so one frame's displacement alone is noise.
VELOCITY_SMOOTHING = 0.5


def iou(a: Detection, b: Detection) -> float:
    return box_iou(a.as_list(), b.as_list())


@dataclass
class Track:
    id: int
    box: Detection
    last_frame: int
    missed: int = 0
    velocity: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # per frame, each corner
    # Filled by the pipeline: when the face first became usable, and what has been searched.
    first_usable_at: float | None = None
    searches: int = 0
    best_searched_quality: float = -1.0
    last_searched_s: float = 0.0  # the frame time of its last search
    alerted_subjects: set[int] = field(default_factory=set)

    def predicted(self, frame_index: int) -> list[float]:
        """Where its box should be at ``frame_index``, moving as it has been."""
        steps = frame_index - self.last_frame
        return [c + v * steps for c, v in zip(self.box.as_list(), self.velocity, strict=True)]

    def moved_to(self, box: Detection, frame_index: int) -> None:
        steps = max(frame_index - self.last_frame, 1)
        step = [(n - o) / steps for n, o in zip(box.as_list(), self.box.as_list(), strict=True)]
        a = VELOCITY_SMOOTHING
        v0, v1, v2, v3 = (a * s + (1 - a) * v for s, v in zip(step, self.velocity, strict=True))
        self.velocity = (v0, v1, v2, v3)
        self.box, self.last_frame, self.missed = box, frame_index, 0


class IouTracker:
    """Greedy IoU association of each frame's detections with the live tracks."""

    def __init__(
        self, min_iou: float = 0.3, max_missed: int = 12, first_id: int = 1, motion: bool = False
    ) -> None:
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.motion = motion
        self.tracks: dict[int, Track] = {}
        # A restarted camera worker starts from a higher id, so that a track id (which alerts
        # and suppressions name) never means two faces within one deployment.
        self._next_id = first_id

    def update(
        self, detections: list[Detection], frame_index: int
    ) -> tuple[list[tuple[Track, Detection]], list[Track]]:
        """Match detections to tracks; returns ``(matched or new, ended)``."""
        predicted = {
            tid: t.predicted(frame_index) if self.motion else t.box.as_list()
            for tid, t in self.tracks.items()
        }
        pairs = sorted(
            (
                (box_iou(predicted[tid], d.as_list()), tid, di)
                for tid in self.tracks
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
            track.moved_to(detections[di], frame_index)
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
