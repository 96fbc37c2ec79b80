"""Video in: files, RTSP/HTTP streams, webcams and folders of frames, as timestamped RGB frames.

    >>> with open_source("clip.mp4") as source:
    ...     for frame in source.frames():
    ...         print(frame.index, frame.time_s, frame.image.shape)

A *file* (or folder) yields every frame, in order, as fast as it is read. A *live* source
(stream or webcam) is read on its own thread that always keeps only the newest frame: a slow
consumer gets the latest picture and the frames it missed are counted in ``dropped``, so the
pipeline never falls behind real time. A stream that drops is reopened with exponential
backoff, and each attempt is logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from openlfr.errors import OpenLFRError
from openlfr.governance.cameras import check_source
from openlfr.governance.policy import Policy, load_policy
from openlfr.vision.batch import list_images
from openlfr.vision.image import load_image

log = logging.getLogger(__name__)


class SourceError(OpenLFRError):
    """A video source could not be opened or read."""


@dataclass(slots=True)
class Frame:
    index: int  # position in the source, counting frames dropped before this one
    time_s: float  # seconds since the source started (stream time for files)
    image: np.ndarray  # RGB uint8
    read_at: float  # time.monotonic() when the frame was read: the start of alert latency


class FrameSource:
    """Base class: ``frames()`` yields frames; ``dropped`` counts frames a live source skipped."""

    live = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.dropped = 0

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file; safe to call more than once."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class VideoFileSource(FrameSource):
    """Every frame of a video file, decoded by OpenCV, timed by the file's own clock."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(str(path))
        if not Path(path).is_file():
            raise SourceError(f"{path}: no such video file")
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise SourceError(f"{path}: cannot open as video (corrupt, or not a video file)")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.expected_frames = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, bgr = self._capture.read()
            if not ok:
                break
            yield Frame(
                index, index / self.fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.monotonic()
            )
            index += 1
        if index == 0:
            raise SourceError(f"{self.name}: no frame could be decoded (corrupt or truncated?)")
        # Containers state their length; a file that stops well short of it was cut off.
        if self.expected_frames and index < self.expected_frames - max(
            2, self.expected_frames // 50
        ):
            raise SourceError(
                f"{self.name}: ended after {index} of {self.expected_frames} frames "
                "(truncated or corrupt); the frames before were processed"
            )

    def close(self) -> None:
        self._capture.release()


class FolderSource(FrameSource):
    """Images in a folder, sorted by name, as frames at ``fps``."""

    def __init__(self, path: str | Path, fps: float = 10.0) -> None:
        super().__init__(str(path))
        self._paths = list_images([path])
        if not self._paths:
            raise SourceError(f"{path}: no images in this folder")
        self.fps = fps

    def frames(self) -> Iterator[Frame]:
        for index, path in enumerate(self._paths):
            yield Frame(index, index / self.fps, load_image(path), time.monotonic())


class LiveSource(FrameSource):
    """A stream URL or webcam index, read on a thread that keeps only the newest frame."""

    live = True

    def __init__(
        self,
        target: str | int,
        *,
        open_timeout_s: float = 10.0,
        max_backoff_s: float = 30.0,
        max_reconnects: int | None = None,
    ) -> None:
        super().__init__(str(target))
        self._target = target
        self._max_backoff = max_backoff_s
        self._max_reconnects = max_reconnects
        self._lock = threading.Condition()
        self._latest: tuple[int, np.ndarray, float] | None = None
        self._read_count = 0
        self._stopped = False
        self._failed: str | None = None
        self._capture = self._open()
        if self._capture is None:
            raise SourceError(f"{target}: cannot open the stream or camera")
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._reader, name=f"source {target}", daemon=True)
        self._thread.start()

    def _open(self) -> cv2.VideoCapture | None:
        capture = cv2.VideoCapture(self._target)
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def _reader(self) -> None:
        backoff, reconnects = 0.5, 0
        while not self._stopped:
            ok, bgr = self._capture.read() if self._capture is not None else (False, None)
            if ok:
                backoff, reconnects = 0.5, 0  # give-up counts consecutive failures only
                with self._lock:
                    if self._latest is not None:
                        self.dropped += 1  # the consumer never took the previous frame
                    self._read_count += 1
                    self._latest = (self._read_count - 1, bgr, time.monotonic())
                    self._lock.notify_all()
                continue
            if self._max_reconnects is not None and reconnects >= self._max_reconnects:
                with self._lock:
                    self._failed = (
                        f"{self.name}: stream lost, "
                        f"gave up after {reconnects} reconnection attempts"
                    )
                    self._lock.notify_all()
                return
            log.warning("source %s: no frame; reconnecting in %.1f s", self.name, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)
            reconnects += 1
            if self._capture is not None:
                self._capture.release()
            self._capture = self._open()
            if self._capture is not None:
                log.warning("source %s: reconnected", self.name)

    def frames(self) -> Iterator[Frame]:
        while True:
            with self._lock:
                while self._latest is None and self._failed is None and not self._stopped:
                    self._lock.wait(timeout=1.0)
                if self._latest is None:
                    if self._failed:
                        raise SourceError(self._failed)
                    return
                index, bgr, read_at = self._latest
                self._latest = None
            yield Frame(
                index, read_at - self._started, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), read_at
            )

    def close(self) -> None:
        self._stopped = True
        with self._lock:
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        if self._capture is not None:
            self._capture.release()


def open_source(spec: str, *, policy: Policy | None = None) -> FrameSource:
    """Open a source from its description: a video file, a folder of frames, a stream URL
    (``rtsp://``, ``http(s)://``) or a webcam index (``0``, ``1``...), once the policy's
    ``[cameras]`` rules allow it (``policy``, default ``load_policy()``): ``CameraRefused``
    otherwise, before anything is opened."""
    target = check_source(spec, (policy or load_policy()).cameras)
    if not isinstance(target, Path):  # a webcam index or a stream URL
        return LiveSource(target)
    # The resolved absolute path, never the text as given: FFmpeg reads "concat:..." or
    # "subfile,..." at the start of a relative name as a protocol.
    if target.is_dir():
        return FolderSource(target)
    if not target.exists():
        raise SourceError(f"{spec}: no such file, folder, stream URL or camera index")
    return VideoFileSource(target)
