"""``openlfr search``: every face in some images, 1:N against a watchlist."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from openlfr.cli.common import ModelOption, _watchlist_index


def search(
    paths: Annotated[list[Path], typer.Argument(help="Images or folders (searched recursively).")],
    watchlist: Annotated[str, typer.Option(help="Watchlist to search against.")],
    top_k: Annotated[int, typer.Option(help="Candidates per face.")] = 3,
    threshold: Annotated[
        float | None,
        typer.Option(help="Score to alert at (default: calibrated for the model and list size)."),
    ] = None,
    upsample: Annotated[int, typer.Option(help="Detector upsampling for small faces.")] = 1,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per image.")] = False,
    model: ModelOption = None,
) -> None:
    """Search every face in the images 1:N against a watchlist."""
    from openlfr.matching import is_alert
    from openlfr.vision.batch import analyse_files, list_images

    images = list_images(paths)
    # About one face per image: few images against a large list search it exactly, since
    # building its graph would take longer than the searches it saves.
    index = _watchlist_index(watchlist, model, expected_searches=len(images))
    if threshold is None:
        threshold = index.default_threshold()
    table = Table("image", "box", "best candidate", "score", "alert")
    failed = False
    for result in analyse_files(images, model=index.model, upsample=upsample):
        if result.error:
            failed = True
            line: dict = {"image": result.path, "error": result.error}
        else:
            embeddings = [f.embedding for f in result.faces]
            found = index.search(embeddings, top_k, model=index.model) if embeddings else []
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
