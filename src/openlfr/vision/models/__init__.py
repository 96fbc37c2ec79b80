"""Face models as units, chosen by name (the name is also the templates' tag).

>>> from openlfr.vision.models import get_model
>>> model = get_model()                    # $OPENLFR_MODEL, else the best installed one
>>> model.name, model.embedding_size
('mobilefacenet-v1', 192)

| name | detector, landmarks | chip | size | note |
|---|---|---|---|---|
| ``mobilefacenet-v1`` | HOG, dlib 68 -> ArcFace 5 | 112, ArcFace's | 192 | default once installed |
| ``dlib-resnet-v1`` | HOG, dlib 5 | 150, dlib's | 128 | the fallback, always there |

Each unit is one module (``dlib_resnet.py``, ``mobilefacenet.py``); its calibration (score rule
and thresholds) is data beside it (``calibration/<name>.json``, written by ``openlfr
calibrate --model``); ``install.py`` installs the weights that do not come with pip.
"""

from __future__ import annotations

import logging
import os
from functools import cache

from openlfr.errors import ModelMissingError, OpenLFRError
from openlfr.vision.models.base import FaceModel, Landmarked, ModelCard
from openlfr.vision.models.dlib_resnet import DlibResnet
from openlfr.vision.models.mobilefacenet import MobileFaceNet

log = logging.getLogger(__name__)

FALLBACK = "dlib-resnet-v1"
PREFERRED = "mobilefacenet-v1"
# Short names a person may type; templates always carry the full name.
ALIASES = {"dlib": "dlib-resnet-v1", "mobilefacenet": "mobilefacenet-v1"}


@cache
def _units() -> dict[str, FaceModel]:
    units: list[FaceModel] = [MobileFaceNet(), DlibResnet()]
    return {unit.name: unit for unit in units}


def model_names() -> list[str]:
    return list(_units())


def canonical_name(name: str) -> str:
    """The full name of a model from its name or alias; an unknown name is an error."""
    name = ALIASES.get(name.strip().lower(), name.strip())
    if name not in _units():
        raise OpenLFRError(f"unknown face model {name!r}: choose from {', '.join(_units())}")
    return name


def aliases(name: str) -> list[str]:
    """The short names that stand for model ``name``."""
    return sorted(alias for alias, full in ALIASES.items() if full == name)


def configured_name() -> str:
    """The model used when none is named: ``$OPENLFR_MODEL``, else ``default_model_name``;
    an unknown name in ``$OPENLFR_MODEL`` is an error."""
    return canonical_name(os.environ.get("OPENLFR_MODEL") or default_model_name())


def listed_default() -> str | None:
    """``configured_name()`` for listings: None when ``$OPENLFR_MODEL`` names no model."""
    try:
        return configured_name()
    except OpenLFRError:
        return None


def get_model(name: str | None = None) -> FaceModel:
    """The named model, or the configured one (``configured_name``).

    A model that is named but not installed is an error that says how to install it."""
    name = canonical_name(name) if name else configured_name()
    unit = _units()[name]
    if not unit.installed():
        raise ModelMissingError(
            f"face model {name} is not installed: run 'openlfr models install' "
            "(or 'openlfr models install --from FILE.tgz' on a machine without network)"
        )
    return unit


def default_model_name() -> str:
    """MobileFaceNet when installed; otherwise dlib's ResNet, with one warning per process."""
    if _units()[PREFERRED].installed():
        return PREFERRED
    _warn_fallback()
    return FALLBACK


@cache
def _warn_fallback() -> None:
    log.warning(
        "face model %s is not installed, so %s is used, which finds far fewer watchlisted "
        "people at the same false-alert rate: run 'openlfr models install'",
        PREFERRED,
        FALLBACK,
    )


__all__ = [
    "FaceModel",
    "Landmarked",
    "ModelCard",
    "ModelMissingError",
    "aliases",
    "canonical_name",
    "configured_name",
    "default_model_name",
    "listed_default",
    "get_model",
    "model_names",
]
