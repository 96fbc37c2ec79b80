"""``openlfr deployment``: plan, authorise, run and stop deployments."""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from openlfr.cli.common import ModelOption, _fail, _session, _when, err
from openlfr.errors import OpenLFRError

deployment_app = typer.Typer(help="Plan, run and stop deployments.", no_args_is_help=True)


@deployment_app.command("create")
def deployment_create(
    name: Annotated[str, typer.Option(help="Short name of the operation.")],
    location: Annotated[str, typer.Option(help="Where the cameras are: the targeted area.")],
    reason: Annotated[str, typer.Option(help="Why here, why now, why these people.")],
    watchlist: Annotated[str, typer.Option(help="Watchlist to freeze at start.")],
    end: Annotated[str, typer.Option(help="Hard end: ISO time (UTC), or +4h from now.")],
    camera: Annotated[
        list[str], typer.Option(help="NAME=SOURCE (file, folder, rtsp:// or http:// URL, index).")
    ],
    start: Annotated[str, typer.Option(help="Start: ISO time (UTC), 'now' or +10m.")] = "now",
    threshold: Annotated[
        float | None, typer.Option(help="Alert threshold (default: calibrated for the list).")
    ] = None,
    created_by: Annotated[str | None, typer.Option(help="Who plans it (default: you).")] = None,
    area: Annotated[str, typer.Option(help="The targeted area (streets, zone).")] = "",
    dpia_ref: Annotated[str, typer.Option(help="Data protection impact assessment ref.")] = "",
    equality_ref: Annotated[str, typer.Option(help="Equality impact assessment ref.")] = "",
    signage_confirmed: Annotated[
        bool, typer.Option("--signage-confirmed", help="Notices are up at the area.")
    ] = False,
    threshold_override_reason: Annotated[
        str | None, typer.Option(help="Why a threshold below the policy's minimum is needed.")
    ] = None,
    model: ModelOption = None,
    webhook: Annotated[
        str | None, typer.Option(help="POST each alert here, signed (docs/alerts.md).")
    ] = None,
    mqtt: Annotated[
        str | None, typer.Option(help="Publish each alert to this broker: mqtt://host[:port].")
    ] = None,
    push_probe_image: Annotated[
        bool,
        typer.Option("--push-probe-image", help="Pushed alerts carry the probe crop (policy)."),
    ] = False,
    camera_resource: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=RESOURCE: on a cluster ('deployment run --cluster'), camera NAME runs "
            "only on the Ray nodes started with that custom resource (the ones that can reach "
            "it: ray start --resources='{\"RESOURCE\": 100}'). Repeat per camera."
        ),
    ] = None,
) -> None:
    """Plan a deployment: who, where, when, why, which watchlist, which cameras, and where its
    alerts are pushed as they happen (optional; audited).

    It runs only once someone else authorises it ('openlfr deployment authorise') and the
    signage is confirmed."""
    from openlfr.governance import audit
    from openlfr.live.deployment import create_deployment
    from openlfr.notify.pushes import configure_pushes

    cameras = {}
    for i, spec in enumerate(camera, start=1):
        cam_name, _, source = (
            spec.partition("=")
            if "=" in spec and "://" not in spec.split("=")[0]
            else ("", "", spec)
        )
        cameras[cam_name or f"camera-{i}"] = source
    resources = {}
    for spec in camera_resource or []:
        cam_name, _, resource = spec.partition("=")
        if not cam_name or not resource:
            raise _fail(OpenLFRError(f"--camera-resource is NAME=RESOURCE, not {spec!r}"))
        resources[cam_name] = resource
    with _session() as session:
        try:
            deployment = create_deployment(
                session,
                name=name,
                location=location,
                reason=reason,
                watchlist=watchlist,
                starts_at=_when(start),
                ends_at=_when(end),
                cameras=cameras,
                created_by=created_by or getpass.getuser(),
                threshold=threshold,
                area=area,
                dpia_ref=dpia_ref,
                equality_ref=equality_ref,
                signage_confirmed=signage_confirmed,
                threshold_override_reason=threshold_override_reason,
                model=model,
                resources=resources,
            )
            configure_pushes(
                session,
                deployment,
                actor=deployment.created_by,
                webhook_url=webhook,
                mqtt_url=mqtt,
                probe_image=push_probe_image,
            )
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        audit.append(
            session,
            actor=deployment.created_by,
            action="deployment-plan",
            obj=f"deployment:{deployment.id}:{deployment.watchlist_name}",
            purpose=deployment.reason[:500],
        )
        session.commit()
        print(deployment.id)
    err.print(
        f"deployment {deployment.id} planned: it needs 'openlfr deployment authorise "
        f"{deployment.id} --by NAME' (someone else) before 'openlfr deployment run'"
    )


