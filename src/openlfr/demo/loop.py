"""The whole loop on the demo's own data: accounts, a watchlist, a pass-by clip, a deployment
planned, authorised and run over it, and its alert left for review.

    >>> home = isolate(new_home())        # this process now uses only the demo's store
    >>> result = run_demo(home)           # about 15 s on two cores
    >>> result.summary()["true_alerts"]
    1

Every step is the one an operator takes with the command line (the same library calls, the
same audit entries), so the demo's store is an ordinary store: ``OPENLFR_HOME=<home> openlfr
serve`` opens it again, and ``openlfr audit verify`` checks its chain.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from openlfr.cli.common import _actor
from openlfr.demo.clip import Clip, Walk, head_patch, still, write_clip
from openlfr.demo.portraits import Portrait, portraits
from openlfr.errors import OpenLFRError

WATCHLIST = "demo"
CAMERA = "entrance"
OFFICER, REVIEWER, PLANNER = "officer", "reviewer", "planner"
Say = Callable[[str], None]


class DemoError(OpenLFRError):
    """The demo cannot run as asked (its directory or database is not empty, ...)."""


def new_home(directory: Path | None = None) -> Path:
    """The demo's data directory: ``directory``, else a new ``<data dir>/demo-<UTC time>``. It
    must be new or empty, so that the demo can never write into a store that holds real data."""
    if directory is None:
        from openlfr.config import data_dir

        base = data_dir() / f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        for n in range(1, 100):  # two demos started in the same second get a folder each
            candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
        raise DemoError(f"cannot make a new folder beside {base}")
    directory = directory.expanduser().absolute()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise DemoError(f"{directory} is not an empty folder: the demo needs a new one")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def isolate(home: Path, database_url: str | None = None) -> Path:
    """Point this process (and the camera workers it starts) at the demo's own data directory
    and store, whatever ``OPENLFR_*`` says: the demo never touches a user's real store, policy
    or audit key. The face models stay those already installed. ``database_url`` (an empty
    database, e.g. on PostgreSQL, which the caller has checked with ``check_empty_database``)
    replaces the SQLite file in ``home``."""
    from openlfr.config import data_dir
    from openlfr.vision.models.install import models_dir

    installed = models_dir()  # MobileFaceNet, where 'openlfr models install' put it
    converted = data_dir() / "models"  # dlib's networks converted to ONNX, made once
    converted.mkdir(parents=True, exist_ok=True)
    os.environ["OPENLFR_MODELS_DIR"] = str(installed)
    os.environ["OPENLFR_HOME"] = str(home)
    os.environ["OPENLFR_DATABASE_URL"] = database_url or f"sqlite:///{home / 'openlfr.sqlite3'}"
    for name in ("OPENLFR_POLICY", "OPENLFR_AUDIT_KEY", "OPENLFR_AUDIT_CHECKPOINTS"):
        os.environ.pop(name, None)  # the defaults, inside the demo's directory
    # So that 'OPENLFR_HOME=<home> openlfr ...' later finds the same models without converting
    # or installing them again.
    link = home / "models"
    if not link.exists():
        with contextlib.suppress(OSError):  # no link: they are converted again, no more
            link.symlink_to(converted, target_is_directory=True)
    return home


def check_empty_database(url: str) -> None:
    """Refuse a database that cannot be reached or already has tables."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ValueError) as exc:
        raise DemoError(f"--database-url is not a database URL: {exc}") from exc
    try:
        tables = inspect(engine).get_table_names()
    except SQLAlchemyError as exc:  # a server that is down, a wrong name: say which
        raise DemoError(f"cannot open the demo's database: {exc}") from exc
    finally:
        engine.dispose()
    if tables:
        raise DemoError("the demo's database must be empty: it already has tables")


