"""The ``openlfr`` command line: watchlists, 1:N search, evaluation and calibration."""

from __future__ import annotations

import getpass
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from openlfr.errors import OpenLFRError

app = typer.Typer(help="OpenLFR: open, accountable live facial recognition.", no_args_is_help=True)
watchlist_app = typer.Typer(
    help="Create, enrol, inspect and prune watchlists.", no_args_is_help=True
)
app.add_typer(watchlist_app, name="watchlist")
deployment_app = typer.Typer(help="Plan, run and stop deployments.", no_args_is_help=True)
app.add_typer(deployment_app, name="deployment")
user_app = typer.Typer(help="Operator accounts (bootstrap the first admin).", no_args_is_help=True)
app.add_typer(user_app, name="user")
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
subject_app = typer.Typer(help="Data subjects' rights: find, export, erase.", no_args_is_help=True)
app.add_typer(subject_app, name="subject")
retention_app = typer.Typer(help="Purge what the policy no longer keeps.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")

err = Console(stderr=True, soft_wrap=True)  # paths in messages stay whole, greppable


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(2)


def _progress(total: int, label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=total < 10 or not err.is_terminal and not _force_progress(),
    )


def _force_progress() -> bool:
    import os

    return bool(os.environ.get("OPENLFR_PROGRESS"))


def _session():  # type: ignore[no-untyped-def]
    from openlfr.store.db import open_store

    return open_store()()


def _audit(session, action: str, obj: str, purpose: str) -> None:  # type: ignore[no-untyped-def]
    """Append to the audit chain as ``cli:<the operating-system user>``."""
    from openlfr.governance import audit

    audit.append(
        session, actor=f"cli:{getpass.getuser()}", action=action, obj=obj, purpose=purpose[:500]
    )


# --- watchlists -------------------------------------------------------------------------------


@watchlist_app.command("create")
def watchlist_create(
    name: str, description: Annotated[str, typer.Option(help="What the list is for.")] = ""
) -> None:
    """Create an empty watchlist."""
    from openlfr.store.watchlists import create_watchlist

    with _session() as session:
        try:
            create_watchlist(session, name, description)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        _audit(session, "watchlist-create", f"watchlist:{name}", "watchlist management")
        session.commit()
    err.print(f"created watchlist [bold]{name}[/bold]")


