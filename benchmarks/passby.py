"""Live pipeline benchmark: a pass-by clip made from the shared faces, run through OpenLFR's
pipeline and through the naive recipe, in the same process.

    python benchmarks/passby.py [--data ../shared/data] [--walkers 40] [--watchlisted 10]

The clip (960x540, 12 fps): a real background (a frame of intel-backs-to-camera-no-faces.mp4)
and passers-by walking towards the camera, several on screen at once, each a CelebA photo that
grows as it comes closer. The watchlisted ones were enrolled from *another* photo of them, on a
1,000-subject watchlist (the rest of it filled with UTKFace, FairFace and NASA faces that never
walk by). The naive recipe is face_recognition's way: every frame, detect (HOG, upsampled once),
embed every face, alert on every match within dlib's 0.6 distance.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from openlfr.evaluation.datasets import default_cache, identity_folders, largest_faces
from openlfr.live.pipeline import LiveConfig, LivePipeline
from openlfr.live.sources import VideoFileSource
from openlfr.live.tracker import iou
from openlfr.matching import WatchlistIndex
from openlfr.vision import dlib_models
from openlfr.vision.batch import list_images
from openlfr.vision.detect import Detection
from openlfr.vision.image import load_image

WIDTH, HEIGHT, FPS = 960, 540, 12
ON_SCREEN_FRAMES = 36  # each passer-by is in view for 3 s


@dataclass
class Walker:
    id: int
    photo: Path
    subject: str | None  # watchlist subject name, or None for a stranger
    start: int  # first frame on screen
    boxes: dict[int, Detection] = field(default_factory=dict)  # where the face is, per frame


def face_patch(photo: Path) -> np.ndarray | None:
    """The photo's face with hair and chin around it, square."""
    faces = largest_faces([photo], cache=None)
    face = faces[photo]
    if face is None:
        return None
    image = load_image(photo)
    cx, cy = (face.box.x1 + face.box.x2) / 2, (face.box.y1 + face.box.y2) / 2
    half = face.box.width * 0.9
    x1, y1 = int(max(cx - half, 0)), int(max(cy - half, 0))
    x2, y2 = int(min(cx + half, image.shape[1])), int(min(cy + half, image.shape[0]))
    return image[y1:y2, x1:x2]


def build_clip(
    data: Path, walkers_n: int, watchlisted_n: int, seed: int, out: Path, watchlist_size: int = 1000
) -> tuple[list[Walker], dict[str, np.ndarray], int]:
    """Write the clip to ``out``; return the walkers and the watchlist's {name: embedding}."""
    rng = np.random.default_rng(seed)
    celeb = identity_folders(data / "faces/celeba-dev")
    names = sorted(celeb)
    rng.shuffle(names)
    cache = default_cache()
    enrol = largest_faces([celeb[n][0] for n in names], cache=cache)
    usable = [n for n in names if enrol[celeb[n][0]] is not None]
    watchlisted, strangers = usable[:watchlisted_n], usable[watchlisted_n:]
    # Fillers: people who never walk by, so that the list has ``watchlist_size`` subjects.
    filler_paths = list_images(
        [
            data / "faces/utkface-demographics",
            data / "faces/fairface540",
            data / "faces/nasa-portraits",
        ]
    )
    fillers = largest_faces(filler_paths, cache=cache)
    watchlist = {n: enrol[celeb[n][0]].embedding for n in watchlisted}
    for path, face in fillers.items():
        if face is not None and len(watchlist) < watchlist_size:
            watchlist[f"filler:{path.name}"] = face.embedding

    background = first_frame(data / "video/intel-backs-to-camera-no-faces.mp4")
    walkers: list[Walker] = []
    people = [(n, True) for n in watchlisted] + [
        (n, False) for n in strangers[: walkers_n - len(watchlisted)]
    ]
    order = rng.permutation(len(people))
    spacing = 8
    patches = {}
    for slot, i in enumerate(order):
        name, on_list = people[i]
        photo = celeb[name][1 + int(rng.integers(len(celeb[name]) - 1))]  # not the enrolled one
        patch = face_patch(photo)
        if patch is None:
            continue
        walker = Walker(len(walkers), photo, name if on_list else None, slot * spacing + 2)
        patches[walker.id] = (patch, rng.uniform(0.1, 0.8), rng.uniform(-40, 40))
        walkers.append(walker)
    frames = max(w.start for w in walkers) + ON_SCREEN_FRAMES + 4
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for f in range(frames):
        canvas = background.copy()
        for walker in walkers:
            t = f - walker.start
            if not 0 <= t < ON_SCREEN_FRAMES:
                continue
            patch, x_share, drift = patches[walker.id]
            progress = t / ON_SCREEN_FRAMES
            size = int(70 + 130 * progress)  # farther to nearer: 70 px to 200 px patches
            x = int(x_share * (WIDTH - 220) + drift * progress)
            y = int(60 + 200 * progress)
            tile = cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)
            canvas[y : y + size, x : x + size] = tile
            inner = size * 0.5 / 0.9 / 2  # the face box inside the patch
            cx, cy = x + size / 2, y + size / 2
            walker.boxes[f] = Detection(
                int(cx - inner), int(cy - inner), int(cx + inner), int(cy + inner), 1.0
            )
        writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    writer.release()
    return walkers, watchlist, frames


def first_frame(video: Path) -> np.ndarray:
    source = VideoFileSource(video)
    frame = next(iter(source.frames())).image
    source.close()
    return cv2.resize(frame, (WIDTH, HEIGHT))


