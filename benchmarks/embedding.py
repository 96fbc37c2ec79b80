"""Embedding benchmark: dlib's descriptor run by dlib and by ONNX Runtime (the converted model),
in the same process on the same chips, at batch 1 and 32, printed as faces per second and ratios.

    python benchmarks/embedding.py            # about a minute on 2 cores

The chips are the astronaut's (scikit-image, public domain) and its mirror image, so it runs
anywhere. The load average is printed too: on shared cores it explains slow runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.table import Table
from skimage import data

from openlfr.vision import find_faces
from openlfr.vision.embed import raw_descriptors
from openlfr.vision.onnx.convert import load_verified_model
from openlfr.vision.onnx.runtime import OnnxEmbedder, default_threads


def faces_per_second(fn: Callable[[], object], batch: int, min_seconds: float) -> float:
    """Median rate over repeated calls lasting at least ``min_seconds``, after a warm-up."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return batch / float(np.median(times))


def main() -> None:
    chip = find_faces(data.astronaut(), embed=False)[0].chip
    chips = [chip[:, ::-1].copy() if i % 2 else chip for i in range(32)]
    model = load_verified_model()  # converted here on first use, not timed
    threads = default_threads()
    embedders = {
        f"ONNX Runtime, {threads} thread(s)": OnnxEmbedder(model, threads=threads),
    }
    if threads != 1:
        embedders["ONNX Runtime, 1 thread"] = OnnxEmbedder(model, threads=1)

    table = Table("backend", "batch", "faces/s", "vs dlib", title="dlib's face descriptor")
    for batch in (1, 32):
        some = chips[:batch]
        dlib_rate = faces_per_second(lambda s=some: raw_descriptors(s, "dlib"), batch, 4.0)
        table.add_row("dlib", str(batch), f"{dlib_rate:.1f}", "1.0x")
        for name, embedder in embedders.items():
            rate = faces_per_second(lambda s=some, e=embedder: e.descriptors(s), batch, 3.0)
            table.add_row(name, str(batch), f"{rate:.1f}", f"{rate / dlib_rate:.1f}x")
    console = Console(width=100)
    console.print(table)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(f"{os.cpu_count()} cores; load average before the end: {load}")


if __name__ == "__main__":
    main()