@watchlist_app.command("import")
def watchlist_import(
    name: str,
    folder: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="One sub-folder per subject.")
    ],
    category: Annotated[str, typer.Option(help="Policy category, e.g. wanted-by-courts.")],
    reason: Annotated[str, typer.Option(help="Why these people are on the list.")],
    legal_basis: Annotated[
        str, typer.Option(help="The law the entries rest on, e.g. 'warrant 123 (MCA 1980 s.1)'.")
    ],
    authorised_by: Annotated[str, typer.Option(help="Who authorised these entries.")],
    minor: Annotated[
        bool,
        typer.Option("--minor", help="The subjects are under 18 (refused unless policy allows)."),
    ] = False,
    expires: Annotated[str | None, typer.Option(help="Expiry date, YYYY-MM-DD.")] = None,
    source: Annotated[str, typer.Option(help="Where the images came from.")] = "",
    added_by: Annotated[str | None, typer.Option(help="Who adds them (default: you).")] = None,
    upsample: Annotated[int, typer.Option(help="Detector upsampling for small faces.")] = 1,
    workers: Annotated[int | None, typer.Option(help="Processes (default: all cores).")] = None,
) -> None:
    """Enrol one subject per sub-folder of FOLDER (folder name = subject name), every image in it.

    Images with no face or several faces are listed by name and not enrolled.
    """
    from openlfr.governance.policy import load_policy
    from openlfr.store.enrol import import_folder
    from openlfr.store.watchlists import WatchlistEntry, get_watchlist
    from openlfr.vision.batch import list_images

    try:
        expires_on = date.fromisoformat(expires) if expires else None
    except ValueError as exc:
        raise _fail(OpenLFRError(f"--expires {expires!r} is not a date (YYYY-MM-DD)")) from exc
    total = sum(len(list_images([p])) for p in folder.iterdir() if p.is_dir())
    with _session() as session, _progress(total, "enrolling") as progress:
        task = progress.add_task("enrol", total=total)
        try:
            watchlist = get_watchlist(session, name)
            entry = WatchlistEntry(
                category=category,
                reason=reason,
                legal_basis=legal_basis,
                authorised_by=authorised_by,
                added_by=added_by or getpass.getuser(),
                image_source=source or str(folder),
                expires_on=expires_on,
                minor=minor,
            )
            report = import_folder(
                session,
                watchlist,
                folder,
                entry=entry,
                policy=load_policy(),
                upsample=upsample,
                workers=workers,
                on_image=lambda _: progress.advance(task),
            )
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        if report.subjects_added:
            from openlfr.store.watchlists import get_subject

            # Ids, not names: the log outlives an erasure (openlfr subject erase).
            added = [get_subject(session, watchlist, n) for n in report.subjects_added]
            ids = ",".join(str(s.id) for s in added if s is not None)
            why = f"{category}; legal basis: {legal_basis}; authorised by {authorised_by}"
            _audit(session, "enrol", f"watchlist:{watchlist.name}:subject-ids:{ids}", why)
            session.commit()
    for path, why in report.problems:
        err.print(f"[yellow]not enrolled[/yellow] {path}: {why}")
    for subject in report.subjects_without_images:
        err.print(f"[yellow]no subject added[/yellow] for {subject}: no usable image")
    err.print(
        f"{len(report.enrolled)} images enrolled for {len(report.subjects_added)} new subjects; "
        f"{len(report.already_enrolled)} already enrolled; {len(report.problems)} not enrolled"
    )
    if report.problems:
        raise typer.Exit(1)


@watchlist_app.command("list")
def watchlist_list() -> None:
    """List watchlists with their number of subjects."""
    from openlfr.store.watchlists import list_watchlists

    table = Table("watchlist", "subjects", "images", "created")
    with _session() as session:
        for w in list_watchlists(session):
            images = sum(len(s.images) for s in w.subjects)
            table.add_row(w.name, str(len(w.subjects)), str(images), f"{w.created_at:%Y-%m-%d}")
    Console().print(table)


@watchlist_app.command("show")
def watchlist_show(name: str) -> None:
    """Show a watchlist's subjects: category, reason, who added them, expiry, images."""
    from openlfr.store.watchlists import get_watchlist

    with _session() as session:
        try:
            watchlist = get_watchlist(session, name)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        table = Table(
            "subject",
            "category",
            "reason",
            "added by",
            "expires",
            "images",
            title=f"watchlist {watchlist.name}",
        )
        for s in watchlist.subjects:
            expiry = str(s.expires_on or "-") + (" (expired)" if s.expired() else "")
            table.add_row(s.name, s.category, s.reason, s.added_by, expiry, str(len(s.images)))
    Console().print(table)


@watchlist_app.command("remove-subject")
def watchlist_remove_subject(name: str, subject: str) -> None:
    """Remove a subject with its reference images and templates."""
    from openlfr.store.watchlists import get_watchlist, remove_subject

    with _session() as session:
        try:
            subject_id = remove_subject(session, get_watchlist(session, name), subject)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        # The id, not the name, as the service's delete: the log outlives the person's entry.
        _audit(
            session, "delete", f"watchlist:{name}:subject-ids:{subject_id}", "watchlist management"
        )
        session.commit()
    err.print(f"removed {subject} from {name}")


# --- search -----------------------------------------------------------------------------------


def _watchlist_index(name: str):  # type: ignore[no-untyped-def]
    """The search index of a watchlist's current entries; expired ones are named and left out."""
    from openlfr.matching import WatchlistIndex
    from openlfr.store.watchlists import get_watchlist, load_templates

    with _session() as session:
        try:
            templates = load_templates(session, get_watchlist(session, name))
        except OpenLFRError as exc:
            raise _fail(exc) from exc
    for subject in templates.expired:
        err.print(f"[yellow]left out[/yellow] {subject}: watchlist entry expired")
    return WatchlistIndex(templates.embeddings, templates.subject_ids, templates.subject_names)


