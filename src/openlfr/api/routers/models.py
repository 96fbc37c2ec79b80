"""Face models: which the service has, which it uses when none is named, and their cards."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from openlfr.api import roles
from openlfr.api.deps import allow
from openlfr.api.schemas import ModelCardOut, ModelOut
from openlfr.errors import ModelMissingError, OpenLFRError
from openlfr.store.models import User
from openlfr.vision.models import (
    FaceModel,
    aliases,
    canonical_name,
    get_model,
    listed_default,
    model_names,
)
from openlfr.vision.models import _units as units

router = APIRouter(prefix="/api/models", tags=["models"])
Anyone = Annotated[User, Depends(allow(roles.MODEL_READ))]

# A model named in a request that this server does not have: the request is fine, the server's
# state is not (409, with the message saying 'openlfr models install'). Not 503: nothing here
# gets better by retrying, and a 5xx reads as the service failing.
MODEL_MISSING = 409


def model_unit(name: str | None = None) -> FaceModel:
    """The named (or configured) face model, as HTTP errors: unknown name 422, not installed
    409 (``MODEL_MISSING``)."""
    if name is not None:
        try:
            name = canonical_name(name)
        except OpenLFRError as exc:
            raise HTTPException(422, str(exc)) from exc
    try:
        return get_model(name)
    except ModelMissingError as exc:
        raise HTTPException(MODEL_MISSING, str(exc)) from exc
    except OpenLFRError as exc:  # $OPENLFR_MODEL names no model: the server's configuration
        raise HTTPException(MODEL_MISSING, f"the configured face model is unusable: {exc}") from exc


@router.get("", response_model=list[ModelOut])
def list_models(user: Anyone) -> list[ModelOut]:
    """Every face model: installed here or not, the default now, and its card."""
    default = listed_default()
    out = []
    for name in model_names():
        unit = units()[name]
        out.append(
            ModelOut(
                name=name,
                aliases=aliases(name),
                installed=unit.installed(),
                default=name == default,
                embedding_size=unit.embedding_size,
                chip_size=unit.chip_size,
                detector=unit.detector,
                landmarks=unit.landmarks,
                runtime=unit.runtime,
                card=ModelCardOut(**asdict(unit.card)),
            )
        )
    return out
