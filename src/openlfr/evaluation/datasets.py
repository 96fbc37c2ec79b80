"""Evaluation data on disk: identity folders (one sub-folder per person) and stranger sets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from openlfr.config import data_dir
from openlfr.errors import OpenLFRError
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


# celeba-dev's two label errors, which every benchmark corrects (docs/calibration.md; all the
# models agree): celeb7392 and celeb7393 are one person (142 of 144 photo pairs above 0.55
# cosine with MobileFaceNet, where strangers' median is 0.02), and celeb7450's 026072.jpg is a
# photo of celeb7433 (0.73-0.89 to all 12 of hers). As labelled, they count true matches as
# false alerts at every high threshold.
CELEBA_DEV_FIXES = ["celeb7393=celeb7392", "026072.jpg=celeb7433"]


def relabel(people: dict[str, list[Path]], fixes: list[str]) -> dict[str, list[Path]]:
    """Identity folders with label errors corrected: each fix is ``SOURCE=IDENTITY``, where
    SOURCE is an identity (all its images move: two folders of one person) or an image file
    name inside one (that image moves). A name that matches nothing is an error."""
    fixed = {name: list(images) for name, images in people.items()}
    for fix in fixes:
        source, _, target = fix.partition("=")
        if not target or target not in fixed:
            raise OpenLFRError(f"--relabel {fix!r}: use SOURCE=IDENTITY, an identity that exists")
        if source in fixed:
            fixed[target] = sorted(fixed[target] + fixed.pop(source))
            continue
        found = [(n, p) for n, images in fixed.items() for p in images if p.name == source]
        if len(found) != 1:
            raise OpenLFRError(f"--relabel {fix!r}: {source!r} names no identity or single image")
        name, path = found[0]
        fixed[name].remove(path)
        fixed[target] = sorted(fixed[target] + [path])
    return {name: images for name, images in fixed.items() if images}


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
