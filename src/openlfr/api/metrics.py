"""What ``/metrics`` exposes: a Prometheus collector that reads the store at each scrape.

Every camera host's runner writes its cameras' counts, rates and health to their rows in the
one store (``live.supervisor``), so reading the store, not this process's memory, shows every
deployment on every host, whichever service instance is scraped. Figures only: ids, camera
names, deployment names and states label them; no subject's name or id, no image, no camera
source (an RTSP URL can hold a password) is ever read here.

Shown: the deployments that are running, and those that ended within ``ENDED_SHOWN`` (so a
scrape after the end still sees their final counts; older ones would only grow the series).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, selectinload

from openlfr.governance.authorisation import deployment_model
from openlfr.live.supervisor import camera_record
from openlfr.store.models import Adjudication, Alert, Camera, Deployment, as_utc, utcnow

ENDED_SHOWN = timedelta(hours=1)
# Every state camera_record can give, each a series of its own (1 for the camera's, else 0), so
# that a query such as sum by (state) (openlfr_camera_state) counts cameras in each.
STATES = (
    "planned",
    "starting",
    "running",
    "reconnecting",
    "lagging",
    "restarting",
    "down",
    "ended",
    "failed",
)
# Alert latency: from the face first being usable to its alert; the target is under 1 s.
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
CAMERA = ["deployment", "camera"]


class StoreCollector(Collector):
    """The control room's figures, per deployment and camera, from ``session``'s store."""

    def __init__(self, session: Session, now: datetime | None = None) -> None:
        self.session, self.now = session, now

    def collect(self) -> Iterator[Metric]:
        now = self.now or utcnow()
        deployments = self._shown(now)
        yield from self._deployments(deployments, now)
        cameras = [(d, c) for d in deployments for c in d.cameras]
        yield from _cameras(cameras, now)
        yield _search_time(cameras)
        yield self._alert_latency(cameras)

    def _shown(self, now: datetime) -> list[Deployment]:
        query = (
            select(Deployment)
            .options(selectinload(Deployment.cameras))
            .where(
                or_(
                    Deployment.status == "running",
                    Deployment.ended_at >= now - ENDED_SHOWN,
                )
            )
            .order_by(Deployment.id)
        )
        return list(self.session.scalars(query))

    def _deployments(self, deployments: list[Deployment], now: datetime) -> Iterator[Metric]:
        by_status = GaugeMetricFamily(
            "openlfr_deployments", "Deployments in the store, by status", labels=["status"]
        )
        statuses = select(Deployment.status, func.count()).group_by(Deployment.status)
        counted: dict[str, int] = dict(self.session.execute(statuses).all())  # type: ignore[arg-type]
        for status in ("planned", "running", "ended"):
            counted.setdefault(status, 0)
        for status, count in sorted(counted.items()):
            by_status.add_metric([status], count)
        yield by_status

        info = InfoMetricFamily(
            "openlfr_deployment",
            "A shown deployment: its name, status and face model",
            labels=["deployment"],
        )
        left = GaugeMetricFamily(
            "openlfr_deployment_seconds_left",
            "Seconds to a running deployment's hard end",
            labels=["deployment"],
        )
        pending = GaugeMetricFamily(
            "openlfr_deployment_alerts_pending",
            "A deployment's stored alerts that no reviewer has adjudicated yet",
            labels=["deployment"],
        )
        waiting = self._pending([d.id for d in deployments])
        for d in deployments:
            label = str(d.id)
            model = deployment_model(d) or ""
            info.add_metric([label], {"name": d.name, "status": d.status, "model": model})
            if d.status == "running":
                left.add_metric([label], max(0.0, (as_utc(d.ends_at) - now).total_seconds()))
            pending.add_metric([label], waiting.get(d.id, 0))
        yield info
        yield left
        yield pending

    def _pending(self, ids: list[int]) -> dict[int, int]:
        if not ids:
            return {}
        query = (
            select(Alert.deployment_id, func.count(Alert.id))
            .outerjoin(Adjudication, Adjudication.alert_id == Alert.id)
            .where(Alert.deployment_id.in_(ids), Adjudication.id.is_(None))
            .group_by(Alert.deployment_id)
        )
        return dict(self.session.execute(query).all())  # type: ignore[arg-type]

    def _alert_latency(self, cameras: list[tuple[Deployment, Camera]]) -> Metric:
        """From the stored alerts' latency_s, bucketed by the database in one grouped query."""
        family = HistogramMetricFamily(
            "openlfr_camera_alert_latency_seconds",
            "Seconds from a face first being usable to its alert, per stored alert",
            labels=CAMERA,
        )
        if not cameras:
            return family
        within = [
            func.sum(case((Alert.latency_s <= bound, 1), else_=0)) for bound in LATENCY_BUCKETS_S
        ]
        query = (
            select(Alert.camera_id, func.count(Alert.id), func.sum(Alert.latency_s), *within)
            .where(Alert.camera_id.in_([c.id for _, c in cameras]))
            .group_by(Alert.camera_id)
        )
        rows = {row[0]: row[1:] for row in self.session.execute(query)}
        for d, camera in cameras:
            count, total, *below = rows.get(camera.id, (0, 0.0) + (0,) * len(LATENCY_BUCKETS_S))
            buckets = [(str(b), int(n or 0)) for b, n in zip(LATENCY_BUCKETS_S, below, strict=True)]
            family.add_metric(
                [str(d.id), camera.name], [*buckets, ("+Inf", int(count))], float(total or 0.0)
            )
        return family


