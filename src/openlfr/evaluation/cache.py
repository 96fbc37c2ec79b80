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
from openlfr.vision.detect import Detection
from openlfr.vision.faces import Face, resolve_model
from openlfr.vision.models import FaceModel
from openlfr.vision.quality import Quality

# Bump when a unit's pipeline changes in a way that changes its embeddings (a new alignment,
# mirror-averaging), so that old cached faces are not reused.
PIPELINE_VERSION = {"dlib-resnet-v1": 1, "mobilefacenet-v1": 1}


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


def file_key(path: str | Path, model: FaceModel, upsample: int) -> str:
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    version = PIPELINE_VERSION.get(model.name, 0)
    return f"{digest}:{model.detector}:{upsample}:{model.name}:{version}:{model_variant(model)}"


def model_variant(model: FaceModel) -> str:
    """What else distinguishes a unit's embeddings (e.g. mirror-averaging on or off)."""
    return ",".join(f"{k}={v}" for k, v in sorted(vars(model).items()))


def analyse_cached(
    paths: Sequence[str | Path],
    cache: EmbeddingCache | None,
    *,
    model: FaceModel | str | None = None,
    upsample: int = 1,
    workers: int | None = None,
    on_result: Callable[[ImageResult], None] | None = None,
) -> Iterator[ImageResult]:
    """Like ``analyse_files`` but answering from ``cache`` where it can; results in input order."""
    unit = resolve_model(model)
    results: dict[int, ImageResult] = {}
    missing: list[int] = []
    keys: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            keys[i] = file_key(path, unit, upsample)
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
        [paths[i] for i in missing], model=unit, upsample=upsample, workers=workers
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
        "model": face.model,
    }


def _face_from_json(data: dict) -> Face:
    x1, y1, x2, y2, score = data["box"]
    return Face(
        box=Detection(int(x1), int(y1), int(x2), int(y2), float(score)),
        landmarks=np.array(data["landmarks"], dtype=np.float32),
        quality=Quality(*data["quality"]),
        chip=None,
        embedding=np.array(data["embedding"], dtype=np.float32),
        model=data.get("model", ""),
    )
