"""Database tables, as SQLAlchemy ORM classes. The schema itself is made by Alembic migrations."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything OpenLFR stores is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Watchlist(Base):
    __tablename__ = "watchlists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    subjects: Mapped[list[Subject]] = relationship(
        back_populates="watchlist", cascade="all, delete-orphan", order_by="Subject.name"
    )


class Subject(Base):
    """A watchlisted person: who, why (category and written reason), on whose word, until when."""

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("watchlist_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watchlist_id: Mapped[int] = mapped_column(ForeignKey("watchlists.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    image_source: Mapped[str] = mapped_column(Text, default="")
    added_by: Mapped[str] = mapped_column(String(200))
    expires_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The law the entry rests on (e.g. "PACE s.24; warrant 123") and who authorised it.
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    authorised_by: Mapped[str] = mapped_column(Text, default="")
    # Set when the entry needs a human look (e.g. expired); cleared by re-authorising it.
    review_flag: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Only where known: it lets the policy's allow_under_18 rule be checked.
    date_of_birth: Mapped[date | None] = mapped_column(Date, nullable=True)

    watchlist: Mapped[Watchlist] = relationship(back_populates="subjects")
    images: Mapped[list[ReferenceImage]] = relationship(
        back_populates="subject", cascade="all, delete-orphan", order_by="ReferenceImage.id"
    )

    def expired(self, today: date | None = None) -> bool:
        return self.expires_on is not None and self.expires_on < (today or date.today())


class ReferenceImage(Base):
    """An enrolled photo, kept whole so that a reviewer can compare it with a probe."""

    __tablename__ = "reference_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(500))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    subject: Mapped[Subject] = relationship(back_populates="images")
    # One template per face model (migration 0005): a new model re-embeds the kept image.
    templates: Mapped[list[Template]] = relationship(
        back_populates="image", cascade="all, delete-orphan", order_by="Template.id"
    )

    def template_for(self, model: str) -> Template | None:
        return next((t for t in self.templates if t.model == model), None)


class Template(Base):
    """The embedding of one reference image, tagged with the model that made it."""

    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    __table_args__ = (UniqueConstraint("image_id", "model", name="uq_templates_image_id_model"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("reference_images.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(100), index=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian, unit length
    box: Mapped[list[int]] = mapped_column(JSON)
    quality: Mapped[dict[str, float]] = mapped_column(JSON)
    quality_score: Mapped[float] = mapped_column(Float)

    image: Mapped[ReferenceImage] = relationship(back_populates="templates")


class Deployment(Base):
    """One authorised operation: where, why, which watchlist, from when to a hard end."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    watchlist_name: Mapped[str] = mapped_column(String(200))
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # planned -> running -> ended; end_reason says why (time limit, stopped, recovered, failed)
    status: Mapped[str] = mapped_column(String(20), default="planned")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    stop_requested: Mapped[bool] = mapped_column(default=False)
    runner_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    runner_host: Mapped[str | None] = mapped_column(String(200), nullable=True)
    snapshot_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The face model the deployment searches with, fixed when it is planned (migration 0005).
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # opt-in: a reviewer's "no match" stops that face alerting for that subject again
    suppress_no_match: Mapped[bool] = mapped_column(default=False)
    # Authorisation record (College of Policing APP): ``reason`` is the justification and
    # ``created_by`` the requester; the authoriser must be someone else.
    area: Mapped[str] = mapped_column(Text, default="")
    dpia_ref: Mapped[str] = mapped_column(Text, default="")
    equality_ref: Mapped[str] = mapped_column(Text, default="")
    signage_confirmed: Mapped[bool] = mapped_column(default=False)
    authorised_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    authorised_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    threshold_override_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Alerts that retention purged, as counts only, so that transparency figures survive them.
    purged_alerts: Mapped[int] = mapped_column(Integer, default=0)
    purged_true_alerts: Mapped[int] = mapped_column(Integer, default=0)
    purged_false_alerts: Mapped[int] = mapped_column(Integer, default=0)
    purged_engagements: Mapped[int] = mapped_column(Integer, default=0)
    purged_arrests: Mapped[int] = mapped_column(Integer, default=0)

    cameras: Mapped[list[Camera]] = relationship(
        back_populates="deployment", cascade="all, delete-orphan", order_by="Camera.id"
    )


