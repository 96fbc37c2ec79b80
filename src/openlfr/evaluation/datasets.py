"""Evaluation data on disk: identity folders (one sub-folder per person) and stranger sets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from openlfr.config import data_dir
from openlfr.evaluation.cache import EmbeddingCache, analyse_cached
from openlfr.vision.batch import ImageResult, list_images
from openlfr.vision.faces import Face
from openlfr.vision.models import FaceModel


def identity_folders(root: Path) -> dict[str, list[Path]]:
    """``{identity: [images sorted by name]}`` for each sub-folder of ``root`` holding images."""
    people = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = list_images([folder])
        if images:
            people[folder.name] = images
    return people


def default_cache() -> EmbeddingCache:
    return EmbeddingCache(data_dir() / "cache" / "embeddings.sqlite3")


def largest_faces(
    paths: Sequence[Path],
    *,
    cache: EmbeddingCache | None,
    upsample: int = 1,
    model: FaceModel | str | None = None,
    on_result: Callable[[ImageResult], None] | None = None,
) -> dict[Path, Face | None]:
    """The largest face of each image (None where no face was found or the image is unreadable).

    Evaluation photos may show bystanders; the largest face is the one the photo is of.
    """
    faces: dict[Path, Face | None] = {}
    results = analyse_cached(paths, cache, model=model, upsample=upsample, on_result=on_result)
    for path, result in zip(paths, results, strict=True):
        faces[path] = max(result.faces, key=lambda f: f.box.width) if result.faces else None
    return faces