@deployment_app.command("authorise")
def deployment_authorise(
    deployment_id: int,
    by: Annotated[str, typer.Option(help="The authorising officer (not the requester).")],
) -> None:
    """Authorise a planned deployment (recorded and audited)."""
    from openlfr.governance.authorisation import authorise_deployment
    from openlfr.governance.policy import load_policy
    from openlfr.live.deployment import get_deployment

    with _session() as session:
        try:
            deployment = get_deployment(session, deployment_id)
            authorise_deployment(session, deployment, by=by, policy=load_policy())
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        session.commit()
    err.print(f"deployment {deployment_id} authorised by {by}")


@deployment_app.command("confirm-signage")
def deployment_confirm_signage(
    deployment_id: int,
    by: Annotated[str, typer.Option(help="Who checked the notices at the area.")],
) -> None:
    """Record that the public notices are up at the deployment's area (audited)."""
    from openlfr.governance.authorisation import confirm_signage
    from openlfr.live.deployment import get_deployment

    with _session() as session:
        try:
            confirm_signage(session, get_deployment(session, deployment_id), by=by)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        session.commit()
    err.print(f"deployment {deployment_id}: signage confirmed by {by}")


@deployment_app.command("list")
def deployment_list() -> None:
    """Deployments with their status and counts."""
    from sqlalchemy import select

    from openlfr.live.deployment import recover_crashed
    from openlfr.store.models import Deployment

    table = Table(
        "id", "name", "location", "watchlist", "start", "end", "status", "faces processed", "alerts"
    )
    with _session() as session:
        recover_crashed(session)
        for d in session.scalars(select(Deployment).order_by(Deployment.id)):
            table.add_row(
                str(d.id),
                d.name,
                d.location,
                d.watchlist_name,
                f"{d.starts_at:%Y-%m-%d %H:%M}",
                f"{d.ends_at:%Y-%m-%d %H:%M}",
                d.status + (f" ({d.end_reason})" if d.end_reason else ""),
                str(sum(c.faces_processed for c in d.cameras)),
                str(sum(c.alerts for c in d.cameras)),
            )
    Console().print(table)


