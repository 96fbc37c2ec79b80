"""Recognition engine benchmark: OpenLFR's stages beside the plain face_recognition-style recipe,
run in the same process on the same inputs, printed as ratios.

    python benchmarks/engine.py            # about a minute on 2 cores

Inputs are generated (scikit-image's public-domain astronaut on a frame of the given size;
random unit vectors for search), so it runs anywhere. The recipe is dlib's, so OpenLFR runs
with dlib's model here (``dlib-resnet-v1``); ``embedding.py`` puts MobileFaceNet beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table
from skimage import data

from openlfr.matching import WatchlistIndex
from openlfr.vision import detect_faces, dlib_models, find_faces
from openlfr.vision.embed import embed_chips, normalise

MODEL = "dlib-resnet-v1"  # the recipe's model, so that like is timed against like


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def frame(width: int, height: int) -> np.ndarray:
    """A grey frame with the astronaut's face at about LFR scale (face ~1/6 of the height)."""
    canvas = np.full((height, width, 3), 110, np.uint8)
    portrait = data.astronaut()[:256, 128:384]
    size = height // 3
    canvas[height // 4 : height // 4 + size, width // 3 : width // 3 + size] = cv2.resize(
        portrait, (size, size)
    )
    return canvas


def main() -> None:
    rows: list[tuple[str, str, float, str, float]] = []

    # Detection: the recipe upsamples once (face_recognition's default); live frames need not.
    for name, (w, h) in {"480p": (854, 480), "720p": (1280, 720)}.items():
        img = frame(w, h)
        recipe = timed(lambda img=img: dlib_models.hog_detector()(img, 1), 5)
        ours = timed(lambda img=img: detect_faces(img, upsample=0), 5)
        rows.append((f"detect {name}", "HOG, upsample 1", recipe, "HOG, upsample 0", ours))

    # Embedding: the recipe computes each face from the full image with 68 landmarks, one by one.
    astronaut = data.astronaut()
    chip = find_faces(astronaut, model=MODEL)[0].chip
    chips = [chip[:, ::-1].copy() if i % 2 else chip for i in range(32)]
    import dlib

    shape68 = dlib.shape_predictor(
        str(dlib_models.model_path("landmarks5")).replace(
            "shape_predictor_5_face_landmarks", "shape_predictor_68_face_landmarks"
        )
    )
    rect = dlib_models.hog_detector()(astronaut, 0)[0]
    landmarks = shape68(astronaut, rect)
    recipe_one = timed(
        lambda: dlib_models.descriptor_model().compute_face_descriptor(astronaut, landmarks, 1), 10
    )
    ours_one = timed(lambda: embed_chips([chip]), 10)
    ours_batch = timed(lambda: embed_chips(chips), 3) / len(chips)
    rows.append(
        ("embed, per face", "full image, 1 at a time", recipe_one, "chip, 1 at a time", ours_one)
    )
    rows.append(
        ("embed, per face", "full image, 1 at a time", recipe_one, "chips, batch of 32", ours_batch)
    )

    # Search: the recipe's face_distance over every template, one probe at a time.
    rng = np.random.default_rng(0)
    for n in (1_000, 10_000, 100_000):
        gallery = normalise(rng.normal(size=(n, 128)).astype(np.float32))
        subjects = np.arange(n) // 2  # two templates per subject
        index = WatchlistIndex(
            gallery, subjects, {i: f"s{i}" for i in range(n // 2 + 1)}, model=MODEL
        )
        probes = normalise(rng.normal(size=(64, 128)).astype(np.float32))

        def recipe_search(gallery: np.ndarray = gallery, probes: np.ndarray = probes) -> None:
            for probe in probes:
                distances = np.linalg.norm(gallery - probe, axis=1)
                int(np.argmin(distances))

        recipe = timed(recipe_search, 3) / len(probes)
        ours = timed(lambda index=index, probes=probes: index.search(probes, top_k=5), 3) / len(
            probes
        )
        rows.append(
            (f"search {n:,} templates", "face_distance per probe", recipe, "index, 64 probes", ours)
        )

    table = Table(
        "stage",
        "recipe",
        "recipe ms",
        "OpenLFR",
        "OpenLFR ms",
        "speed-up",
        title="OpenLFR engine vs the face_recognition-style recipe (same process)",
    )
    for stage, recipe_name, recipe_s, ours_name, ours_s in rows:
        table.add_row(
            stage,
            recipe_name,
            f"{recipe_s * 1000:.2f}",
            ours_name,
            f"{ours_s * 1000:.2f}",
            f"{recipe_s / ours_s:.1f}x",
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
