"""Detection benchmark: dlib HOG, dlib's MMOD CNN run by dlib, and the same MMOD network run by
ONNX Runtime (fp32, the default, and the opt-in int8 variant), in the same process on the
same generated frames, as milliseconds per frame at 480p, 540p, 720p and 1080p, with ratios.

    python benchmarks/detection.py            # about 2-3 minutes on 2 cores (dlib's MMOD is slow)
    python benchmarks/detection.py --quick    # 480p and 540p only

The frames are a deterministic textured background with the astronaut (scikit-image, public
domain) pasted in, so it runs anywhere; every detector must find her face, which the table
shows. No upsampling. The ONNX time is split into its parts (building the tiled pyramid,
the network, decoding with the last convolution's tap sum) and the load average is printed:
on shared cores it explains slow runs. Each round of timing runs every detector once, so
that other jobs on the machine slow them alike.
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

from openlfr.vision import dlib_models
from openlfr.vision.onnx.convert import DETECTOR, DETECTOR_INT8, load_verified_model
from openlfr.vision.onnx.detector import OnnxMmodDetector, decode, sum_taps
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


def ms_interleaved(fns: dict[str, Callable[[], object]], min_seconds: float) -> dict[str, float]:
    """Median milliseconds of each function, called in turn (round robin) for at least
    ``min_seconds`` and 5 rounds: a load that comes and goes is shared fairly."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    while min(map(len, times.values())) < 5 or time.perf_counter() - start < min_seconds:
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def onnx_parts(detector: OnnxMmodDetector, frame: np.ndarray) -> list[str]:
    """Milliseconds for the pyramid, the network and the decoding of one frame."""
    height, width = frame.shape[:2]
    s = detector.settings
    layout = tiled_layout(height, width, s.padding, s.outer_padding)
    tiled = build_tiled(frame, layout, s.mean_rgb)
    taps = detector.taps(tiled)

    def decoded() -> object:
        scores = sum_taps(taps, s.taps_bias, s.taps_kernel, s.taps_padding)
        return decode(scores, height, width, s)

    return [
        f"{ms_per_frame(lambda: build_tiled(frame, layout, s.mean_rgb), 1.0):.0f}",
        f"{ms_per_frame(lambda: detector.taps(tiled), 2.0):.0f}",
        f"{ms_per_frame(decoded, 0.5):.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="480p and 540p only")
    args = parser.parse_args()
    sizes = {k: v for k, v in SIZES.items() if not args.quick or k in ("480p", "540p")}

    # Converted here on first use, not timed.
    fp32, int8 = load_verified_model(model=DETECTOR), load_verified_model(model=DETECTOR_INT8)
    threads = default_threads()
    onnx_detectors = {
        f"ONNX MMOD fp32, {threads} thread(s)": OnnxMmodDetector(fp32, threads=threads),
        f"ONNX MMOD int8, {threads} thread(s)": OnnxMmodDetector(int8, threads=threads),
    }
    if threads != 1:
        onnx_detectors["ONNX MMOD fp32, 1 thread"] = OnnxMmodDetector(fp32, threads=1)
    hog, mmod = dlib_models.hog_detector(), dlib_models.mmod_detector()
    warm = make_frame(*SIZES["480p"])
    hog(warm, 0), mmod(warm, 0)
    for detector in onnx_detectors.values():
        detector.detect(warm)

    table = Table(
        "frame",
        "detector",
        "ms/frame",
        "speed vs dlib MMOD",
        "vs ONNX fp32",
        "faces",
        title="face detection, no upsampling",
    )
    parts = Table(
        "frame", "variant", "pyramid ms", "network ms", "decode ms", title="ONNX MMOD, its parts"
    )
    for label, (width, height) in sizes.items():
        frame = make_frame(width, height)
        name = f"{label} ({width}x{height})"
        hog_ms = ms_per_frame(lambda f=frame: hog(f, 0), 2.0)
        mmod_ms = ms_per_frame(lambda f=frame: mmod(f, 0), 0.0, min_runs=2)
        onnx_ms = ms_interleaved(
            {k: (lambda f=frame, d=d: d.detect(f)) for k, d in onnx_detectors.items()}, 6.0
        )
        reference = next(iter(onnx_ms.values()))
        table.add_row(
            name,
            "dlib HOG",
            f"{hog_ms:.0f}",
            f"{mmod_ms / hog_ms:.1f}x",
            "",
            str(len(hog(frame, 0))),
        )
        table.add_row("", "dlib MMOD", f"{mmod_ms:.0f}", "1.0x", "", str(len(mmod(frame, 0))))
        for detector_name, detector in onnx_detectors.items():
            ms = onnx_ms[detector_name]
            found = len(detector.detect(frame))
            table.add_row(
                "",
                detector_name,
                f"{ms:.0f}",
                f"{mmod_ms / ms:.1f}x",
                f"{ms / reference:.2f}",
                str(found),
            )
        for variant, detector in list(onnx_detectors.items())[:2]:
            parts.add_row(name, variant.split(",")[0], *onnx_parts(detector, frame))
            name = ""
    console = Console(width=120)
    console.print(table)
    console.print(parts)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(f"{os.cpu_count()} cores; load average at the end: {load}")


if __name__ == "__main__":
    main()
