"""Embedding benchmark: each face model's embedding in the same process, at batch 1 and 32,
printed as faces per second and ratios: dlib's ResNet run by dlib and by ONNX Runtime (the
converted model), and MobileFaceNet on ONNX Runtime as shipped (the chip and its mirror image
embedded) and without the mirror image.

    python benchmarks/embedding.py            # about two minutes on 2 cores

The chips are the astronaut's (scikit-image, public domain) and its mirror image, aligned by
each model's own unit, so it runs anywhere (MobileFaceNet's rows need ``openlfr models
install``). The load average is printed too: on shared cores it explains slow runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.table import Table
from skimage import data

from openlfr.errors import ModelMissingError
from openlfr.vision import find_faces
from openlfr.vision.embed import raw_descriptors
from openlfr.vision.models import get_model
from openlfr.vision.onnx.convert import load_verified_model
from openlfr.vision.onnx.runtime import OnnxEmbedder, default_threads

# Issue 12: the default model embeds at least this many faces/s at batch 32 on 2 cores.
TARGET_FACES_PER_S = 400


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


def chips_of(model: object, n: int = 32) -> list[np.ndarray]:
    """``n`` chips of the astronaut, every other one mirrored, aligned by ``model``'s unit."""
    chip = find_faces(data.astronaut(), model=model, embed=False)[0].chip  # type: ignore[arg-type]
    return [chip[:, ::-1].copy() if i % 2 else chip for i in range(n)]


def main() -> None:
    threads = default_threads()
    dlib_chips = chips_of("dlib-resnet-v1")
    onnx_model = load_verified_model()  # converted here on first use, not timed
    # name -> (embed function over a list of chips, the chips it takes)
    runs: dict[str, tuple[Callable[[list[np.ndarray]], object], list[np.ndarray]]] = {
        "dlib ResNet, dlib": (lambda s: raw_descriptors(s, "dlib"), dlib_chips),
    }
    embedder = OnnxEmbedder(onnx_model, threads=threads)
    runs[f"dlib ResNet, ONNX Runtime, {threads} thread(s)"] = (embedder.descriptors, dlib_chips)
    if threads != 1:
        runs["dlib ResNet, ONNX Runtime, 1 thread"] = (
            OnnxEmbedder(onnx_model, threads=1).descriptors,
            dlib_chips,
        )
    missing = ""
    try:
        shipped = get_model("mobilefacenet-v1")
    except ModelMissingError as exc:
        missing = str(exc)
    else:
        from openlfr.vision.models.mobilefacenet import MobileFaceNet

        mfn_chips = chips_of(shipped)
        runs[f"mobilefacenet-v1 (mirror), {threads} thread(s)"] = (shipped.embed, mfn_chips)
        runs[f"MobileFaceNet(mirror=False), {threads} thread(s)"] = (
            MobileFaceNet(mirror=False).embed,
            mfn_chips,
        )

    rates: dict[tuple[str, int], float] = {}
    for batch in (1, 32):
        for name, (embed, chips) in runs.items():
            some = chips[:batch]
            rates[name, batch] = faces_per_second(
                lambda e=embed, s=some: e(s), batch, 4.0 if "dlib" in name else 3.0
            )
    onnx_name = f"dlib ResNet, ONNX Runtime, {threads} thread(s)"
    table = Table(
        "model, runtime",
        "batch",
        "faces/s",
        "vs dlib",
        "vs ResNet on ONNX",
        title="face embedding, same process, same astronaut chips",
    )
    for batch in (1, 32):
        for name in runs:
            rate = rates[name, batch]
            table.add_row(
                name,
                str(batch),
                f"{rate:.1f}",
                f"{rate / rates['dlib ResNet, dlib', batch]:.1f}x",
                f"{rate / rates[onnx_name, batch]:.2f}x",
            )
    console = Console(width=110)
    console.print(table)
    if missing:
        console.print(f"MobileFaceNet left out: {missing}")
    else:
        shipped_rate = rates[f"mobilefacenet-v1 (mirror), {threads} thread(s)", 32]
        verdict = "met" if shipped_rate >= TARGET_FACES_PER_S else "NOT met"
        console.print(
            f"issue 12: mobilefacenet-v1 at batch 32 embeds {shipped_rate:.0f} faces/s "
            f"(target {TARGET_FACES_PER_S} on 2 cores: {verdict})"
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(f"{os.cpu_count()} cores; load average before the end: {load}")


if __name__ == "__main__":
    main()
