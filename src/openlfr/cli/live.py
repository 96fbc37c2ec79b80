"""``openlfr replay``: the live pipeline over a video file, as if it were a camera."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated

import typer

from openlfr.cli.common import ModelOption, _fail, _watchlist_index, err
from openlfr.errors import OpenLFRError


def replay(
    video: Annotated[str, typer.Argument(help="A video file or a folder of frames.")],
    watchlist: Annotated[str, typer.Option(help="Watchlist to search against.")],
    threshold: Annotated[
        float | None,
        typer.Option(help="Score to alert at (default: calibrated for the model and list size)."),
    ] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Keep the file's pace, dropping frames as live.")
    ] = False,
    working_width: Annotated[
        int, typer.Option(help="Detect on frames scaled to this width.")
    ] = 960,
    upsample: Annotated[int, typer.Option(help="Detector upsampling for small faces.")] = 0,
    research_after: Annotated[
        float | None,
        typer.Option(
            help="Search a face again this many seconds after its last search, at most 3 "
            "searches a face (default: off, only when a shot is clearly better; docs/live.md).",
            min=0.0,
        ),
    ] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per alert.")] = False,
    model: ModelOption = None,
) -> None:
    """Run the live pipeline over a video file as if it were a camera; print its alerts."""
    import time

    from openlfr.live.pipeline import LiveConfig, LivePipeline
    from openlfr.live.runner import run_camera
    from openlfr.live.sources import open_source

    index = _watchlist_index(watchlist, model)
    config = LiveConfig(
        threshold=index.default_threshold() if threshold is None else threshold,
        working_width=working_width,
        upsample=upsample,
    )
    if research_after is not None:
        config = replace(config, research_after_s=research_after)
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
        "searches": counts.searches,
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
