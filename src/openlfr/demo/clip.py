"""The demo's pass-by clip: people walking towards a camera over a generated street.

Each passer-by is a portrait's head and shoulders, composited on a plain torso, that grows from
far to near while drifting across the frame. What changes between and along the walks is what
a camera changes: a mirror image (the person faces the other way), scale (distance), light
(shade or sun on the face) and blur (out of focus far off, sharper as they come closer).

The clip is a real video file (Motion-JPEG in AVI, which OpenCV writes and reads everywhere
without extra codecs), played to the deployment as a camera would show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from openlfr.errors import OpenLFRError

WIDTH, HEIGHT, FPS = 960, 540, 12
WALK_S = 3.0  # each passer-by is in view this long
# A head patch is square, this many face-box widths a side, so hair, hat and chin show.
PATCH_FACES = 2.2
NEAR_PX, FAR_PX = 300, 140  # the patch's side at either end of the walk


@dataclass(frozen=True)
class Walk:
    """One passer-by: who, when, and how the camera sees them."""

    who: str  # the portrait's slug
    head: np.ndarray  # square RGB patch, the face centred (``head_patch``)
    start_s: float
    flip: bool = False
    light: float = 1.0  # gain on the face: below 1 in shade, above in sun
    blur_far: float = 0.0  # Gaussian sigma (px) when farthest, easing to blur_near
    blur_near: float = 0.0
    x_from: float = 0.2  # where the head's centre starts and ends, as a share of the width
    x_to: float = 0.5
    coat: tuple[int, int, int] = (40, 50, 70)

    @property
    def end_s(self) -> float:
        return self.start_s + WALK_S


@dataclass(frozen=True)
class Clip:
    path: Path
    frames: int
    fps: int
    walks: tuple[Walk, ...]

    def who_at(self, time_s: float, slack_s: float = 0.5) -> set[str]:
        """Whose walk covers ``time_s`` (give or take ``slack_s``)."""
        return {w.who for w in self.walks if w.start_s - slack_s <= time_s <= w.end_s + slack_s}


def head_patch(image: np.ndarray, box: list[int] | tuple[int, ...]) -> np.ndarray:
    """A square patch of ``image`` centred on the face ``box`` ([x1, y1, x2, y2]), a little
    above its centre so the hair shows; borders beyond the photo repeat its edge."""
    x1, y1, x2, y2 = box
    side = int(round((x2 - x1) * PATCH_FACES))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - 0.1 * (y2 - y1)
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    pad = side
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(
        padded[top + pad : top + pad + side, left + pad : left + pad + side]
    )


def street(seed: int = 7) -> np.ndarray:
    """A generated background: sky, a row of buildings with windows, a pavement. RGB."""
    rng = np.random.default_rng(seed)
    frame = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    horizon = int(HEIGHT * 0.62)
    sky = np.linspace([150, 185, 220], [205, 220, 235], horizon)
    frame[:horizon] = sky[:, None, :]
    ground = np.linspace([120, 118, 112], [80, 78, 75], HEIGHT - horizon)
    frame[horizon:] = ground[:, None, :]
    x = 0
    while x < WIDTH:
        width = int(rng.integers(110, 220))
        top = int(rng.integers(40, 200))
        colour = rng.integers(90, 190, 3).astype(np.float32)
        frame[top:horizon, x : x + width] = colour
        for wy in range(top + 18, horizon - 30, 46):
            for wx in range(x + 14, x + width - 30, 38):
                frame[wy : wy + 26, wx : wx + 20] = colour * 0.45
        x += width + int(rng.integers(0, 12))
    for i in range(-8, 9):  # paving joints converging on a vanishing point
        cv2.line(frame, (WIDTH // 2 + i * 25, horizon), (WIDTH // 2 + i * 160, HEIGHT), (70,) * 3)
    frame += rng.normal(0, 3, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def _paste(canvas: np.ndarray, tile: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend ``tile`` onto ``canvas`` at (x, y), clipped to the canvas."""
    h, w = tile.shape[:2]
    cx1, cy1 = max(x, 0), max(y, 0)
    cx2, cy2 = min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
    if cx1 >= cx2 or cy1 >= cy2:
        return
    t = tile[cy1 - y : cy2 - y, cx1 - x : cx2 - x].astype(np.float32)
    a = alpha[cy1 - y : cy2 - y, cx1 - x : cx2 - x, None]
    region = canvas[cy1:cy2, cx1:cx2].astype(np.float32)
    canvas[cy1:cy2, cx1:cx2] = (a * t + (1 - a) * region).astype(np.uint8)


def _oval(h: int, w: int, feather: float) -> np.ndarray:
    """A feathered elliptical mask, 0 to 1."""
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, h // 2), (int(w * 0.36), int(h * 0.44)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), max(feather, 0.5))


def _draw(canvas: np.ndarray, walk: Walk, progress: float) -> None:
    size = int(FAR_PX + (NEAR_PX - FAR_PX) * progress)
    cx = int(WIDTH * (walk.x_from + (walk.x_to - walk.x_from) * progress))
    top = int(40 + 50 * progress)
    head = walk.head[:, ::-1] if walk.flip else walk.head
    tile = cv2.resize(head, (size, size), interpolation=cv2.INTER_AREA)
    tile = np.clip(tile.astype(np.float32) * walk.light, 0, 255).astype(np.uint8)
    sigma = walk.blur_far + (walk.blur_near - walk.blur_far) * progress
    if sigma > 0.3:
        tile = cv2.GaussianBlur(tile, (0, 0), sigma)
    # the torso first, then the head over its top
    body_w, body_h = int(size * 1.3), int(size * 1.6)
    body = np.empty((body_h, body_w, 3), np.uint8)
    body[:] = np.clip(np.array(walk.coat) * walk.light, 0, 255).astype(np.uint8)
    _paste(
        canvas,
        body,
        _oval(body_h, body_w, size * 0.01),
        cx - body_w // 2,
        top + int(size * 0.75),
    )
    _paste(canvas, tile, _oval(size, size, size * 0.04), cx - size // 2, top)


def write_clip(path: Path, walks: list[Walk] | tuple[Walk, ...], *, tail_s: float = 0.4) -> Clip:
    """Render ``walks`` over the street into ``path`` (an ``.avi``); nearer people are drawn
    over farther ones."""
    background = street()
    frames = int(round((max(w.end_s for w in walks) + tail_s) * FPS))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise OpenLFRError(f"cannot write the demo clip {path}: OpenCV has no MJPG writer")
    try:
        for index in range(frames):
            time_s = index / FPS
            canvas = background.copy()
            in_view = [
                ((time_s - w.start_s) / WALK_S, i)
                for i, w in enumerate(walks)
                if w.start_s <= time_s < w.end_s
            ]
            for progress, i in sorted(in_view):  # the farthest first
                _draw(canvas, walks[i], progress)
            writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return Clip(path, frames, FPS, tuple(walks))


def still(clip: Clip, time_s: float) -> np.ndarray:
    """The clip's frame at ``time_s``, RGB, read back from the file."""
    capture = cv2.VideoCapture(str(clip.path))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(round(time_s * clip.fps)))
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise OpenLFRError(f"{clip.path} has no frame at {time_s:.2f} s")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
