"""Transparency reports: what each deployment did, in figures, with no personal data.

Per deployment (and totalled for a period): date, location, duration, watchlist size,
threshold, faces processed, alerts, true and false alerts (the reviewers' "match" / "no-match"),
engagements and arrests (the recorded outcomes), the false alert rate per face processed and
the alert precision. The fields follow the Met's published LFR deployment records and South
Wales Police's definitions; docs/governance.md says where ours differ.

Alerts purged by retention still count (deployments keep purged tallies); the "alerts over
time" chart can only draw the alerts still held.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

# Figures are made without pyplot: no display needed, no global state, so the service can draw
# charts for several requests at once.
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from sqlalchemy import select
from sqlalchemy.orm import Session

from openlfr.errors import OpenLFRError
from openlfr.governance.authorisation import deployment_model
from openlfr.governance.retention import ENGAGED
from openlfr.live.deployment import get_deployment
from openlfr.matching import default_threshold
from openlfr.store.models import Adjudication, Alert, Deployment, as_utc

FORMATS = ("html", "pdf", "csv", "json")


@dataclass
class DeploymentFigures:
    """One deployment's published line. No subject, reviewer or probe appears here."""

    id: int
    name: str
    date: str
    location: str
    area: str
    start: str | None
    end: str | None
    duration_h: float
    watchlist_size: int
    threshold: float
    faces_processed: int
    alerts: int
    true_alerts: int
    false_alerts: int
    engagements: int
    arrests: int
    false_alert_rate: float | None  # false alerts per face processed
    precision: float | None  # true / (true + false): adjudicated alerts only
    alert_days: dict[str, int] = field(default_factory=dict)  # held alerts per day, for charts


@dataclass
class Report:
    title: str
    deployments: list[DeploymentFigures]

    def totals(self) -> dict[str, float | int | None]:
        keys = ("faces_processed", "alerts", "true_alerts", "false_alerts")
        sums: dict[str, float | int | None] = {
            k: sum(getattr(d, k) for d in self.deployments) for k in keys
        }
        sums["engagements"] = sum(d.engagements for d in self.deployments)
        sums["arrests"] = sum(d.arrests for d in self.deployments)
        sums["duration_h"] = round(sum(d.duration_h for d in self.deployments), 2)
        true, false, faces = sums["true_alerts"], sums["false_alerts"], sums["faces_processed"]
        sums["false_alert_rate"] = false / faces if faces else None  # type: ignore[operator]
        sums["precision"] = true / (true + false) if true or false else None  # type: ignore[operator]
        return sums


def deployment_figures(session: Session, deployment: Deployment) -> DeploymentFigures:
    rows = session.execute(
        select(Alert.raised_at, Adjudication.decision, Adjudication.outcome)
        .outerjoin(Adjudication, Adjudication.alert_id == Alert.id)
        .where(Alert.deployment_id == deployment.id)
    ).all()
    decisions = Counter(decision for _, decision, _ in rows)
    outcomes = Counter(outcome for _, _, outcome in rows)
    true = decisions["match"] + deployment.purged_true_alerts
    false = decisions["no-match"] + deployment.purged_false_alerts
    faces = sum(c.faces_processed for c in deployment.cameras)
    start = as_utc(deployment.started_at) if deployment.started_at else None
    end = as_utc(deployment.ended_at) if deployment.ended_at else None
    size = deployment.snapshot_size or 0
    return DeploymentFigures(
        id=deployment.id,
        name=deployment.name,
        date=(start or as_utc(deployment.starts_at)).date().isoformat(),
        location=deployment.location,
        area=deployment.area,
        start=start.isoformat(timespec="minutes") if start else None,
        end=end.isoformat(timespec="minutes") if end else None,
        duration_h=round((end - start).total_seconds() / 3600, 2) if start and end else 0.0,
        watchlist_size=size,
        threshold=deployment.threshold or default_threshold(size, deployment_model(deployment)),
        faces_processed=faces,
        alerts=len(rows) + deployment.purged_alerts,
        true_alerts=true,
        false_alerts=false,
        engagements=sum(outcomes[o] for o in ENGAGED) + deployment.purged_engagements,
        arrests=outcomes["arrested"] + deployment.purged_arrests,
        false_alert_rate=false / faces if faces else None,
        precision=true / (true + false) if true or false else None,
        alert_days=dict(sorted(Counter(as_utc(r[0]).date().isoformat() for r in rows).items())),
    )