@dataclass
class DemoResult:
    home: Path
    model: str
    threshold: float
    deployment_id: int
    end_reason: str
    faces_processed: int
    alerts: int
    true_alerts: int
    frames: int  # frames of the clip searched for faces, and those skipped to keep real time
    frames_dropped: int
    accounts: dict[str, tuple[str, str]]  # name -> (role, password)
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The one-line summary ``openlfr demo --no-serve`` prints last (no passwords)."""
        return {
            "faces_processed": self.faces_processed,
            "alerts": self.alerts,
            "true_alerts": self.true_alerts,
            "false_alerts": self.alerts - self.true_alerts,
            "frames": self.frames,
            "frames_dropped": self.frames_dropped,
            "model": self.model,
            "threshold": self.threshold,
            "deployment": self.deployment_id,
            "end_reason": self.end_reason,
            "home": str(self.home),
            "seconds": round(self.seconds, 1),
        }


def walks(
    listed: Portrait,
    stranger: Portrait,
    images: dict[str, np.ndarray],
    boxes: dict[str, list[int]],
) -> list[Walk]:
    """Who passes the camera, and how it sees them. The watchlisted person comes mirrored, in
    shade and out of focus far off; the stranger passes twice, plain, then mirrored in sun.
    The strangers are not blurred: blur makes dlib's model rate two faces more alike (Grace
    Hopper's similarity to Eileen Collins rose from 0.89 to 0.91, against its 0.928 threshold
    for a list of one), and a demo that stays quiet by luck would teach the wrong thing."""
    heads = {p.slug: head_patch(images[p.slug], boxes[p.slug]) for p in (listed, stranger)}
    return [
        Walk(stranger.slug, heads[stranger.slug], 0.2, x_from=0.25, x_to=0.4),
        Walk(
            listed.slug,
            heads[listed.slug],
            2.6,
            flip=True,
            light=0.7,
            blur_far=2.5,
            blur_near=0.6,
            x_from=0.75,
            x_to=0.55,
            coat=(200, 90, 40),
        ),
        Walk(
            stranger.slug,
            heads[stranger.slug],
            5.0,
            flip=True,
            light=1.35,
            x_from=0.45,
            x_to=0.3,
            coat=(30, 30, 40),
        ),
    ]


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise DemoError(f"cannot write {path}")


def run_demo(home: Path, *, model: str | None = None, say: Say = lambda _: None) -> DemoResult:
    """Run the loop in ``home`` (already ``isolate``d); ``say`` hears each step."""
    from openlfr.vision import find_faces
    from openlfr.vision.models import get_model

    started = time.monotonic()
    unit = get_model(model)
    listed, stranger = portraits()
    images = {p.slug: p.image() for p in (listed, stranger)}
    boxes = {}
    for slug, rgb in images.items():
        faces = find_faces(rgb, model=unit, upsample=1)
        if len(faces) != 1:
            raise DemoError(f"{unit.name} finds {len(faces)} faces in the {slug} portrait, not 1")
        boxes[slug] = faces[0].box.as_list()
    # The folders 'openlfr watchlist import' and 'openlfr search' take: the tour's next step.
    _write_rgb(home / "people" / listed.slug / f"{listed.slug}.png", images[listed.slug])
    say(f"portraits: {listed.name} (watchlisted) and {stranger.name} (a stranger)")
    clip = write_clip(home / "media" / "pass-by.avi", walks(listed, stranger, images, boxes))
    for i, walk in enumerate(clip.walks, start=1):
        _write_rgb(home / "photos" / f"passer-by-{i}.jpg", still(clip, walk.start_s + 2.2))
    say(f"clip: {clip.path} ({clip.frames} frames, {clip.frames / clip.fps:.1f} s, 3 passers-by)")

    store, accounts = _accounts(say)
    deployment_id = _enrol_and_plan(store, home, clip, unit, say)
    result = _run(store, deployment_id, clip, listed, say)
    return DemoResult(
        home=home,
        model=unit.name,
        accounts=accounts,
        seconds=time.monotonic() - started,
        **result,
    )


def _accounts(say: Say) -> tuple[Any, dict[str, tuple[str, str]]]:
    """The store, and its two accounts with random passwords (printed once, never stored)."""
    from openlfr.api.auth import create_user
    from openlfr.governance import audit
    from openlfr.store.db import open_store

    store = open_store()
    accounts = {
        OFFICER: ("authorising-officer", secrets.token_urlsafe(12)),
        REVIEWER: ("reviewer", secrets.token_urlsafe(12)),
    }
    with store() as session:
        for name, (role, password) in accounts.items():
            create_user(session, name, role, password)
            audit.append(
                session,
                actor=_actor(),
                action="user-add",
                obj=f"user:{name}:{role}",
                purpose="account administration; the demo's accounts",
            )
        session.commit()
    say(f"accounts: {OFFICER} (authorising officer), {REVIEWER} (reviewer)")
    return store, accounts


def _enrol_and_plan(store: Any, home: Path, clip: Clip, unit: Any, say: Say) -> int:
    """The watchlist enrolled from ``home/people``, and a deployment over the clip, planned by
    one officer and authorised by another (the policy's two-person rule)."""
    from openlfr.governance import audit
    from openlfr.governance.authorisation import authorise_deployment, confirm_signage
    from openlfr.governance.policy import load_policy
    from openlfr.live.deployment import create_deployment
    from openlfr.store.enrol import import_folder
    from openlfr.store.watchlists import WatchlistEntry, create_watchlist, get_subject

    policy = load_policy()
    entry = WatchlistEntry(
        category="missing-at-risk",
        reason="demo: a public-domain portrait standing in for a missing person at risk",
        legal_basis="demonstration only: public-domain image, no real case",
        authorised_by=OFFICER,
        added_by=PLANNER,
        image_source="public domain (openlfr demo)",
        expires_on=(datetime.now(UTC) + timedelta(days=31)).date(),
    )
    with store() as session:
        watchlist = create_watchlist(session, WATCHLIST, "openlfr demo: public-domain portraits")
        audit.append(
            session,
            actor=_actor(),
            action="watchlist-create",
            obj=f"watchlist:{WATCHLIST}",
            purpose="watchlist management",
        )
        report = import_folder(
            session, watchlist, home / "people", entry=entry, policy=policy, model=unit, workers=1
        )
        if report.problems or not report.subjects_added:
            raise DemoError(f"the demo's portrait was not enrolled: {report.problems}")
        ids = ",".join(str(get_subject(session, watchlist, n).id) for n in report.subjects_added)
        audit.append(
            session,
            actor=_actor(),
            action="enrol",
            obj=f"watchlist:{WATCHLIST}:subject-ids:{ids}",
            purpose=f"{entry.category}; legal basis: {entry.legal_basis}; authorised by {OFFICER}",
        )
        session.commit()
        say(f"watchlist {WATCHLIST!r}: {', '.join(report.subjects_added)} ({unit.name})")
        deployment = create_deployment(
            session,
            name="demo pass-by",
            location="the demo's generated street, entrance camera",
            reason="demo: show the whole loop on public-domain portraits",
            watchlist=WATCHLIST,
            starts_at=datetime.now(UTC),
            ends_at=datetime.now(UTC) + timedelta(hours=1),
            cameras={CAMERA: str(clip.path)},
            created_by=PLANNER,
            area="the clip's frame",
            dpia_ref="DEMO-DPIA",
            equality_ref="DEMO-EIA",
            model=unit.name,
            policy=policy,
        )
        audit.append(
            session,
            actor=PLANNER,
            action="deployment-plan",
            obj=f"deployment:{deployment.id}:{WATCHLIST}",
            purpose=deployment.reason,
        )
        authorise_deployment(session, deployment, by=OFFICER, policy=policy)
        confirm_signage(session, deployment, by=OFFICER)
        session.commit()
        say(f"deployment {deployment.id}: planned by {PLANNER}, authorised by {OFFICER}")
        return deployment.id


def _run(store: Any, deployment_id: int, clip: Clip, listed: Portrait, say: Say) -> dict:
    """Run the deployment over the clip (as 'openlfr deployment run' does) and count what it
    did. An alert is true when it names the watchlisted person while she is in view."""
    from sqlalchemy import select

    from openlfr.live.deployment import run_deployment
    from openlfr.matching import default_threshold
    from openlfr.store.models import Alert, Camera

    def show(event: Any) -> None:
        say(f"ALERT {event.camera}: {event.subject} (score {event.score:.3f}, {event.kind})")

    say(f"deployment {deployment_id}: running over the clip ...")
    deployment = run_deployment(store, deployment_id, on_alert=show)
    with store() as session:
        alerts = session.scalars(
            select(Alert).where(Alert.deployment_id == deployment_id).order_by(Alert.id)
        ).all()
        camera = session.scalars(select(Camera).where(Camera.deployment_id == deployment_id)).one()
        true = sum(
            a.subject_name == listed.slug and listed.slug in clip.who_at(a.time_s) for a in alerts
        )
        return {
            "threshold": deployment.threshold
            or default_threshold(deployment.snapshot_size or 1, deployment.model),
            "deployment_id": deployment_id,
            "end_reason": deployment.end_reason or "",
            "faces_processed": camera.faces_processed,
            "frames": camera.frames,
            "frames_dropped": camera.frames_dropped,
            "alerts": len(alerts),
            "true_alerts": true,
        }
