"""The API's contract: request and response bodies, as Pydantic models (published as OpenAPI)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, get_args

from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from openlfr.api.roles import Role
from openlfr.governance.reports import DeploymentFigures
from openlfr.inputs import text_problem

# PostgreSQL text cannot hold NUL; no legitimate input has one, so it is refused up front (422)
NO_NUL = r"^[^\x00]*$"
# Names end up in URLs, file names and logs: letters, digits, spaces and a little punctuation,
# never a path separator or a leading dot ("../x", "/etc", "a\\b" are refused with 422).
SafeName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[\w][\w .'@()-]*$"
    ),
]
Text = Annotated[str, StringConstraints(max_length=10_000, pattern=NO_NUL)]


class _Prose:
    """Marks a text field that may hold line feeds and tabs (``openlfr.inputs.text_problem``)."""


PROSE = _Prose()
# Free text: a reason, a note, a description. Every other text field is one line.
Prose = Annotated[str, StringConstraints(max_length=10_000, pattern=NO_NUL), PROSE]
Purpose = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=NO_NUL)]
# Row ids as the databases store them (32-bit): a larger number is a 422, not an overflow
RowId = Annotated[int, Field(ge=1, le=2_147_483_647)]
QueryId = Annotated[int | None, Query(ge=1, le=2_147_483_647)]


class Orm(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _is_prose(annotation: object) -> bool:
    """Whether a field's type carries ``PROSE``, also inside ``Prose | None``."""
    if any(m is PROSE for m in getattr(annotation, "__metadata__", ())):
        return True
    return any(_is_prose(arg) for arg in get_args(annotation))


def _check_text(value: object, multiline: bool) -> None:
    if isinstance(value, str):
        if (problem := text_problem(value, multiline=multiline)) is not None:
            raise ValueError(problem)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _check_text(item, multiline)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, False)
            _check_text(item, multiline)


