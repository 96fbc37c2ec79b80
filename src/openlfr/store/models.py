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
    template: Mapped[Template | None] = relationship(
        back_populates="image", cascade="all, delete-orphan", uselist=False
    )


class Template(Base):
    """The embedding of one reference image, tagged with the model that made it."""

    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(
        ForeignKey("reference_images.id", ondelete="CASCADE"), unique=True
    )
    model: Mapped[str] = mapped_column(String(100))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian, unit length
    box: Mapped[list[int]] = mapped_column(JSON)
    quality: Mapped[dict[str, float]] = mapped_column(JSON)
    quality_score: Mapped[float] = mapped_column(Float)

    image: Mapped[ReferenceImage] = relationship(back_populates="template")
