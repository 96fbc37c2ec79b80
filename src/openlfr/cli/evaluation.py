"""``openlfr evaluate`` and ``openlfr calibrate``: open-set accuracy, thresholds, fairness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from openlfr.cli.common import ModelOption, _fail, _model, _progress, err
from openlfr.errors import OpenLFRError


def _embed_with_progress(paths: list[Path], label: str, no_cache: bool, upsample: int, model):  # type: ignore[no-untyped-def]
    from openlfr.evaluation.datasets import default_cache, largest_faces

    cache = None if no_cache else default_cache()
    with _progress(len(paths), f"{label} ({model.name})") as progress:
        task = progress.add_task(label, total=len(paths))
        return largest_faces(
            paths,
            cache=cache,
            upsample=upsample,
            model=model,
            on_result=lambda _: progress.advance(task),
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
        typer.Option(help="Threshold to report at (default: calibrated for the model and size)."),
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
    model: ModelOption = None,
) -> None:
    """Open-set 1:N accuracy: first image of each identity enrolled, its others searched.

    With --labels: FPIR of each group's strangers and FNIR of each group's watchlisted people,
    with 95% intervals, worst/best ratio and a significance scan (docs/fairness.md)."""
    from openlfr.evaluation.datasets import identity_folders
    from openlfr.evaluation.openset import protocol, report, search_outcomes
    from openlfr.matching import default_threshold
    from openlfr.vision.batch import list_images

    unit = _model(model)
    label_set, attributes = _labels(labels, group_by)
    people = identity_folders(folder)
    stranger_paths = list_images(strangers or [])
    paths = [p for images in people.values() for p in images] + stranger_paths
    faces = _embed_with_progress(paths, "embedding", no_cache, upsample, unit)
    p = protocol(people, stranger_paths, faces)
    if not p.enrolled:
        raise _fail(OpenLFRError(f"{folder}: no identity with two or more images to enrol"))
    outcomes = search_outcomes(p.enrolled, p.mated, p.nonmated, model=unit.name)
    default = default_threshold(len(p.enrolled), unit.name)
    if threshold is None:
        threshold = default
    result = {"model": unit.name, **report(outcomes, len(p.enrolled), threshold).as_dict()}
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


def calibrate(
    mated: Annotated[
        Path,
        typer.Option(
            exists=True,
            file_okay=False,
            help="Identity folders of one source: templates, and probes of the impostor fits.",
        ),
    ],
    strangers: Annotated[
        list[Path] | None,
        typer.Option(help="Images or folders, one person each, of the same source (optional)."),
    ] = None,
    watchlist_size: Annotated[
        list[int] | None,
        typer.Option(help="Watchlist size to calibrate for; repeat (default: 1 to 1,000,000)."),
    ] = None,
    target_fpir: Annotated[
        float, typer.Option(help="Highest acceptable false-positive identification rate.")
    ] = 0.001,
    upsample: Annotated[int, typer.Option(help="Detector upsampling for small faces.")] = 1,
    model: ModelOption = None,
    relabel: Annotated[
        list[str] | None,
        typer.Option(
            help="Correct a label error: IDENTITY=IDENTITY (one person in two folders) or "
            "IMAGE=IDENTITY (a photo in the wrong folder); repeat.",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the model's calibration file here.")
    ] = None,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="Make it this site's calibration of the model ($OPENLFR_HOME/calibration/).",
        ),
    ] = False,
    labels: LabelsOption = None,
    group_by: GroupByOption = None,
    print_threshold: Annotated[
        bool,
        typer.Option(
            "--print-threshold", help="Print only the thresholds, one per size asked for."
        ),
    ] = False,
) -> None:
    """Choose a face model's threshold for a target FPIR at every watchlist size, from the
    per-probe impostor distribution of one source's identities (docs/calibration.md).

    With --labels, also the demographic differential at the threshold for the folder's own
    list size: each group's FPIR among the strangers and FNIR among the mated searches."""
    from dataclasses import replace

    from openlfr.evaluation.calibrate import SIZES
    from openlfr.evaluation.calibrate import calibrate as run_calibration
    from openlfr.evaluation.datasets import identity_folders
    from openlfr.evaluation.datasets import relabel as apply_relabels
    from openlfr.vision.batch import list_images
    from openlfr.vision.models.calibration import (
        load_calibration,
        packaged_path,
        site_path,
        write_calibration,
    )

    unit = _model(model)
    try:
        people = apply_relabels(identity_folders(mated), relabel or [])
    except OpenLFRError as exc:
        raise _fail(exc) from exc
    stranger_paths = list_images(strangers or [])
    paths = [p for images in people.values() for p in images] + stranger_paths
    faces = _embed_with_progress(paths, "embedding", False, upsample, unit)
    sizes = sorted(set(watchlist_size or SIZES))
    try:
        result = run_calibration(
            {name: [faces[p] for p in images] for name, images in people.items()},
            [faces[p] for p in stranger_paths],
            model=unit.name,
            sizes=sizes,
            target_fpir=target_fpir,
        )
    except ValueError as exc:
        raise _fail(exc) from exc
    calibration = replace(
        load_calibration(unit.name),
        score="cosine",
        target_fpir=target_fpir,
        thresholds=result.thresholds,
        priors={},
        method=(
            f"openlfr calibrate --mated {mated.name} "
            + "".join(f"--relabel {r} " for r in relabel or [])
            + "".join(f"--strangers {s.name} " for s in strangers or [])
            + f"--model {unit.name}: cosine; each of {result.probes} probes against every "
            f"photo of the {result.identities} identities it is not, and a generalised Pareto "
            f"tail over the top 0.1% of those scores; measured up to {result.measured_up_to} "
            "subjects, the tail alone beyond (docs/calibration.md)"
        ),
    )
    summary = result.as_dict()
    if labels:
        from openlfr.evaluation.demographics import demographic_results, searches_from_protocol
        from openlfr.evaluation.openset import protocol, search_outcomes
        from openlfr.evaluation.tables import print_demographics

        label_set, attributes = _labels(labels, group_by)
        p = protocol(people, stranger_paths, faces)
        t = calibration.threshold(len(p.enrolled))
        outcomes = search_outcomes(p.enrolled, p.mated, p.nonmated, model=unit.name, score="cosine")
        searches = searches_from_protocol(p, outcomes, label_set, attributes)
        summary["demographics"] = demographic_results(searches, [t], default_threshold=t)
        print_demographics(err, summary["demographics"])
    for size, value in result.thresholds.items():
        err.print(f"threshold [bold]{value}[/bold] for FPIR <= {target_fpir:g} at {size} subjects")
    for path in ([output] if output else []) + ([site_path(unit.name)] if write else []):
        # The shipped file keeps the figures its model card quotes; any other starts without.
        shipped = path.resolve() == packaged_path(unit.name).resolve()
        write_calibration(calibration if shipped else replace(calibration, figures={}), path)
        err.print(f"calibration of {unit.name} written to {path}")
    if print_threshold:
        print("\n".join(str(result.thresholds[s]) for s in sizes))
    else:
        print(json.dumps(summary, indent=2))