def _cameras(cameras: list[tuple[Deployment, Camera]], now: datetime) -> Iterator[Metric]:
    def counter(name: str, doc: str) -> CounterMetricFamily:
        return CounterMetricFamily(f"openlfr_camera_{name}", doc, labels=CAMERA)

    def gauge(name: str, doc: str, labels: list[str] = CAMERA) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"openlfr_camera_{name}", doc, labels=labels)

    frames = counter("frames", "Frames run through the pipeline")
    dropped = counter("frames_dropped", "Frames not searched, those lost to a crash included")
    faces = counter("faces_processed", "Distinct faces (tracks) searched against the watchlist")
    alerts = counter("alerts", "Alerts raised (a stronger shot of the same alert not counted)")
    crashes = counter("crashes", "Times the camera's worker crashed")
    restarts = counter("restarts", "Times the camera's worker was restarted")
    down = counter("down_seconds", "Seconds without a worker after crashes")
    fps = gauge("fps", "Frames per second the source delivered over the last second or so")
    drop = gauge("drop_ratio", "Share of frames dropped over the last 10 s")
    last = gauge("last_frame_timestamp_seconds", "When the last frame arrived (Unix time)")
    state = gauge("state", "1 for the camera's state, 0 for the others", [*CAMERA, "state"])
    node = InfoMetricFamily(
        "openlfr_camera_node",
        "The cluster node a camera last ran on, and the resource that pins it",
        labels=CAMERA,
    )
    for d, camera in cameras:
        record = camera_record(camera, d.status, now)
        labels = [str(d.id), camera.name]
        frames.add_metric(labels, record["frames"] or 0)
        dropped.add_metric(labels, record["frames_dropped"] or 0)
        faces.add_metric(labels, record["faces_processed"] or 0)
        alerts.add_metric(labels, record["alerts"] or 0)
        crashes.add_metric(labels, record["crashes"])
        restarts.add_metric(labels, record["restarts"])
        down.add_metric(labels, record["down_s"])
        if record["fps"] is not None:
            fps.add_metric(labels, camera.fps)
        if camera.drop_rate is not None:
            drop.add_metric(labels, camera.drop_rate)
        if record["last_frame_at"] is not None:
            last.add_metric(labels, record["last_frame_at"].timestamp())
        for name in STATES:
            state.add_metric([*labels, name], 1.0 if record["state"] == name else 0.0)
        if camera.node or camera.resource:
            node.add_metric(labels, {"node": camera.node or "", "resource": camera.resource or ""})
    yield from (frames, dropped, faces, alerts, crashes, restarts, down, fps, drop, last, state)
    yield node


def _search_time(cameras: list[tuple[Deployment, Camera]]) -> Metric:
    """The 1:N search's time per query, from the histogram the camera's runner stored."""
    family = HistogramMetricFamily(
        "openlfr_camera_search_seconds",
        "Seconds one probe's 1:N search against the watchlist took (its share of a batch)",
        labels=CAMERA,
    )
    for d, camera in cameras:
        stored = json.loads(camera.search_hist) if camera.search_hist else None
        bounds, counts = (stored["le"], stored["counts"]) if stored else ([], [])
        buckets, running = [], 0
        for bound, count in zip(bounds, counts, strict=False):
            running += count
            buckets.append((str(bound), running))
        searches = max(camera.searches or 0, sum(counts))
        family.add_metric(
            [str(d.id), camera.name], [*buckets, ("+Inf", searches)], camera.search_s or 0.0
        )
    return family
