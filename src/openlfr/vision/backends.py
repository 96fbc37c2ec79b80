"""Which runtime runs dlib's networks: ``onnx`` (ONNX Runtime, the default) or ``dlib``.

One place reads the settings and checks, once per process, that ONNX Runtime can be imported;
the embedder (``OPENLFR_EMBEDDING_BACKEND``) and the MMOD detector
(``OPENLFR_DETECTOR_BACKEND``, following the embedder when unset) both ask here.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import Literal

BACKENDS = ("onnx", "dlib")
Backend = Literal["onnx", "dlib"]

log = logging.getLogger(__name__)


def backend_setting(variable: str) -> Backend | None:
    """The backend named by environment variable ``variable``, or None when it is unset."""
    value = os.environ.get(variable, "").strip().lower()
    if not value:
        return None
    if value not in BACKENDS:
        raise ValueError(f"{variable}={value!r} is not a backend: use 'onnx' or 'dlib'")
    return value  # type: ignore[return-value]


@cache
def onnx_runtime_available() -> bool:
    """Whether ONNX Runtime imports; when it does not, says so once and dlib is used."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        log.warning(
            "ONNX Runtime is not available (%s): running dlib's models with dlib instead, "
            "which is slower (pip install onnx onnxruntime)",
            exc,
        )
        return False
    return True


def usable(requested: Backend) -> Backend:
    """``requested``, or dlib when that is ``onnx`` and ONNX Runtime cannot be imported."""
    return "dlib" if requested == "onnx" and not onnx_runtime_available() else requested
