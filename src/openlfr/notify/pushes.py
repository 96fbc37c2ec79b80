"""A deployment's alert pushes: set when it is planned (audited), run beside it.

    >>> configure_pushes(session, deployment, webhook="https://hooks.example/lfr",
    ...                  mqtt="mqtt://broker.example", actor="insp1")
    >>> pusher = alert_pusher(store, deployment.id)   # None when it has no push
    >>> run_deployment(store, deployment.id, on_alert=pusher.submit)
    >>> pusher.close()                                # counts, also kept in the store

The body (the same bytes for each receiver; ``docs/alerts.md``)::

    {"type": "new", "id": "<alert id>", "deployment_id": 3, "deployment": "Oxford St",
     "camera": "north", "time": "2026-12-02T01:50:00.123456+00:00", "score": 0.7123,
     "url": "<OPENLFR_PUBLIC_URL>/#alert=<alert id>", "has_probe_image": false}

It names no one: who the alert is about is for the reviewer to see in the console (a viewing
the audit records), and the probe crop (``probe_image``, base64 JPEG) goes out only where the
policy allows it (``[push] allow_probe_image``) and the deployment asked for it. Each message
delivered is an export of personal data, so each is audited (``alert-push``), and the counts
(sent, retries, failed, dropped) are kept with the push, never the messages.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from openlfr.errors import PolicyError
from openlfr.governance import audit
from openlfr.governance.policy import Policy, load_policy
from openlfr.notify import mqtt, webhook
from openlfr.notify.dispatcher import Dispatcher, Message, PushStats, Sink
from openlfr.notify.webhook import PushConfigError
from openlfr.store.models import AlertPush, Deployment

log = logging.getLogger(__name__)

PUBLIC_URL_ENV = "OPENLFR_PUBLIC_URL"
CLOSE_GRACE_S = 5.0  # at the end of a deployment, for what is still queued


def endpoint(push: AlertPush) -> str:
    """Where a push goes, as the API, the audit and the logs show it."""
    if push.kind == "webhook":
        return webhook.endpoint_label(push.url)
    return push.url


def push_record(push: AlertPush) -> dict[str, Any]:
    """A push as ``deployment show`` and the API present it: no secret (none is stored)."""
    return {
        "kind": push.kind,
        "endpoint": endpoint(push),
        "probe_image": push.probe_image,
        "configured_by": push.configured_by,
        "configured_at": push.configured_at,
        "sent": push.sent,
        "retries": push.retries,
        "failed": push.failed,
        "dropped": push.dropped,
    }


def pushes_of(session: Session, deployment_id: int) -> list[AlertPush]:
    return list(
        session.scalars(
            select(AlertPush).where(AlertPush.deployment_id == deployment_id).order_by(AlertPush.id)
        )
    )


def pushes_by_deployment(
    session: Session, deployment_ids: list[int] | None = None
) -> dict[int, list[AlertPush]]:
    """{deployment id: its pushes} in one query (the board lists every deployment)."""
    query = select(AlertPush).order_by(AlertPush.id)
    if deployment_ids is not None:
        query = query.where(AlertPush.deployment_id.in_(deployment_ids))
    found: dict[int, list[AlertPush]] = {}
    for push in session.scalars(query):
        found.setdefault(push.deployment_id, []).append(push)
    return found


def configure_pushes(
    session: Session,
    deployment: Deployment,
    *,
    actor: str,
    webhook_url: str | None = None,
    mqtt_url: str | None = None,
    probe_image: bool = False,
    policy: Policy | None = None,
) -> list[AlertPush]:
    """Record where ``deployment``'s alerts are to be pushed, in the caller's transaction,
    with an audit entry per endpoint (who set which; no secret). Refuses a bad URL, a webhook
    while no signing secret is set, and probe images where the policy does not allow them."""
    webhook_url, mqtt_url = (webhook_url or "").strip(), (mqtt_url or "").strip()
    if not webhook_url and not mqtt_url:
        if probe_image:
            raise PushConfigError("a probe image can be pushed only with a webhook or MQTT")
        return []
    policy = policy or load_policy()
    if probe_image and not policy.push.allow_probe_image:
        raise PolicyError(
            "the policy does not allow probe images in pushed alerts "
            "([push] allow_probe_image in policy.toml)"
        )
    if deployment.status != "planned":
        raise PushConfigError(f"deployment {deployment.id} is {deployment.status}, not planned")
    pushes = []
    if webhook_url:
        webhook_url = webhook.check_url(webhook_url)
        webhook.webhook_secret()  # refused now, not when the deployment starts
        pushes.append(AlertPush(kind="webhook", url=webhook_url))
    if mqtt_url:
        pushes.append(AlertPush(kind="mqtt", url=mqtt.check_url(mqtt_url)))
    existing = {p.kind for p in pushes_of(session, deployment.id)}
    for push in pushes:
        if push.kind in existing:
            raise PushConfigError(f"deployment {deployment.id} already has a {push.kind} push")
        push.deployment_id, push.probe_image, push.configured_by = (
            deployment.id,
            probe_image,
            actor,
        )
        push.sent = push.retries = push.failed = push.dropped = 0
        session.add(push)
        audit.append(
            session,
            actor=actor,
            action="alert-push-set",
            obj=f"deployment:{deployment.id}:{push.kind}={endpoint(push)}",
            purpose="alerts pushed to officers as they happen; probe image "
            + ("included" if probe_image else "not included"),
        )
    session.flush()
    return pushes


def console_link(alert_id: str) -> str | None:
    """The alert in the console, from ``OPENLFR_PUBLIC_URL`` (None when it is not set)."""
    base = os.environ.get(PUBLIC_URL_ENV, "").strip().rstrip("/")
    return f"{base}/#alert={alert_id}" if base else None


def alert_body(
    event: Any, deployment_id: int, deployment: str, *, probe_image: bool, at: datetime
) -> bytes:
    """The JSON body for an ``AlertEvent`` (see the module's docstring)."""
    body: dict[str, Any] = {
        "type": event.kind,
        "id": event.alert_id,
        "deployment_id": deployment_id,
        "deployment": deployment,
        "camera": event.camera,
        "time": at.isoformat(),
        "score": round(float(event.score), 4),
        "url": console_link(event.alert_id),
        "has_probe_image": probe_image,
    }
    if probe_image:
        body["probe_image"] = base64.b64encode(event.probe_jpeg).decode("ascii")
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


class AlertPusher:
    """A deployment's receivers, each behind its own ``Dispatcher``. ``submit`` is what the
    runner's ``on_alert`` calls: it builds the body and queues it, and never waits."""

    def __init__(
        self,
        deployment_id: int,
        deployment: str,
        targets: list[tuple[Dispatcher, bool, int | None]],
        store: sessionmaker[Session] | None = None,
    ) -> None:
        self.deployment_id, self.deployment = deployment_id, deployment
        self.targets, self.store = targets, store  # (dispatcher, probe image, push row id)

    def submit(self, event: Any) -> None:
        at = datetime.now(UTC)
        bodies: dict[bool, Message] = {}
        for dispatcher, probe_image, _ in self.targets:
            if probe_image not in bodies:
                body = alert_body(
                    event, self.deployment_id, self.deployment, probe_image=probe_image, at=at
                )
                bodies[probe_image] = Message(event.alert_id, event.kind, body, probe_image)
            dispatcher.submit(bodies[probe_image])

    def close(self, grace_s: float = CLOSE_GRACE_S) -> dict[str, PushStats]:
        """Send what is queued within ``grace_s`` seconds (all receivers at once), keep the
        counts in the store; returns them by receiver."""
        for dispatcher, _, _ in self.targets:
            dispatcher.stop_taking()
        deadline = time.monotonic() + grace_s
        results = {}
        for dispatcher, _, push_id in self.targets:
            stats = dispatcher.close(max(0.0, deadline - time.monotonic()))
            results[f"{dispatcher.sink.kind} {dispatcher.sink.endpoint}"] = stats
            if self.store is not None and push_id is not None:
                _save_counts(self.store, push_id, stats)
        return results

    def summary(self, results: dict[str, PushStats]) -> str:
        return "; ".join(
            f"{name}: {s.sent} sent, {s.retries} retries, {s.failed} failed, {s.dropped} dropped"
            for name, s in results.items()
        )


def _save_counts(
    store: sessionmaker[Session], push_id: int, stats: PushStats, session: Session | None = None
) -> None:
    def write(s: Session) -> None:
        push = s.get(AlertPush, push_id)
        if push is not None:
            push.sent, push.retries = stats.sent, stats.retries
            push.failed, push.dropped = stats.failed, stats.dropped

    if session is not None:
        write(session)
        return
    try:
        with store() as s:
            write(s)
            s.commit()
    except Exception:  # the counts are also in the log; a busy store must not end the run
        log.exception("alert push: the counts could not be saved")


def _recorder(store: sessionmaker[Session], push: AlertPush, label: str):  # type: ignore[no-untyped-def]
    """The dispatcher's ``on_outcome``: an audit entry per delivered message (an export of
    personal data), and the counts, in one transaction."""
    push_id, kind = push.id, push.kind

    def record(message: Message, outcome: str, stats: PushStats) -> None:
        with store() as session:
            _save_counts(store, push_id, stats, session)
            if outcome == "sent":
                audit.append(
                    session,
                    actor="system",
                    action="alert-push",
                    obj=f"alert:{message.alert_id}:{kind}",
                    purpose=f"{message.kind} alert pushed to {label}; probe image "
                    + ("included" if message.has_probe_image else "not included"),
                )
            session.commit()

    return record


def alert_pusher(
    store: sessionmaker[Session], deployment_id: int, **dispatch: Any
) -> AlertPusher | None:
    """The pusher for ``deployment_id``'s configured pushes, started; None when it has none.
    Refuses (``PushConfigError``) a webhook while no signing secret is set. ``dispatch``
    goes to each ``Dispatcher`` (queue size, attempts, backoff)."""
    with store() as session:
        deployment = session.get(Deployment, deployment_id)
        pushes = pushes_of(session, deployment_id) if deployment is not None else []
        if not pushes:
            return None
        name = deployment.name  # type: ignore[union-attr]
    secret = webhook.webhook_secret() if any(p.kind == "webhook" for p in pushes) else b""
    if console_link("x") is None:
        log.warning("%s is not set: pushed alerts carry no console link", PUBLIC_URL_ENV)
    targets: list[tuple[Dispatcher, bool, int | None]] = []
    try:
        for push in pushes:
            sink: Sink
            if push.kind == "webhook":
                sink = webhook.WebhookSink(push.url, secret)
            else:
                sink = mqtt.MqttSink(push.url, deployment_id)
            dispatcher = Dispatcher(
                sink, on_outcome=_recorder(store, push, sink.endpoint), **dispatch
            )
            targets.append((dispatcher, push.probe_image, push.id))
    except BaseException:
        AlertPusher(deployment_id, name, targets).close(grace_s=0)
        raise
    return AlertPusher(deployment_id, name, targets, store)