@app.command()
def search(
    paths: Annotated[list[Path], typer.Argument(help="Images or folders (searched recursively).")],
    watchlist: Annotated[str, typer.Option(help="Watchlist to search against.")],
    top_k: Annotated[int, typer.Option(help="Candidates per face.")] = 3,
    threshold: Annotated[
        float | None,
        typer.Option(help="Open-set score to alert at (default: calibrated for the list's size)."),
    ] = None,
    upsample: Annotated[int, typer.Option(help="Detector upsampling for small faces.")] = 1,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per image.")] = False,
) -> None:
    """Search every face in the images 1:N against a watchlist."""
    from openlfr.matching import default_threshold, is_alert
    from openlfr.vision.batch import analyse_files, list_images

    index = _watchlist_index(watchlist)
    if threshold is None:
        threshold = default_threshold(index.subject_count)
    table = Table("image", "box", "best candidate", "score", "alert")
    images = list_images(paths)
    failed = False
    for result in analyse_files(images, upsample=upsample):
        if result.error:
            failed = True
            line: dict = {"image": result.path, "error": result.error}
        else:
            embeddings = [f.embedding for f in result.faces]
            found = index.search(embeddings, top_k) if embeddings else []
            line = {"image": result.path, "faces": []}
            for face, candidates in zip(result.faces, found, strict=True):
                line["faces"].append(
                    {
                        "box": face.box.as_list(),
                        "quality": face.quality.as_dict(),
                        "candidates": [
                            {"subject": c.subject, "score": c.score, "similarity": c.similarity}
                            for c in candidates
                        ],
                        "alert": is_alert(candidates, threshold),
                    }
                )
        if jsonl:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
        elif "error" in line:
            table.add_row(result.path, "", f"[red]{line['error']}[/red]", "", "")
        else:
            for face in line["faces"] or [None]:
                if face is None:
                    table.add_row(result.path, "no face", "", "", "")
                    continue
                best = face["candidates"][0] if face["candidates"] else None
                table.add_row(
                    result.path,
                    str(face["box"]),
                    best["subject"] if best else "-",
                    f"{best['score']:.2f}" if best else "-",
                    "[bold red]ALERT[/bold red]" if face["alert"] else "no",
                )
    if not jsonl:
        Console().print(table)
    if failed:
        raise typer.Exit(1)


# --- evaluation -------------------------------------------------------------------------------


def _embed_with_progress(paths: list[Path], label: str, no_cache: bool, upsample: int):  # type: ignore[no-untyped-def]
    from openlfr.evaluation.datasets import default_cache, largest_faces

    cache = None if no_cache else default_cache()
    with _progress(len(paths), label) as progress:
        task = progress.add_task(label, total=len(paths))
        return largest_faces(
            paths, cache=cache, upsample=upsample, on_result=lambda _: progress.advance(task)
        )


def _thresholds(values: list[str] | None) -> list[float]:
    """``--thresholds 3.5,3.9 --thresholds 4.2`` -> [3.5, 3.9, 4.2]."""
    try:
        return [float(v) for value in values or [] for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise _fail(OpenLFRError(f"--thresholds: {exc}")) from exc


def _labels(paths: list[Path] | None, group_by: list[str] | None):  # type: ignore[no-untyped-def]
    """The label files merged, and the attributes to group by (default: every group-like one)."""
    from openlfr.evaluation.labels import Labels, read_labels

    labels = Labels()
    try:
        for path in paths or []:
            labels = labels.merge(read_labels(path))
        attributes = list(group_by) if group_by else labels.default_groupings()
        labels.check_columns(attributes)
    except OpenLFRError as exc:
        raise _fail(exc) from exc
    return labels, attributes


LabelsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--labels",
        help="Demographic labels: CSV (path + columns) or JSON list; paths relative to the file.",
    ),
]
GroupByOption = Annotated[
    list[str] | None,
    typer.Option(help="Label column to report per group (default: every group-like column)."),
]


