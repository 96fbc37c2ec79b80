"""Face embeddings: 128 numbers per aligned chip, unit length, compared by cosine similarity.

>>> vectors = embed_chips([chip1, chip2])    # (2, 128) float32, rows of length 1

Two backends compute dlib's ResNet descriptor: ``onnx`` (the default: the same model
converted to ONNX and run by ONNX Runtime, several times faster) and ``dlib`` (dlib itself).
``OPENLFR_EMBEDDING_BACKEND=dlib`` picks dlib. They agree to within 1e-4 cosine distance on
every face tested (``tests/test_onnx.py``, ``docs/onnx.md``), so templates from either carry
the same model tag and can be compared.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openlfr.vision import dlib_models
from openlfr.vision.backends import (
    Backend,
    backend_setting,
    onnx_runtime_available,
    usable,
)

EMBEDDING_SIZE = 128

# Tests clear this cache to simulate a missing ONNX Runtime; the function is shared.
_onnx_runtime_available = onnx_runtime_available


def requested_backend() -> Backend:
    """``$OPENLFR_EMBEDDING_BACKEND`` (``onnx`` or ``dlib``), ``onnx`` when unset."""
    return backend_setting("OPENLFR_EMBEDDING_BACKEND") or "onnx"


def active_backend() -> Backend:
    """The backend ``embed_chips`` uses now: the requested one, or dlib if ONNX Runtime
    cannot be imported (warned about once)."""
    return usable(requested_backend())


def raw_descriptors(chips: Sequence[np.ndarray], backend: Backend | None = None) -> np.ndarray:
    """dlib's un-normalised descriptors, ``(n, 128)`` float32, from the given backend."""
    backend = backend or active_backend()
    if backend == "onnx":
        from openlfr.vision.onnx import onnx_embedder

        return onnx_embedder().descriptors(chips)
    model = dlib_models.descriptor_model()
    raw = model.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
    return np.array([np.array(v) for v in raw], dtype=np.float32).reshape(-1, EMBEDDING_SIZE)


def embed_chips(chips: Sequence[np.ndarray], backend: Backend | None = None) -> np.ndarray:
    """Embed aligned 150x150 RGB chips in one batch; rows are L2-normalised ``float32``.

    dlib's raw descriptors are compared by Euclidean distance; normalised, the cosine similarity
    ``a @ b`` carries the same ranking and sits on a fixed scale (see ``openlfr.matching``).
    """
    if len(chips) == 0:
        return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
    return normalise(raw_descriptors(chips, backend))


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
