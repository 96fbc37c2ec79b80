"""Face detectors compared: MTCNN (``openlfr.vision.mtcnn``) against dlib's HOG, in the same
process on the same images.

    python benchmarks/detectors.py --data ../shared/data --models /path/to/models
    python benchmarks/detectors.py --limit 50 --frames 10      # a quick look

1. Recall on single-face sets: on every image of ``faces/fairface540`` and
   ``faces/utkface-demographics`` (one face each), the share of images where each detector finds
   at least one face, the share where it finds more than one, and the milliseconds per image.
2. Speed on 960x540 frames of ``video/openmpf-marathon-crowd.mkv`` (a crowd running towards
   the camera): milliseconds per frame and faces per frame for MTCNN at ``min_face`` 20 and 40
   against HOG without upsampling.

MTCNN runs on ONNX Runtime (the networks converted by ``openlfr.vision.tflite``) when that
converter is there, else on LiteRT; ``--runtime both`` times both. The data folder is
``--data`` or ``$OPENLFR_TEST_DATA``; the weights are ``<models>/mobilefacenet/*.tflite``,
``--models`` or ``$OPENLFR_MODELS_DIR``. Each image or frame is given to every detector in
turn, so that a load from other jobs slows them alike; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from openlfr.vision.detect import detect_faces
from openlfr.vision.mtcnn import MtcnnDetector, litert_net
from openlfr.vision.onnx.runtime import default_threads

NETS = ("pnet", "rnet", "onet")
FACE_SETS = ("fairface540", "utkface-demographics")
VIDEO = "video/openmpf-marathon-crowd.mkv"
FRAME_SIZE = (960, 540)

Detect = Callable[[np.ndarray], int]  # an RGB image -> the number of faces found


def mtcnn_detectors(models: Path, runtime: str, min_faces: list[int]) -> dict[str, Detect]:
    """``MTCNN <runtime> min_face=N`` detectors for each runtime asked for."""
    tflite = {n: (models / "mobilefacenet" / f"{n}.tflite").read_bytes() for n in NETS}
    runtimes = ["onnx", "litert"] if runtime == "both" else [runtime]
    if runtime == "auto":
        try:
            from openlfr.vision.tflite import convert_tflite  # noqa: F401

            runtimes = ["onnx"]
        except ImportError:
            runtimes = ["litert"]
    threads = default_threads()
    out: dict[str, Detect] = {}
    for name in runtimes:
        if name == "onnx":
            from openlfr.vision.tflite import convert_tflite

            onnx = [
                convert_tflite(tflite[n], dynamic_spatial=n == "pnet").SerializeToString()
                for n in NETS
            ]
            base = MtcnnDetector.from_onnx(*onnx, threads=threads)
        else:
            base = MtcnnDetector(*(litert_net(tflite[n], threads) for n in NETS))
        for min_face in min_faces:
            detector = MtcnnDetector(base.pnet, base.rnet, base.onet, min_face=min_face)
            out[f"MTCNN {name} min_face={min_face}"] = _counter(detector.detect)
    return out


def hog(upsample: int) -> Detect:
    return _counter(lambda rgb: detect_faces(rgb, upsample=upsample))


def _counter(fn: Callable[[np.ndarray], list]) -> Detect:
    return lambda rgb: len(fn(rgb))


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def run_all(detectors: dict[str, Detect], images: list[np.ndarray]) -> dict[str, dict]:
    """Faces found per image and seconds per image, each image through every detector."""
    found: dict[str, list[int]] = {name: [] for name in detectors}
    seconds: dict[str, list[float]] = {name: [] for name in detectors}
    for detect in detectors.values():  # load models, plan each runtime's shapes: not timed
        detect(images[0])
    for rgb in images:
        for name, detect in detectors.items():
            t = time.perf_counter()
            found[name].append(detect(rgb))
            seconds[name].append(time.perf_counter() - t)
    return {name: {"found": np.array(found[name]), "s": np.array(seconds[name])} for name in found}


def face_sets(data: Path, detectors: dict[str, Detect], limit: int | None) -> Table:
    table = Table(title="Single-face sets: images with a face found")
    for column in ("set", "images", "detector", ">= 1 face", "> 1 face", "ms/image (median)"):
        table.add_column(column, justify="left" if column in ("set", "detector") else "right")
    for name in FACE_SETS:
        paths = sorted((data / "faces" / name).rglob("*.jpg"))[:limit]
        images = [read_rgb(p) for p in paths]
        results = run_all(detectors, images)
        for i, (detector, r) in enumerate(results.items()):
            table.add_row(
                name if i == 0 else "",
                str(len(images)) if i == 0 else "",
                detector,
                f"{100 * np.mean(r['found'] >= 1):.1f}%",
                f"{100 * np.mean(r['found'] > 1):.1f}%",
                f"{1000 * np.median(r['s']):.1f}",
            )
        table.add_section()
    return table


def video_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over the video, resized to 960x540, RGB."""
    capture = cv2.VideoCapture(str(path))
    step = max(1, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) // count)
    frames: list[np.ndarray] = []
    index = 0
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        if index % step == 0:
            bgr = cv2.resize(bgr, FRAME_SIZE, interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        index += 1
    capture.release()
    if not frames:
        raise OSError(f"no frames read from {path}")
    return frames


def frame_speed(data: Path, detectors: dict[str, Detect], count: int) -> Table:
    frames = video_frames(data / VIDEO, count)
    results = run_all(detectors, frames)
    table = Table(title=f"{len(frames)} frames of {Path(VIDEO).name} at 960x540")
    for column in ("detector", "ms/frame (median)", "ms/frame (mean)", "faces/frame"):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for detector, r in results.items():
        table.add_row(
            detector,
            f"{1000 * np.median(r['s']):.0f}",
            f"{1000 * np.mean(r['s']):.0f}",
            f"{np.mean(r['found']):.1f}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("OPENLFR_TEST_DATA"))
    parser.add_argument("--models", type=Path, default=os.environ.get("OPENLFR_MODELS_DIR"))
    parser.add_argument("--runtime", choices=["auto", "onnx", "litert", "both"], default="auto")
    parser.add_argument("--limit", type=int, help="at most this many images per face set")
    parser.add_argument("--frames", type=int, default=30, help="video frames to time (at most)")
    args = parser.parse_args()
    if args.data is None or args.models is None:
        parser.error("give --data and --models (or set OPENLFR_TEST_DATA, OPENLFR_MODELS_DIR)")

    console = Console(width=110)
    start = time.perf_counter()
    one_face = {**mtcnn_detectors(args.models, args.runtime, [20]), "HOG upsample=1": hog(1)}
    one_face["HOG upsample=0"] = hog(0)
    console.print(face_sets(args.data, one_face, args.limit))
    frames = {**mtcnn_detectors(args.models, args.runtime, [20, 40]), "HOG upsample=0": hog(0)}
    console.print(frame_speed(args.data, frames, args.frames))
    console.print(
        f"threads: ONNX Runtime/LiteRT {default_threads()}, dlib HOG 1; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
        f"{time.perf_counter() - start:.0f} s in all"
    )


if __name__ == "__main__":
    main()