@app.command()
def evaluate(
    folder: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="One sub-folder per identity.")
    ],
    strangers: Annotated[
        list[Path] | None,
        typer.Option(help="Images or folders of people not on the watchlist (non-mated searches)."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(help="Threshold to report at (default: calibrated for the list's size)."),
    ] = None,
    labels: LabelsOption = None,
    group_by: GroupByOption = None,
    thresholds: Annotated[
        list[str] | None,
        typer.Option(
            help="Thresholds for per-group results, e.g. 3,3.5,3.9 (default: -threshold)."
        ),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option("--report", help="Write the equality-evidence report (HTML, PDF) here."),
    ] = None,
    upsample: Annotated[int, typer.Option(help="Detector upsampling for small faces.")] = 1,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not use or fill the embedding cache.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Open-set 1:N accuracy: first image of each identity enrolled, its others searched.

    With --labels: FPIR of each group's strangers and FNIR of each group's watchlisted people,
    with 95% intervals, worst/best ratio and a significance scan (docs/fairness.md)."""
    from openlfr.evaluation.datasets import identity_folders
    from openlfr.evaluation.openset import protocol, report, search_outcomes
    from openlfr.matching import default_threshold
    from openlfr.vision.batch import list_images

    label_set, attributes = _labels(labels, group_by)
    people = identity_folders(folder)
    stranger_paths = list_images(strangers or [])
    paths = [p for images in people.values() for p in images] + stranger_paths
    faces = _embed_with_progress(paths, "embedding", no_cache, upsample)
    p = protocol(people, stranger_paths, faces)
    if not p.enrolled:
        raise _fail(OpenLFRError(f"{folder}: no identity with two or more images to enrol"))
    outcomes = search_outcomes(p.enrolled, p.mated, p.nonmated)
    default = default_threshold(len(p.enrolled))
    if threshold is None:
        threshold = default
    result = report(outcomes, len(p.enrolled), threshold).as_dict()
    if labels or report_dir:
        from openlfr.evaluation.demographics import demographic_results, searches_from_protocol

        searches = searches_from_protocol(p, outcomes, label_set, attributes)
        chosen = _thresholds(thresholds) or [threshold]
        result["demographics"] = demographic_results(searches, chosen, default_threshold=default)
        if report_dir:
            from openlfr.evaluation.report import write_report

            inputs = {
                "watchlist folder": str(folder),
                "strangers": [str(s) for s in strangers or []],
                "labels": [str(s) for s in labels or []],
                "watchlist subjects": len(p.enrolled),
                "mated searches": len(p.mated),
                "non-mated searches": len(p.nonmated),
            }
            written = write_report(report_dir, searches, result, inputs)
            err.print(f"report written: {', '.join(str(w) for w in written)}")
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table("measure", "value", title=f"open-set evaluation of {folder}")
    for key, value in result.items():
        if key != "demographics":
            table.add_row(key.replace("_", " "), json.dumps(value))
    Console().print(table)
    if "demographics" in result:
        from openlfr.evaluation.tables import print_demographics

        print_demographics(Console(), result["demographics"])


@app.command()
def calibrate(
    mated: Annotated[
        Path,
        typer.Option(
            exists=True, file_okay=False, help="Identity folders: enrolled and mated searches."
        ),
    ],
    strangers: Annotated[list[Path], typer.Option(help="Images or folders, one person each.")],
    watchlist_size: Annotated[
        list[int] | None,
        typer.Option(help="Watchlist size to calibrate for; repeat for a table (default 1000)."),
    ] = None,
    target_fpir: Annotated[
        float, typer.Option(help="Highest acceptable false-positive identification rate.")
    ] = 0.001,
    rounds: Annotated[int, typer.Option(help="Random watchlists drawn.")] = 10,
    seed: int = 0,
    upsample: Annotated[int, typer.Option(help="Detector upsampling for small faces.")] = 1,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
    labels: LabelsOption = None,
    group_by: GroupByOption = None,
    print_threshold: Annotated[
        bool,
        typer.Option(
            "--print-threshold", help="Print only the threshold (JSON still to --output)."
        ),
    ] = False,
) -> None:
    """Choose the open-set threshold for a target FPIR on a watchlist of a given size.

    With --labels, also the demographic differential there: each group's FPIR among the
    strangers (95% intervals), and the lowest threshold at which the groups' false-alert rates
    no longer differ significantly (docs/fairness.md)."""
    from openlfr.evaluation.calibrate import calibrate as run_calibration
    from openlfr.evaluation.calibrate import people_from
    from openlfr.evaluation.datasets import identity_folders
    from openlfr.vision.batch import list_images

    people = identity_folders(mated)
    stranger_paths = list_images(strangers)
    paths = [p for images in people.values() for p in images] + stranger_paths
    faces = _embed_with_progress(paths, "embedding", False, upsample)
    pool = people_from(
        {name: [faces[p] for p in images] for name, images in people.items()},
        [(str(p), faces[p]) for p in stranger_paths],
    )
    label_set, attributes = _labels(labels, group_by)
    results = []
    for size in watchlist_size or [1000]:
        record: list = []
        try:
            results.append(
                run_calibration(
                    pool,
                    watchlist_size=size,
                    target_fpir=target_fpir,
                    rounds=rounds,
                    seed=seed,
                    record=record,
                ).as_dict()
            )
        except ValueError as exc:
            raise _fail(exc) from exc
        if labels:
            from openlfr.evaluation.demographics import calibration_searches, demographic_results

            images = {**people, **{str(p): [p] for p in stranger_paths}}
            searches = calibration_searches(record, images, label_set, attributes)
            t = results[-1]["threshold"]
            results[-1]["demographics"] = demographic_results(
                searches, [t], default_threshold=t, seed=seed
            )
            from openlfr.evaluation.tables import print_demographics

            print_demographics(err, results[-1]["demographics"])
        err.print(
            f"[bold]threshold {results[-1]['threshold']}[/bold] for FPIR <= {target_fpir:g} "
            f"on a {size}-subject watchlist (use: --threshold {results[-1]['threshold']})"
        )
    table = {str(r["watchlist_size"]): r["threshold"] for r in results}
    text = json.dumps(
        results[0] if len(results) == 1 else {"thresholds": table, "calibrations": results},
        indent=2,
    )
    if output:
        output.write_text(text + "\n")
    if print_threshold:
        print("\n".join(str(r["threshold"]) for r in results))
    else:
        print(text)


# --- live -------------------------------------------------------------------------------------


@app.command()
def replay(
    video: Annotated[str, typer.Argument(help="A video file or a folder of frames.")],
    watchlist: Annotated[str, typer.Option(help="Watchlist to search against.")],
    threshold: Annotated[
        float | None,
        typer.Option(help="Open-set score to alert at (default: calibrated for the list's size)."),
    ] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Keep the file's pace, dropping frames as live.")
    ] = False,
    working_width: Annotated[
        int, typer.Option(help="Detect on frames scaled to this width.")
    ] = 960,
    upsample: Annotated[int, typer.Option(help="Detector upsampling for small faces.")] = 0,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per alert.")] = False,
) -> None:
    """Run the live pipeline over a video file as if it were a camera; print its alerts."""
    import time

    from openlfr.live.pipeline import LiveConfig, LivePipeline
    from openlfr.live.runner import run_camera
    from openlfr.live.sources import open_source
    from openlfr.matching import default_threshold

    index = _watchlist_index(watchlist)
    config = LiveConfig(
        threshold=default_threshold(index.subject_count) if threshold is None else threshold,
        working_width=working_width,
        upsample=upsample,
    )
    pipeline = LivePipeline(index, camera=video, config=config)

    def show(event) -> None:  # type: ignore[no-untyped-def]
        line = {
            "frame": event.frame,
            "time_s": event.time_s,
            "subject": event.subject,
            "score": event.score,
            "track": event.track,
            "box": event.box,
        }
        if event.kind == "update":
            line["updates"] = event.alert_id
        if jsonl:
            print(json.dumps(line), flush=True)
        else:
            err.print(f"[bold red]ALERT[/bold red] {line}")

    started = time.monotonic()
    try:
        source = open_source(video)
    except OpenLFRError as exc:
        raise _fail(exc) from exc
    problem = None
    with source:
        try:
            run_camera(source, pipeline, show, realtime=realtime)
        except OpenLFRError as exc:
            problem = str(exc)
    counts = pipeline.counts
    wall = time.monotonic() - started
    summary = {
        "frames": counts.frames,
        "faces_processed": counts.faces_processed,
        "alerts": counts.alerts,
        "dropped_frames": counts.frames_dropped,
        "wall_s": round(wall, 2),
        "fps": round(counts.frames / wall, 2) if wall else 0.0,
    }
    if problem:
        summary["error"] = problem
        err.print(f"[red]error:[/red] {problem}")
    print(json.dumps({"summary": summary}), flush=True)
    if problem:
        raise typer.Exit(1)


# --- deployments ------------------------------------------------------------------------------


def _when(text: str) -> datetime:
    """An ISO date-time (UTC unless it says otherwise), ``now``, or ``+90m`` / ``+4h`` from now."""
    from datetime import UTC, timedelta

    now = datetime.now(UTC)
    if text == "now":
        return now
    if text.startswith("+") and text[-1] in "smh" and text[1:-1].replace(".", "").isdigit():
        unit = {"s": "seconds", "m": "minutes", "h": "hours"}[text[-1]]
        return now + timedelta(**{unit: float(text[1:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise OpenLFRError(f"{text!r} is not a time: use ISO 8601, 'now' or '+4h'") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
) -> None:
    """Plan a deployment: who, where, when, why, which watchlist, which cameras.

    It runs only once someone else authorises it ('openlfr deployment authorise') and the
    signage is confirmed."""
    from openlfr.governance import audit
    from openlfr.live.deployment import create_deployment

    cameras = {}
    for i, spec in enumerate(camera, start=1):
        cam_name, _, source = (
            spec.partition("=")
            if "=" in spec and "://" not in spec.split("=")[0]
            else ("", "", spec)
        )
        cameras[cam_name or f"camera-{i}"] = source
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
            "cameras": [
                {
                    "name": c.name,
                    "source": c.source,
                    "frames": c.frames,
                    "frames_dropped": c.frames_dropped,
                    "faces_processed": c.faces_processed,
                    "alerts": c.alerts,
                    "error": c.error,
                }
                for c in d.cameras
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
        print(json.dumps(record, indent=2))
    else:
        Console().print_json(json.dumps(record))


@deployment_app.command("run")
def deployment_run(deployment_id: int) -> None:
    """Run a deployment until its end time or 'openlfr deployment stop'; one process per camera."""
    from openlfr.live.deployment import run_deployment
    from openlfr.store.db import open_store

    def show(event) -> None:  # type: ignore[no-untyped-def]
        err.print(
            f"[bold red]ALERT[/bold red] {event.camera}: {event.subject} "
            f"(score {event.score:.2f}, track {event.track})"
        )

    try:
        deployment = run_deployment(open_store(), deployment_id, on_alert=show)
    except OpenLFRError as exc:
        raise _fail(exc) from exc
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


# --- service, accounts, audit -----------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Run the operator service: API (OpenAPI at /docs), live alerts and the console at /."""
    import uvicorn

    from openlfr.api.app import create_app

    err.print(f"OpenLFR service on http://{host}:{port}/ (API description: /docs)")
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[
        str,
        typer.Option(help="admin, watchlist-manager, authorising-officer, reviewer or auditor."),
    ],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add an account; the password is prompted for (twice) or read from stdin."""
    from openlfr.api.auth import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise _fail(OpenLFRError("the passwords differ"))
    with _session() as session:
        try:
            user = create_user(session, name, role, password)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        _audit(session, "user-add", f"user:{user.name}:{user.role}", "account administration")
        session.commit()
    err.print(f"user [bold]{name}[/bold] added with role {role}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit chain; exit code 1 and the first bad entry when it does not hold."""
    from openlfr.governance.audit import verify_chain

    with _session() as session:
        result = verify_chain(session)
    if result.ok:
        print(f"audit chain intact: {result.entries} entries")
        return
    err.print(f"[red]audit chain broken[/red] at entry {result.first_bad_id}: {result.problem}")
    raise typer.Exit(1)


# --- governance -------------------------------------------------------------------------------


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be deleted.")
    ] = False,
) -> None:
    """Delete alerts, false alerts and watchlist copies past the policy's retention periods;
    each purge is audited (counts and ids only)."""
    from openlfr.governance.policy import load_policy
    from openlfr.governance.retention import run_retention
    from openlfr.store.models import utcnow

    with _session() as session:
        try:
            result = run_retention(
                session, utcnow(), load_policy(), dry_run=dry_run, actor=f"cli:{getpass.getuser()}"
            )
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        session.commit()
    for line in result.lines():
        print(line)


