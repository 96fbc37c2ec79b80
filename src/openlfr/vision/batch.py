"""Many images on both cores: ``analyse_files`` runs ``find_faces`` in a pool of processes.

>>> for result in analyse_files(paths, workers=2):
...     print(result.path, result.error or len(result.faces))
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from openlfr.errors import ImageError
from openlfr.vision.faces import Face, find_faces, resolve_model
from openlfr.vision.image import load_image
from openlfr.vision.models import FaceModel

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"}


@dataclass(slots=True)
class ImageResult:
    """The faces found in one image file, or why it could not be read."""

    path: str
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    width: int = 0  # of the upright image, as decoded
    height: int = 0


def list_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files among ``paths``; folders are searched recursively, in sorted order."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            found.append(path)
    return found


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def analyse_file(
    path: str | Path,
    model: FaceModel | str | None = None,
    upsample: int = 1,
    keep_chips: bool = False,
) -> ImageResult:
    """``find_faces`` on one file, errors caught and reported rather than raised."""
    try:
        rgb = load_image(path)
        faces = find_faces(rgb, model=model, upsample=upsample)
    except ImageError as exc:
        return ImageResult(str(path), error=str(exc))
    if not keep_chips:
        for face in faces:
            face.chip = None  # chips are large to send between processes and rarely needed
    height, width = rgb.shape[:2]
    return ImageResult(str(path), faces, width=width, height=height)


def _one_thread_per_worker() -> None:
    # Each worker process already has a core: ONNX Runtime threads beyond that only contend.
    os.environ["OPENLFR_ONNX_THREADS"] = "1"


def analyse_files(
    paths: Sequence[str | Path],
    *,
    model: FaceModel | str | None = None,
    upsample: int = 1,
    workers: int | None = None,
    keep_chips: bool = False,
) -> Iterator[ImageResult]:
    """Analyse files in order with ``model`` (None: the configured one), on ``workers``
    processes (all cores by default)."""
    unit = resolve_model(model)  # here, so that a missing model fails before any work
    workers = workers or default_workers()
    if workers == 1 or len(paths) < 4:
        for path in paths:
            yield analyse_file(path, unit, upsample, keep_chips)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread_per_worker) as pool:
        n = len(paths)
        yield from pool.map(
            analyse_file, paths, [unit] * n, [upsample] * n, [keep_chips] * n, chunksize=4
        )