class In(BaseModel):
    """Every request body: no NUL or control character in any of its text fields (issue 15,
    finding 11), whatever the field. Fields typed ``Prose`` may hold line feeds and tabs.
    Nested models are request models too and check their own fields."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: object, info: ValidationInfo) -> object:
        field = cls.model_fields.get(info.field_name or "")
        multiline = field is not None and (
            any(m is PROSE for m in field.metadata) or _is_prose(field.annotation)
        )
        _check_text(value, multiline)
        return value


async def refuse_control_characters(request: Request) -> None:
    """The same rule for what is not a body model: every query and path parameter and, in a
    form, every field and file name (all single-line). An app-wide dependency."""
    found: list[tuple[str, str, str]] = []
    for key, value in request.query_params.multi_items():
        found += [("query", key, text) for text in (key, value)]
    found += [("path", key, str(value)) for key, value in request.path_params.items()]
    kind = request.headers.get("content-type", "")
    if kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        for key, value in (await request.form()).multi_items():
            text = value if isinstance(value, str) else (value.filename or "")
            found += [("body", key, key), ("body", key, text)]
    errors = [
        {"type": "value_error", "loc": (where, key), "msg": problem, "input": text}
        for where, key, text in found
        if (problem := text_problem(text)) is not None
    ]
    if errors:
        raise RequestValidationError(errors)


class Problem(BaseModel):
    detail: str


class LoginRequest(In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=NO_NUL)]


class LoginResponse(BaseModel):
    token: str
    expires_at: datetime
    user: UserOut


class UserOut(Orm):
    id: int
    name: str
    role: Role
    active: bool
    created_at: datetime
    # the two-person rule: a role (or enabling) one admin asked for, awaiting a second
    pending_role: Role | None = None
    pending_by: str | None = None


class UserCreate(In):
    # no password: the account's holder sets it at enrolment (POST /api/auth/enrol), so no
    # admin knows it; a body that still sends one is refused rather than silently dropped
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
    role: Role


class UserUpdate(In):
    active: bool | None = None
    role: Role | None = None


class WatchlistCreate(In):
    name: SafeName
    description: Prose = ""


class WatchlistOut(Orm):
    id: int
    name: str
    description: str
    created_at: datetime
    subjects: int


class SubjectCreate(In):
    name: SafeName
    category: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)]
    reason: Annotated[
        str, StringConstraints(min_length=1, max_length=10_000, pattern=NO_NUL), PROSE
    ]
    image_source: Prose = ""
    expires_on: date | None = None
    legal_basis: Annotated[str, StringConstraints(min_length=1, max_length=10_000), PROSE]
    authorised_by: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    date_of_birth: date | None = None


class ImageOut(Orm):
    id: int
    filename: str
    sha256: str
    width: int
    height: int
    quality_score: float | None = Field(
        None, description="the configured face model's template's quality (else another's)"
    )
    templates: list[str] = Field([], description="the face models with a template of the image")
    face_box: list[int] | None = Field(
        None, description="the enrolled face, [x1, y1, x2, y2]: the one meant when several show"
    )

    @field_validator("templates", mode="before")
    @classmethod
    def template_models(cls, value: object) -> object:
        # read from a ReferenceImage, the templates are rows: the list shows their models
        if isinstance(value, list):
            return [getattr(t, "model", t) for t in value]
        return value


class SubjectOut(Orm):
    id: int
    name: str
    category: str
    reason: str
    image_source: str
    added_by: str
    expires_on: date | None
    created_at: datetime
    images: list[ImageOut] = []


class WatchlistDetail(WatchlistOut):
    subject_list: list[SubjectOut]


# A face model's name or alias as a person types it ("mobilefacenet", "dlib-resnet-v1"); which
# names exist is the service's to say (GET /api/models): an unknown one is a 422 with the list.
ModelName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=NO_NUL)
]


class ModelCardOut(BaseModel):
    """What a force must know before it chooses a model (``openlfr.vision.models.ModelCard``)."""

    title: str
    source: str
    licence: str
    training_data: str
    preprocessing: str
    not_fit_for: str


class ModelOut(BaseModel):
    name: str = Field(description="the templates' tag")
    aliases: list[str] = []
    installed: bool
    default: bool = Field(description="the model the service uses now when none is named")
    embedding_size: int
    chip_size: int
    detector: str
    landmarks: str
    runtime: str
    card: ModelCardOut


class ReembedIn(In):
    model: ModelName | None = Field(None, description="name or alias; default: the configured")


class ReembedProblem(BaseModel):
    image_id: int
    why: str


class ReembedOut(BaseModel):
    model: str
    embedded: int = Field(description="templates made")
    already: int = Field(description="images that had one")
    problems: list[ReembedProblem] = Field(description="images without a template of the model")


class CameraIn(In):
    name: SafeName
    source: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NO_NUL)]


class DeploymentCreate(In):
    name: SafeName
    location: Annotated[
        str, StringConstraints(min_length=1, max_length=2000, pattern=NO_NUL), PROSE
    ]
    reason: Annotated[
        str, StringConstraints(min_length=1, max_length=10_000, pattern=NO_NUL), PROSE
    ]
    watchlist: SafeName
    starts_at: datetime | None = Field(None, description="UTC; default now")
    ends_at: datetime
    cameras: Annotated[list[CameraIn], Field(min_length=1, max_length=64)]
    threshold: float | None = Field(None, ge=0, le=100)
    suppress_no_match: bool = Field(
        False, description="a 'no match' decision stops that face alerting for that subject"
    )
    area: Prose = ""
    dpia_ref: Text = ""
    equality_ref: Text = ""
    signage_confirmed: bool = False
    threshold_override_reason: Prose | None = None
    model: ModelName | None = Field(
        None, description="face model, name or alias (GET /api/models); default: the configured"
    )
    webhook_url: Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)] | None = Field(
        None, description="POST each alert here, HMAC-signed (docs/alerts.md)"
    )
    mqtt_url: Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)] | None = Field(
        None, description="publish each alert on openlfr/<id>/alerts at mqtt://host[:port]"
    )
    push_probe_image: bool = Field(
        False, description="pushed alerts carry the probe crop (only where the policy allows)"
    )


class PushOut(BaseModel):
    """Where a deployment's alerts are pushed, and what was delivered; never a secret."""

    kind: str = Field(description="webhook or mqtt")
    endpoint: str = Field(description="the URL, without its query")
    probe_image: bool
    configured_by: str
    configured_at: datetime
    sent: int
    retries: int
    failed: int = Field(description="refused by the receiver, or out of attempts")
    dropped: int = Field(description="not sent: the queue was full, or the deployment ended")


class CameraOut(Orm):
    id: int
    name: str
    source: str
    frames: int
    frames_dropped: int = Field(description="frames not searched, those lost to a crash included")
    faces_processed: int
    alerts: int
    state: str = Field(
        "planned",
        description="planned, starting, running, reconnecting (running, no frame for 5 s), "
        "lagging (running, over 10% of its frames dropped over the last 10 s), restarting "
        "(after a crash), down (no frame for 30 s while waiting for a restart, or its cluster "
        "node lost), ended or failed",
    )
    fps: float | None = Field(None, description="frames per second over the last second or so")
    drop_rate: float | None = Field(
        None, description="share of its frames dropped over the last 10 s (while it runs)"
    )
    node: str | None = Field(None, description="the cluster node it last ran on")
    resource: str | None = Field(None, description="the Ray resource that pins it to nodes")
    last_frame_at: datetime | None = Field(None, description="when its last frame arrived")

    @field_validator("state", mode="before")
    @classmethod
    def not_run_yet(cls, value: object) -> object:
        # read straight from a camera row that has not run, the state is not set yet
        return "planned" if value is None else value

    crashes: int = Field(0, description="times its worker crashed (each is restarted)")
    restarts: int = 0
    last_crash: str | None = Field(None, description="cause: exit signal or code, or exception")
    last_crash_at: datetime | None = None
    down_s: float = Field(0.0, description="seconds without a worker after crashes")
    error: str | None = Field(None, description="why it stopped for good, if it did")


