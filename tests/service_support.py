"""Helpers for the service tests: a store with one user per role, alerts inserted directly."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from openlfr.api.auth import create_user
from openlfr.api.roles import Role
from openlfr.live.deployment import create_deployment
from openlfr.store.db import open_store
from openlfr.store.models import Alert, Watchlist

PASSWORD = "correct horse battery"


def user_name(role: Role | str) -> str:
    return str(role).replace("-", "_")


def add_users(store: sessionmaker[Session]) -> None:
    with store() as session:
        for role in Role:
            create_user(session, user_name(role), role, PASSWORD)
        session.commit()


def jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@dataclass
class Scene:
    deployment_id: int
    camera_id: int
    alert_ids: list[str] = field(default_factory=list)


def plan_deployment(
    store: sessionmaker[Session], *, suppress: bool = False, watchlist: str = "demo"
) -> Scene:
    """A planned deployment on an (empty if new) watchlist ``watchlist``, one camera."""
    with store() as session:
        if session.query(Watchlist).filter_by(name=watchlist).first() is None:
            session.add(Watchlist(name=watchlist, description=""))
            session.flush()
        now = datetime.now(UTC)
        d = create_deployment(
            session,
            name="Test op",
            location="Test square",
            reason="test",
            watchlist=watchlist,
            starts_at=now,
            ends_at=now + timedelta(hours=2),
            cameras={"north": "/dev/null"},
            created_by="officer",
        )
        d.suppress_no_match = suppress
        session.commit()
        return Scene(d.id, d.cameras[0].id)


def insert_alert(
    store: sessionmaker[Session],
    scene: Scene,
    probe: np.ndarray,
    reference: np.ndarray,
    subject: str = "alice",
    score: float = 5.2,
) -> str:
    """An alert row as ``run_deployment`` writes it."""
    alert_id = uuid.uuid4().hex
    with store() as session:
        session.add(
            Alert(
                id=alert_id,
                deployment_id=scene.deployment_id,
                camera_id=scene.camera_id,
                track=7,
                frame=120,
                time_s=4.8,
                subject_id=1,
                subject_name=subject,
                score=score,
                similarity=0.95,
                box=[10, 10, 90, 90],
                latency_s=0.3,
                probe_image=jpeg(probe),
                reference_image=jpeg(reference),
            )
        )
        session.commit()
    scene.alert_ids.append(alert_id)
    return alert_id


def service_store(url: str) -> sessionmaker[Session]:
    store = open_store(url)
    add_users(store)
    return store
