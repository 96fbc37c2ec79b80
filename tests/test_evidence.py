"""An alert's evidence stays what the reviewer decided on: a stronger shot that arrives after the
adjudication is not written over the probe crop, score and frame (the soak found 9 of 18 alerts
changed after their decision)."""

from __future__ import annotations

from service_support import plan_deployment

from openlfr.live.pipeline import AlertEvent
from openlfr.live.supervisor import _store_alert
from openlfr.store.models import Adjudication, Alert, Camera, Deployment


def _event(kind: str, score: float, probe: bytes) -> AlertEvent:
    return AlertEvent(
        alert_id="a1",
        kind=kind,
        camera="north",
        frame=10 if kind == "new" else 20,
        time_s=1.0,
        track=3,
        subject="alice",
        subject_id=1,
        score=score,
        similarity=score,
        box=[1, 2, 3, 4],
        probe_jpeg=probe,
        latency_s=0.2,
    )


def test_a_stronger_shot_updates_only_an_alert_not_yet_decided(store) -> None:  # type: ignore[no-untyped-def]
    scene = plan_deployment(store)
    with store() as session:
        deployment = session.get(Deployment, scene.deployment_id)
        camera = session.get(Camera, scene.camera_id)
        reference = {1: b"reference"}
        assert _store_alert(session, deployment, camera, _event("new", 0.7, b"first"), reference)
        assert _store_alert(
            session, deployment, camera, _event("update", 0.8, b"better"), reference
        )
        session.commit()
        assert session.get(Alert, "a1").probe_image == b"better"  # before any decision: kept
        session.add(Adjudication(alert_id="a1", reviewer="r", decision="match"))
        session.commit()
        later = _event("update", 0.9, b"after the decision")
        assert not _store_alert(session, deployment, camera, later, reference)
        session.commit()
        alert = session.get(Alert, "a1")
        assert (alert.probe_image, alert.score, alert.frame) == (b"better", 0.8, 20)
