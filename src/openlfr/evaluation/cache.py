"""Embeddings cached by file content, so re-running an evaluation with new thresholds is quick.

The cache holds derived biometric data of evaluation images only (never of live probes); it
lives in the data directory and ``openlfr evaluate --no-cache`` bypasses it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from openlfr.vision.batch import ImageResult, analyse_files
from openlfr.vision.detect import Detection, DetectorName
from openlfr.vision.dlib_models import EMBEDDING_MODEL
from openlfr.vision.faces import Face
from openlfr.vision.quality import Quality


class EmbeddingCache:
    """A small SQLite key-value store: (file hash, pipeline settings) -> faces found."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path))
        self._db.execute("CREATE TABLE IF NOT EXISTS faces (key TEXT PRIMARY KEY, value TEXT)")

    def get(self, key: str) -> list[Face] | None:
        row = self._db.execute("SELECT value FROM faces WHERE key = ?", (key,)).fetchone()
        return None if row is None else [_face_from_json(f) for f in json.loads(row[0])]

    def put(self, key: str, faces: list[Face]) -> None:
        value = json.dumps([_face_to_json(f) for f in faces])
        self._db.execute("INSERT OR REPLACE INTO faces VALUES (?, ?)", (key, value))

    def commit(self) -> None:
        self._db.commit()

    def close(self) -> None:
        self._db.commit()
        self._db.close()


def file_key(path: str | Path, detector: str, upsample: int) -> str:
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return f"{digest}:{detector}:{upsample}:{EMBEDDING_MODEL}"


def analyse_cached(
    paths: Sequence[str | Path],
    cache: EmbeddingCache | None,
    *,
    detector: DetectorName = "hog",
    upsample: int = 1,
    workers: int | None = None,
    on_result: Callable[[ImageResult], None] | None = None,
) -> Iterator[ImageResult]:
    """Like ``analyse_files`` but answering from ``cache`` where it can; results in input order."""
    results: dict[int, ImageResult] = {}
    missing: list[int] = []
    keys: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            keys[i] = file_key(path, detector, upsample)
        except OSError as exc:
            results[i] = ImageResult(str(path), error=f"{path}: cannot read file ({exc})")
            continue
        hit = cache.get(keys[i]) if cache else None
        if hit is None:
            missing.append(i)
        else:
            results[i] = ImageResult(str(path), hit)
    for i in results:
        if on_result:
            on_result(results[i])
    computed = analyse_files(
        [paths[i] for i in missing], detector=detector, upsample=upsample, workers=workers
    )
    for n, (i, result) in enumerate(zip(missing, computed, strict=True)):
        if cache is not None and result.error is None:
            cache.put(keys[i], result.faces)
            if n % 50 == 0:
                cache.commit()
        results[i] = result
        if on_result:
            on_result(result)
    if cache is not None:
        cache.commit()
    for i in range(len(paths)):
        yield results[i]


def _face_to_json(face: Face) -> dict:
    assert face.embedding is not None
    return {
        "box": [face.box.x1, face.box.y1, face.box.x2, face.box.y2, face.box.score],
        "landmarks": face.landmarks.tolist(),
        "quality": [
            face.quality.size_px,
            face.quality.eye_distance_px,
            face.quality.sharpness,
            face.quality.frontalness,
            face.quality.roll_deg,
        ],
        "embedding": face.embedding.tolist(),
    }


def _face_from_json(data: dict) -> Face:
    x1, y1, x2, y2, score = data["box"]
    return Face(
        box=Detection(int(x1), int(y1), int(x2), int(y2), float(score)),
        landmarks=np.array(data["landmarks"], dtype=np.float32),
        quality=Quality(*data["quality"]),
        chip=None,
        embedding=np.array(data["embedding"], dtype=np.float32),
    )