@app.command()
def report(
    output: Annotated[Path, typer.Option(help="File to write.")],
    deployment: Annotated[int | None, typer.Option(help="One deployment's report.")] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Period start, YYYY-MM-DD (UTC).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Period end, YYYY-MM-DD, exclusive.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="html, pdf, csv or json.")] = "html",
) -> None:
    """Transparency report without personal data, per deployment or period.

    Alerts, true and false alerts, engagements, arrests, rates and charts (docs/governance.md).
    """
    from openlfr.governance.reports import build_report, write_report

    with _session() as session:
        try:
            made = build_report(
                session,
                deployment_id=deployment,
                start=_when(start) if start else None,
                end=_when(end) if end else None,
            )
            write_report(made, output, fmt)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
    err.print(f"report on {len(made.deployments)} deployments written to {output}")


PurposeOption = Annotated[str, typer.Option(help="Why (recorded in the audit log).")]


@subject_app.command("find")
def subject_find(name: str, purpose: PurposeOption = "subject access request") -> None:
    """What is held about NAME: watchlist entries and alerts (the look-up is audited)."""
    from openlfr.governance.subject_rights import find

    with _session() as session:
        held = find(session, name)
        for subject in held.subjects:
            print(
                f"entry {subject.id}: watchlist {subject.watchlist.name}, {subject.category}, "
                f"{len(subject.images)} images, expires {subject.expires_on or 'never'}"
            )
        for alert in held.alerts:
            print(f"alert {alert.id}: deployment {alert.deployment_id}, {alert.raised_at:%Y-%m-%d}")
        _audit(session, "subject-find", held.summary(), purpose)
        session.commit()
    err.print(f"{len(held.subjects)} watchlist entries, {len(held.alerts)} alerts")


@subject_app.command("export")
def subject_export(
    name: str,
    output: Annotated[Path, typer.Option(help="Folder to write subject.json and images to.")],
    purpose: PurposeOption = "subject access request",
) -> None:
    """Export everything held about NAME: records as JSON, images as files (audited)."""
    from openlfr.governance.subject_rights import export

    with _session() as session:
        try:
            held = export(session, name, output, actor=f"cli:{getpass.getuser()}", purpose=purpose)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        session.commit()
    err.print(f"exported {len(held.subjects)} entries and {len(held.alerts)} alerts to {output}")


@subject_app.command("erase")
def subject_erase(name: str, purpose: PurposeOption = "erasure request") -> None:
    """Erase NAME: entries, images, templates, alerts about them (audited without the name)."""
    from openlfr.governance.subject_rights import erase

    with _session() as session:
        try:
            held = erase(session, name, actor=f"cli:{getpass.getuser()}", purpose=purpose)
        except OpenLFRError as exc:
            raise _fail(exc) from exc
        session.commit()
    err.print(f"erased {len(held.subjects)} entries and {len(held.alerts)} alerts")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