@deployment_app.command("show")
def deployment_show(
    deployment_id: int,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """One deployment: its record, its cameras' counts and its alerts (without images)."""
    from sqlalchemy import select

    from openlfr.live.deployment import get_deployment, recover_crashed
    from openlfr.live.supervisor import camera_record
    from openlfr.notify.pushes import push_record, pushes_of
    from openlfr.store.models import Alert

    with _session() as session:
        recover_crashed(session)
        try:
            d = get_deployment(session, deployment_id)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        alerts = session.scalars(
            select(Alert).where(Alert.deployment_id == d.id).order_by(Alert.raised_at)
        ).all()
        record = {
            "id": d.id,
            "name": d.name,
            "location": d.location,
            "reason": d.reason,
            "watchlist": d.watchlist_name,
            "threshold": d.threshold,
            "model": d.model,
            "starts_at": str(d.starts_at),
            "ends_at": str(d.ends_at),
            "status": d.status,
            "started_at": str(d.started_at) if d.started_at else None,
            "ended_at": str(d.ended_at) if d.ended_at else None,
            "end_reason": d.end_reason,
            "snapshot_size": d.snapshot_size,
            "created_by": d.created_by,
            "area": d.area,
            "dpia_ref": d.dpia_ref,
            "equality_ref": d.equality_ref,
            "signage_confirmed": d.signage_confirmed,
            "authorised_by": d.authorised_by,
            "authorised_at": str(d.authorised_at) if d.authorised_at else None,
            "threshold_override_reason": d.threshold_override_reason,
            # counts, rate, last frame, state, crashes (with the last cause) and error
            "cameras": [camera_record(c, d.status) for c in d.cameras],
            # where its alerts are pushed, with delivery counts (no secret: none is stored)
            "pushes": [
                {**push_record(p), "configured_at": str(p.configured_at)}
                for p in pushes_of(session, d.id)
            ],
            "alerts": [
                {
                    "id": a.id,
                    "subject": a.subject_name,
                    "score": a.score,
                    "camera_id": a.camera_id,
                    "track": a.track,
                    "time_s": a.time_s,
                    "raised_at": str(a.raised_at),
                    "latency_s": a.latency_s,
                }
                for a in alerts
            ],
        }
    if as_json:
        print(json.dumps(record, indent=2, default=str))
    else:
        Console().print_json(json.dumps(record, default=str))


@deployment_app.command("run")
def deployment_run(
    deployment_id: int,
    cluster: Annotated[
        str | None,
        typer.Option(
            envvar="OPENLFR_RAY_ADDRESS",
            help="Run each camera as an actor on the Ray cluster whose head is at HOST:PORT "
            "(needs Ray, the 'cluster' extra; its head must not spill to disk: docs/scale.md).",
        ),
    ] = None,
) -> None:
    """Run a deployment until its end time or 'openlfr deployment stop'; one process per camera,
    or one Ray actor per camera with --cluster (this process is then the controller: it alone
    stores alerts and enforces the end).

    SIGTERM or Ctrl-C stops it as 'deployment stop' would (its snapshot is destroyed); a crashed
    camera is restarted; if this process is killed outright, its camera workers die with it."""
    import signal

    from openlfr.live.deployment import StopRequest, run_deployment
    from openlfr.notify.pushes import alert_pusher
    from openlfr.store.db import open_store

    stop = StopRequest()

    def on_signal(number: int, _frame: object) -> None:
        stop.request(f"stopped: the runner received {signal.Signals(number).name}")

    def show(event) -> None:  # type: ignore[no-untyped-def]
        err.print(
            f"[bold red]ALERT[/bold red] {event.camera}: {event.subject} "
            f"(score {event.score:.2f}, track {event.track})"
        )

    store = open_store()
    try:
        pusher = alert_pusher(store, deployment_id)  # its webhook, its MQTT broker, if any
    except OpenLFRError as exc:
        raise _fail(exc) from exc

    def on_alert(event) -> None:  # type: ignore[no-untyped-def]
        if pusher is not None:
            pusher.submit(event)  # queued, never waited for
        show(event)

    # restored at the end: a caller in the same process (a test) keeps its own handlers
    previous = {n: signal.signal(n, on_signal) for n in (signal.SIGTERM, signal.SIGINT)}
    try:
        deployment = run_deployment(
            store, deployment_id, on_alert=on_alert, stop=stop, cluster=cluster or None
        )
    except OpenLFRError as exc:
        raise _fail(exc) from exc
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if pusher is not None:
            err.print(f"alerts pushed: {pusher.summary(pusher.close())}")
    err.print(f"deployment {deployment_id} ended: {deployment.end_reason}; snapshot destroyed")


@deployment_app.command("stop")
def deployment_stop(deployment_id: int) -> None:
    """Ask a running deployment to stop now."""
    from openlfr.live.deployment import request_stop

    with _session() as session:
        try:
            request_stop(session, deployment_id)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
    err.print(f"stop requested for deployment {deployment_id}")