class DeploymentOut(Orm):
    id: int
    name: str
    location: str
    reason: str
    watchlist_name: str
    threshold: float | None
    starts_at: datetime
    ends_at: datetime
    created_by: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    snapshot_size: int | None
    model: str | None = Field(None, description="the face model it searches with")
    suppress_no_match: bool
    area: str = ""
    dpia_ref: str = ""
    equality_ref: str = ""
    signage_confirmed: bool = False
    authorised_by: str | None = None
    authorised_at: datetime | None = None
    threshold_override_reason: str | None = None
    cameras: list[CameraOut]
    pushes: list[PushOut] = []
    seconds_left: float | None = None
    faces_processed: int = 0
    alerts: int = 0
    adjudicated: int = 0


class Decision(StrEnum):
    MATCH = "match"
    NO_MATCH = "no-match"
    CANNOT_TELL = "cannot-tell"


class Outcome(StrEnum):
    ENGAGED = "engaged"
    ARRESTED = "arrested"
    NO_ACTION = "no-action"
    NOT_LOCATED = "not-located"


class AdjudicationIn(In):
    decision: Decision
    note: Prose = ""
    suppress: bool = Field(
        False, description="with no-match, on a deployment that allows it: suppress this face"
    )


class OutcomeIn(In):
    outcome: Outcome


class AdjudicationOut(Orm):
    alert_id: str
    reviewer: str
    decision: Decision
    decided_at: datetime
    outcome: Outcome | None
    outcome_by: str | None
    outcome_at: datetime | None
    note: str


class AlertOut(Orm):
    id: str
    deployment_id: int
    deployment: str
    camera: str
    track: int
    frame: int
    time_s: float
    subject_id: int
    subject_name: str
    score: float
    similarity: float
    box: list[int]
    latency_s: float
    raised_at: datetime
    updated_at: datetime | None
    adjudication: AdjudicationOut | None
    reference_box: list[int] | None = Field(
        None, description="the enrolled face in the reference image, [x1, y1, x2, y2] (one alert)"
    )


class AuditOut(Orm):
    id: int
    at: str
    actor: str
    action: str
    object: str
    purpose: str
    prev_hash: str
    hash: str


class VerificationOut(BaseModel):
    ok: bool
    entries: int
    first_bad_id: int | None
    problem: str | None
    checkpoint: str | None = None  # the signed checkpoint the chain was checked against
    unanchored: int = 0  # entries newer than that checkpoint


# --- transparency reports (figures only: openlfr.governance.reports makes them) ----------------


class ReportTotals(BaseModel):
    faces_processed: int
    alerts: int
    true_alerts: int
    false_alerts: int
    engagements: int
    arrests: int
    duration_h: float
    false_alert_rate: float | None
    precision: float | None


class ReportOut(BaseModel):
    title: str
    deployments: list[DeploymentFigures]  # the report's own dataclass: one list of fields
    totals: ReportTotals
    charts: list[str] = Field([], description="PNG data URIs, when asked for with charts=true")


# --- subject rights (openlfr.governance.subject_rights) -----------------------------------------

# Any name the store may hold (the command line enrols folder names), matched exactly.
HeldName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)
]


class SubjectRequest(In):
    """A name travels in the body, never the URL, so access logs and history do not keep it."""

    name: HeldName
    purpose: Purpose = "subject access request"


class ErasureRequest(SubjectRequest):
    purpose: Purpose = "erasure request"
    confirm_name: HeldName = Field(description="the name again: erasure cannot be undone")

    @model_validator(mode="after")
    def confirmed(self) -> ErasureRequest:
        if self.confirm_name != self.name:
            raise ValueError("confirm_name must repeat the name to erase")
        return self


class HeldEntry(BaseModel):
    id: int
    watchlist: str
    category: str
    images: int
    expires_on: date | None
    created_at: datetime
    review_flag: str | None


class HeldAlert(BaseModel):
    id: str
    deployment_id: int
    raised_at: datetime
    decision: str | None
    outcome: str | None


class HoldingsOut(BaseModel):
    """What is held under one name, without images (the export has them)."""

    entries: list[HeldEntry]
    alerts: list[HeldAlert]


class ErasureOut(BaseModel):
    entry_ids: list[int]
    alerts: int


LoginResponse.model_rebuild()


class FaceBox(BaseModel):
    box: list[int] = Field(description="[x1, y1, x2, y2] in the upright image")
    eye_distance: float


class FacesOut(BaseModel):
    """The faces a photo shows, before it is enrolled, and which one each pick rule takes."""

    width: int
    height: int
    faces: list[FaceBox]
    picks: dict[str, int | None] = Field(
        description="per rule (largest, centre), the index of the face it takes, or null"
    )
    reasons: dict[str, str] = Field(description="per rule that takes none, why")