class Camera(Base):
    """A deployment's camera, with the only record kept of the faces it saw: counts."""

    __tablename__ = "cameras"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    frames: Mapped[int] = mapped_column(Integer, default=0)
    frames_dropped: Mapped[int] = mapped_column(Integer, default=0)
    faces_processed: Mapped[int] = mapped_column(Integer, default=0)
    alerts: Mapped[int] = mapped_column(Integer, default=0)
    # Health (migration 0008), written by live.supervisor as the deployment runs: what the
    # board shows live. No picture, ever: a live view would show non-matches to operators.
    state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    crashes: Mapped[int] = mapped_column(Integer, default=0)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    last_crash: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_crash_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    down_s: Mapped[float] = mapped_column(Float, default=0.0)
    fps: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_frame_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # the error that stopped the camera for good, if one did
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Scale (migration 0009): the Ray custom resource a camera needs on a cluster (None: any
    # node) and the node it last ran on; the share of frames dropped over its last counts, and
    # its searches, their total seconds and their histogram (JSON bucket counts) for /metrics.
    resource: Mapped[str | None] = mapped_column(String(100), nullable=True)
    node: Mapped[str | None] = mapped_column(String(200), nullable=True)
    drop_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    searches: Mapped[int] = mapped_column(Integer, default=0)
    search_s: Mapped[float] = mapped_column(Float, default=0.0)
    search_hist: Mapped[str | None] = mapped_column(Text, nullable=True)

    deployment: Mapped[Deployment] = relationship(back_populates="cameras")


class SnapshotTemplate(Base):
    """The frozen copy of one watchlist image a running deployment searches against; all of a
    deployment's rows are deleted when it ends (DESIGN.md, invariant 3)."""

    __tablename__ = "snapshot_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    subject_id: Mapped[int] = mapped_column(Integer)
    subject_name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(100))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    image: Mapped[bytes] = mapped_column(LargeBinary)


class Alert(Base):
    """A possible match for a human to adjudicate: the probe crop beside the reference image."""

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    track: Mapped[int] = mapped_column(Integer)
    frame: Mapped[int] = mapped_column(Integer)
    time_s: Mapped[float] = mapped_column(Float)
    subject_id: Mapped[int] = mapped_column(Integer)
    subject_name: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    similarity: Mapped[float] = mapped_column(Float)
    box: Mapped[list[int]] = mapped_column(JSON)
    latency_s: Mapped[float] = mapped_column(Float)
    probe_image: Mapped[bytes] = mapped_column(LargeBinary)
    reference_image: Mapped[bytes] = mapped_column(LargeBinary)
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class User(Base):
    """An operator account with exactly one role (``openlfr.api.roles``)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(40))
    password_hash: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Two-person rule (migration 0006): a role or an enabling that one admin asked for, which
    # takes effect only when a second admin approves it (``openlfr.api.auth``).
    pending_role: Mapped[str | None] = mapped_column(String(40), nullable=True)
    pending_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    pending_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # An approved new account has no password until its holder enrols with a one-time code
    # (only its SHA-256 kept), so neither admin ever knows a password for it.
    enrol_code_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enrol_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class LoginThrottle(Base):
    """Failed logins of one account or one client address (``openlfr.api.throttle``). The key
    is a SHA-256, so names nobody has are not stored as typed; ``label`` names only real
    accounts and addresses."""

    __tablename__ = "login_throttle"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # account | address
    label: Mapped[str] = mapped_column(String(100), default="")
    failures: Mapped[int] = mapped_column(Integer, default=0)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Counter(Base):
    """A monotonic count kept in the store, so every server process adds to the same one
    (refused and throttled logins, lockouts)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class AuthSession(Base):
    """A logged-in session. Only the token's SHA-256 is kept, so a copy of the database does
    not hand out live sessions."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class Adjudication(Base):
    """A reviewer's decision on an alert (match / no-match / cannot-tell), then its outcome."""

    __tablename__ = "adjudications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), unique=True)
    reviewer: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(20))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    outcome_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    outcome_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


class AuditEntry(Base):
    """One link of the append-only audit chain (``openlfr.governance.audit``). ``at`` is kept
    as ISO text so that the hashed bytes survive every database's date handling."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    object: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Suppression(Base):
    """This face (camera track) is not this subject, for the rest of the deployment."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    camera: Mapped[str] = mapped_column(String(200))
    track: Mapped[int] = mapped_column(Integer)
    subject_id: Mapped[int] = mapped_column(Integer)
    alert_id: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AlertPush(Base):
    """Where a deployment's alerts are pushed as they happen (``openlfr.notify``): a webhook
    or an MQTT broker, set when it is planned (audited), with what was delivered. No secret is
    kept here: the webhook's signing key and the broker's password live outside the store."""

    __tablename__ = "alert_pushes"
    __table_args__ = (
        UniqueConstraint("deployment_id", "kind", name="uq_alert_pushes_deployment_id_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(10))  # webhook | mqtt
    url: Mapped[str] = mapped_column(Text)
    probe_image: Mapped[bool] = mapped_column(default=False)  # only where the policy allows it
    configured_by: Mapped[str] = mapped_column(String(200))
    configured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Delivery counts (never what was in the messages), kept up to date while it runs.
    sent: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    dropped: Mapped[int] = mapped_column(Integer, default=0)