def build_report(
    session: Session,
    *,
    deployment_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Report:
    """One deployment's report, or every deployment that started in [start, end)."""
    if deployment_id is not None:
        deployment = get_deployment(session, deployment_id)
        return Report(f"Deployment {deployment_id}", [deployment_figures(session, deployment)])
    if start is None or end is None or end <= start:
        raise OpenLFRError("a report needs --deployment ID, or --from DATE --to DATE (to > from)")
    chosen = [
        d
        for d in session.scalars(select(Deployment).order_by(Deployment.starts_at))
        if start <= as_utc(d.started_at or d.starts_at) < end
    ]
    title = f"Deployments from {start:%Y-%m-%d} to {end:%Y-%m-%d}"
    return Report(title, [deployment_figures(session, d) for d in chosen])


# --- output -------------------------------------------------------------------------------------

COLUMNS = (
    ("id", "Deployment"),
    ("date", "Date"),
    ("location", "Location"),
    ("duration_h", "Duration (h)"),
    ("watchlist_size", "Watchlist size"),
    ("threshold", "Threshold"),
    ("faces_processed", "Faces processed"),
    ("alerts", "Alerts"),
    ("true_alerts", "True alerts"),
    ("false_alerts", "False alerts"),
    ("engagements", "Engagements"),
    ("arrests", "Arrests"),
    ("false_alert_rate", "False alert rate"),
    ("precision", "Alert precision"),
)


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if value < 1 else f"{value:g}"
    return str(value)


def _total_cells(report: Report, not_summed: str) -> list[str]:
    """The total row's cells after its label columns; ``not_summed`` where a column has no
    total (watchlist size, threshold)."""
    totals = report.totals()
    return [_cell(totals[k]) if k in totals else not_summed for k, _ in COLUMNS[3:]]


def charts(report: Report) -> list[Figure]:
    """Alerts over time (held alerts per day) and true/false alerts per deployment."""
    days: Counter[str] = Counter()
    for d in report.deployments:
        days.update(d.alert_days)
    over_time = Figure(figsize=(8, 3))
    ax = over_time.subplots()
    ax.bar(list(days), list(days.values()), color="#4575b4")
    ax.set_title("Alerts over time (alerts still held)")
    ax.set_ylabel("alerts")
    ax.tick_params(axis="x", rotation=45)
    over_time.tight_layout()
    per = Figure(figsize=(8, 3))
    ax = per.subplots()
    labels = [str(d.id) for d in report.deployments]
    trues = [d.true_alerts for d in report.deployments]
    ax.bar(labels, trues, label="true", color="#1a9850")
    ax.bar(
        labels,
        [d.false_alerts for d in report.deployments],
        bottom=trues,
        label="false",
        color="#d73027",
    )
    ax.set_title("True and false alerts per deployment")
    ax.set_xlabel("deployment")
    ax.legend()
    per.tight_layout()
    return [over_time, per]


def chart_data_uris(report: Report) -> list[str]:
    """The charts as PNG data URIs: inline in the HTML report and in the console."""
    uris = []
    for figure in charts(report):
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=100)
        uris.append("data:image/png;base64," + base64.b64encode(png.getvalue()).decode())
    return uris


def to_json(report: Report) -> str:
    data = {
        "title": report.title,
        "deployments": [asdict(d) for d in report.deployments],
        "totals": report.totals(),
    }
    return json.dumps(data, indent=2)


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([label for _, label in COLUMNS])
    for d in report.deployments:
        writer.writerow([_cell(getattr(d, key)) for key, _ in COLUMNS])
    writer.writerow(["total", "", "", *_total_cells(report, not_summed="")])
    return out.getvalue()


def to_html(report: Report) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_cell(getattr(d, k)))}</td>" for k, _ in COLUMNS)
        + "</tr>"
        for d in report.deployments
    )
    total_row = (
        "<tr><th colspan=3>Total</th>"
        + "".join(f"<td>{html.escape(c)}</td>" for c in _total_cells(report, not_summed="–"))
        + "</tr>"
    )
    images = [f'<img alt="chart" src="{uri}">' for uri in chart_data_uris(report)]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(report.title)}"
        "</title><style>table{border-collapse:collapse}td,th{border:1px solid #999;"
        "padding:2px 6px}</style></head><body>"
        f"<h1>Live facial recognition: {html.escape(report.title)}</h1>"
        "<p>False alert rate: false alerts per face processed. Alert precision: true alerts "
        "out of alerts adjudicated match or no-match. No personal data is in this report.</p>"
        f"<table><tr>{head}</tr>{body}{total_row}</table>{''.join(images)}</body></html>"
    )


def to_pdf(report: Report, path: Path | IO[bytes]) -> None:
    """To a file, or a binary file object (the service answers from memory)."""
    with PdfPages(path) as pdf:
        page = Figure(figsize=(11.7, 8.3))  # A4 landscape
        page.text(0.02, 0.95, f"Live facial recognition: {report.title}", fontsize=14)
        rows = [[_cell(getattr(d, k)) for k, _ in COLUMNS] for d in report.deployments]
        rows.append(["Total", "", "", *_total_cells(report, not_summed="–")])
        ax = page.add_axes((0.02, 0.1, 0.96, 0.8))
        ax.axis("off")
        table = ax.table(cellText=rows, colLabels=[label for _, label in COLUMNS], loc="upper left")
        table.auto_set_font_size(False)
        table.set_fontsize(6)
        pdf.savefig(page)
        for figure in charts(report):
            pdf.savefig(figure)


def write_report(report: Report, path: Path, fmt: str) -> None:
    if fmt not in FORMATS:
        raise OpenLFRError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "pdf":
        to_pdf(report, path)
        return
    text = {"html": to_html, "csv": to_csv, "json": to_json}[fmt](report)
    path.write_text(text, encoding="utf-8")