def whose(walkers: list[Walker], frame: int, box: list[int]) -> Walker | None:
    detection = Detection(*box, 1.0)
    best = max(walkers, key=lambda w: iou(w.boxes[frame], detection) if frame in w.boxes else 0)
    return best if frame in best.boxes and iou(best.boxes[frame], detection) > 0.2 else None


@dataclass
class Outcome:
    fps: float
    alerts: list[tuple[Walker | None, str, float]]  # (walker, subject alerted, latency s)


def score(walkers: list[Walker], outcome: Outcome) -> dict[str, float]:
    listed = [w for w in walkers if w.subject]
    strangers = [w for w in walkers if not w.subject]
    found = {w.id for w, subject, _ in outcome.alerts if w and w.subject == subject}
    false = [(w, s) for w, s, _ in outcome.alerts if not (w and w.subject == s)]
    pairs: dict[tuple[int | None, str], int] = {}
    for w, s, _ in outcome.alerts:
        key = (w.id if w else None, s)
        pairs[key] = pairs.get(key, 0) + 1
    # Latency is a property of the system, not of the match: the first alert of every
    # (passer-by, subject) pair counts, true or false; duplicates would only inflate it.
    firsts: dict[tuple[int | None, str], float] = {}
    for w, s, lat in outcome.alerts:
        firsts.setdefault((w.id if w else None, s), lat)
    latencies = list(firsts.values())
    return {
        "fps": outcome.fps,
        "watchlisted found": len(found) / max(len(listed), 1),
        "false alerts per stranger": len(false) / max(len(strangers), 1),
        "duplicate alerts": sum(n - 1 for n in pairs.values()),
        "median alert latency s": float(np.median(latencies)) if latencies else float("nan"),
    }


def run_openlfr(clip: Path, walkers: list[Walker], watchlist: dict[str, np.ndarray]) -> Outcome:
    names = sorted(watchlist)
    index = WatchlistIndex(
        np.stack([watchlist[n] for n in names]), np.arange(len(names)), dict(enumerate(names))
    )
    pipeline = LivePipeline(index, camera="bench", config=LiveConfig())
    pipeline.warm_up()
    alerts = []
    started = time.monotonic()
    with VideoFileSource(clip) as source:
        for frame in source.frames():
            for event in pipeline.process(frame):
                if event.kind == "new":
                    alerts.append(
                        (whose(walkers, event.frame, event.box), event.subject, event.latency_s)
                    )
    wall = time.monotonic() - started
    return Outcome(pipeline.counts.frames / wall, alerts)


def run_naive(
    clip: Path, walkers: list[Walker], watchlist: dict[str, np.ndarray], raw: dict[str, np.ndarray]
) -> Outcome:
    names = sorted(raw)
    gallery = np.stack([raw[n] for n in names])
    detector, predictor = dlib_models.hog_detector(), dlib_models.landmark_predictor()
    encoder = dlib_models.descriptor_model()
    first_seen: dict[int, float] = {}
    alerts = []
    frames = 0
    started = time.monotonic()
    with VideoFileSource(clip) as source:
        for frame in source.frames():
            frames += 1
            for rect in detector(frame.image, 1):
                shape = predictor(frame.image, rect)
                vector = np.array(encoder.compute_face_descriptor(frame.image, shape))
                box = [rect.left(), rect.top(), rect.right(), rect.bottom()]
                walker = whose(walkers, frame.index, box)
                if walker is not None:
                    first_seen.setdefault(walker.id, frame.read_at)
                distances = np.linalg.norm(gallery - vector, axis=1)
                best = int(np.argmin(distances))
                if distances[best] <= 0.6:
                    since = first_seen.get(walker.id, frame.read_at) if walker else frame.read_at
                    alerts.append((walker, names[best], time.monotonic() - since))
    wall = time.monotonic() - started
    return Outcome(frames / wall, alerts)


def dlib_length_descriptors(watchlist: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """dlib's un-normalised descriptors, as the naive recipe compares them: the stored ones are
    unit length, and dlib's are about 1.39 long (docs/calibration.md)."""
    return {n: v * 1.39 for n, v in watchlist.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("OPENLFR_TEST_DATA", "../shared/data"))
    )
    parser.add_argument("--walkers", type=int, default=40)
    parser.add_argument("--watchlisted", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--watchlist-size", type=int, default=1000)
    parser.add_argument("--keep-clip", type=Path, help="Save the generated clip here.")
    args = parser.parse_args()
    console = Console(width=140)
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.keep_clip or Path(tmp) / "passby.mp4"
        console.print("building the clip (first run embeds ~1,400 faces into the cache)...")
        walkers, watchlist, frames = build_clip(
            args.data, args.walkers, args.watchlisted, args.seed, clip, args.watchlist_size
        )
        console.print(
            f"{frames} frames ({frames / FPS:.0f} s at {FPS} fps), {len(walkers)} "
            f"passers-by, {sum(1 for w in walkers if w.subject)} watchlisted, "
            f"watchlist of {len(watchlist)}"
        )
        ours = score(walkers, run_openlfr(clip, walkers, watchlist))
        naive = score(
            walkers, run_naive(clip, walkers, watchlist, dlib_length_descriptors(watchlist))
        )
    table = Table(
        "measure",
        "OpenLFR pipeline",
        "naive recipe",
        "ratio",
        title=f"pass-by clip, {WIDTH}x{HEIGHT} at {FPS} fps (same process)",
    )
    for key in ours:
        ratio = ours[key] / naive[key] if naive[key] else float("nan")
        table.add_row(key, f"{ours[key]:.3f}", f"{naive[key]:.3f}", f"{ratio:.2f}")
    console.print(table)
    console.print(f"real time needs {FPS} fps: OpenLFR runs at {ours['fps'] / FPS:.2f}x real time")


if __name__ == "__main__":
    main()
