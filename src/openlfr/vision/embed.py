"""Face embeddings: 128 numbers per aligned chip, unit length, compared by cosine similarity.

>>> vectors = embed_chips([chip1, chip2])    # (2, 128) float32, rows of length 1
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openlfr.vision import models

EMBEDDING_SIZE = 128


def embed_chips(chips: Sequence[np.ndarray]) -> np.ndarray:
    """Embed aligned 150x150 RGB chips in one batch; rows are L2-normalised ``float32``.

    dlib's raw descriptors are compared by Euclidean distance; normalised, the cosine similarity
    ``a @ b`` carries the same ranking and sits on a fixed scale (see ``openlfr.matching``).
    """
    if len(chips) == 0:
        return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
    model = models.descriptor_model()
    raw = model.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
    vectors = np.array([np.array(v) for v in raw], dtype=np.float32)
    return normalise(vectors)


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
