"""Detection benchmark: dlib HOG, dlib's MMOD CNN run by dlib, and the same MMOD network run by
ONNX Runtime, in the same process on the same generated frames, as milliseconds per frame at
480p, 540p, 720p and 1080p, with ratios.

    python benchmarks/detection.py            # about 2-3 minutes on 2 cores (dlib's MMOD is slow)
    python benchmarks/detection.py --quick    # 480p and 540p only

The frames are a deterministic textured background with the astronaut (scikit-image, public
domain) pasted in, so it runs anywhere; every detector must find her face, which the table
shows. No upsampling. The ONNX time is split into its parts (building the tiled pyramid,
the network, decoding) and the load average is printed: on shared cores it explains slow runs.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.table import Table
from skimage import data

from openlfr.vision import models
from openlfr.vision.onnx.convert import DETECTOR, load_verified_model
from openlfr.vision.onnx.detector import OnnxMmodDetector, decode
from openlfr.vision.onnx.pyramid import build_tiled, tiled_layout
from openlfr.vision.onnx.runtime import default_threads

SIZES = {"480p": (854, 480), "540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080)}


def make_frame(width: int, height: int) -> np.ndarray:
    """A textured background (gradients plus fixed noise) with the astronaut pasted at 1/3."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 200 / width, y * 200 / height, (x + y) * 100 / (width + height)], -1)
    frame = np.clip(base + rng.normal(0, 12, base.shape) + 30, 0, 255).astype(np.uint8)
    astronaut = data.astronaut()[:360, 80:440]  # head and shoulders, face about 95 px
    top, left = height // 3 - 60, width // 3
    h, w = min(360, height - top), min(360, width - left)
    frame[top : top + h, left : left + w] = astronaut[:h, :w]
    return frame


def ms_per_frame(fn: Callable[[], object], min_seconds: float, min_runs: int = 3) -> float:
    """Median milliseconds over at least ``min_runs`` calls lasting ``min_seconds`` in all."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def onnx_parts(detector: OnnxMmodDetector, frame: np.ndarray) -> list[str]:
    """Milliseconds for the pyramid, the network and the decoding of one frame."""
    height, width = frame.shape[:2]
    s = detector.settings
    layout = tiled_layout(height, width, s.padding, s.outer_padding)
    tiled = build_tiled(frame, layout, s.mean_rgb)
    scores = detector.scores(tiled)
    return [
        f"{ms_per_frame(lambda: build_tiled(frame, layout, s.mean_rgb), 1.0):.0f}",
        f"{ms_per_frame(lambda: detector.scores(tiled), 2.0):.0f}",
        f"{ms_per_frame(lambda: decode(scores, height, width, s), 0.5):.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="480p and 540p only")
    args = parser.parse_args()
    sizes = {k: v for k, v in SIZES.items() if not args.quick or k in ("480p", "540p")}

    model = load_verified_model(model=DETECTOR)  # converted here on first use, not timed
    threads = default_threads()
    onnx_detectors = {f"ONNX MMOD, {threads} thread(s)": OnnxMmodDetector(model, threads=threads)}
    if threads != 1:
        onnx_detectors["ONNX MMOD, 1 thread"] = OnnxMmodDetector(model, threads=1)
    hog, mmod = models.hog_detector(), models.mmod_detector()
    warm = make_frame(*SIZES["480p"])
    hog(warm, 0), mmod(warm, 0)
    for detector in onnx_detectors.values():
        detector.detect(warm)

    table = Table(
        "frame",
        "detector",
        "ms/frame",
        "speed vs dlib MMOD",
        "faces",
        title="face detection, no upsampling",
    )
    parts = Table("frame", "pyramid ms", "network ms", "decode ms", title="ONNX MMOD, its parts")
    for label, (width, height) in sizes.items():
        frame = make_frame(width, height)
        name = f"{label} ({width}x{height})"
        hog_ms = ms_per_frame(lambda f=frame: hog(f, 0), 2.0)
        mmod_ms = ms_per_frame(lambda f=frame: mmod(f, 0), 0.0, min_runs=2)
        table.add_row(
            name, "dlib HOG", f"{hog_ms:.0f}", f"{mmod_ms / hog_ms:.1f}x", str(len(hog(frame, 0)))
        )
        table.add_row("", "dlib MMOD", f"{mmod_ms:.0f}", "1.0x", str(len(mmod(frame, 0))))
        for detector_name, detector in onnx_detectors.items():
            ms = ms_per_frame(lambda f=frame, d=detector: d.detect(f), 3.0)
            found = len(detector.detect(frame))
            table.add_row("", detector_name, f"{ms:.0f}", f"{mmod_ms / ms:.1f}x", str(found))
        parts.add_row(name, *onnx_parts(next(iter(onnx_detectors.values())), frame))
    console = Console(width=110)
    console.print(table)
    console.print(parts)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(f"{os.cpu_count()} cores; load average at the end: {load}")


if __name__ == "__main__":
    main()
