"""The equality-evidence report (``openlfr evaluate ... --report DIR``): HTML and PDF for a
non-specialist reader, with the plots as PNGs beside them and every figure in results.json.

    >>> write_report(Path("out/report"), searches, result, {"watchlist folder": "celeba-dev"})
    [PosixPath('out/report/index.html'), PosixPath('out/report/report.pdf'), ...]

The PDF is drawn by matplotlib alone (text pages, the plots, the tables), so no browser engine
or system library is needed to produce it.
"""

from __future__ import annotations

import html
import json
import textwrap
from datetime import date
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from openlfr.evaluation.fairness import Searches  # noqa: E402
from openlfr.evaluation.plots import det_figure, score_figure, sweep_figure  # noqa: E402
from openlfr.evaluation.tables import KINDS, sweep_table  # noqa: E402

METHOD = [
    "What is measured. A live facial recognition system compares every passer-by with a "
    "watchlist. Two things can go wrong: a person who is not on the list raises an alert (a "
    "false alert; the share of such people who do is the FPIR, false-positive identification "
    "rate), or a person on the list passes without an alert (a miss; the share is the FNIR, "
    "false-negative identification rate). Both depend on the threshold: the score a "
    "comparison must reach before an officer is asked to look. This report shows both rates "
    "for each demographic group the data is labelled with, at the thresholds chosen.",
    "How. The first photo of each watchlisted person is enrolled and their other photos are "
    "searched (mated searches); photos of people not on the list are searched once each "
    "(non-mated searches, 'strangers'). Each search keeps its best score, the open-set score "
    "OpenLFR alerts on. A group's FPIR is the share of its strangers whose best score reaches "
    "the threshold; its FNIR is the share of its mated searches that do not alert on the right "
    "person.",
    "Uncertainty. Each rate comes with a 95% interval from a bootstrap that resamples people "
    "(not photos) within the group, 2,000 times. Where a group has no error at all, the "
    "interval is the exact binomial one (0 up to about 3.7 divided by the number of people). "
    "The worst/best ratio divides the highest group rate by the lowest, as in NIST's report on "
    "demographic effects (FRVT Part 3); it is not given when the lowest rate is 0.",
    "Is the difference real? At each threshold a permutation test (the chi-square statistic of "
    "groups x false alert or not, against 2,000 random reshufflings of people's group labels; "
    "the Monte Carlo form of Fisher's exact test) asks whether the groups' false-alert rates "
    "differ more than chance would make them. Scanning thresholds upwards, the report gives "
    "the lowest threshold from which no difference is significant at the 5% level, the figure "
    "the UK National Physical Laboratory reported for the Metropolitan Police (NPL 2023).",
]

LIMITATIONS = [
    "Not significant is not the same as equal. At high thresholds very few strangers alert, so "
    "the test has little power: read the counts beside every rate.",
    "The groups are those of the labels supplied (for example sex M/F and four race categories "
    "in UTKFace; age bands and gender in FairFace). Labels were assigned by the datasets' "
    "authors, not self-reported, and say nothing about groups the data does not contain.",
    "Per-group miss rates (FNIR) need labelled watchlisted people; where the watchlist's photos "
    "carry no demographic labels (CelebA here), only the overall FNIR is known and the report "
    "says so.",
    "Web-collected photos (CelebA, UTKFace, FairFace) differ from a street camera's images: "
    "lighting, pose, resolution and the people who pass by. The rates here describe this model "
    "on these photos; an operational trial is needed for a deployment.",
    "Strangers are searched against this watchlist only; its make-up (here mainly white adult "
    "celebrities) can itself shape whom a stranger resembles. Several thresholds are tested "
    "and no correction for multiple testing is made.",
]


def _figures(s: Searches, result: dict) -> dict[str, plt.Figure]:
    demo = result["demographics"]
    marks = [demo["default_threshold"]]
    figures = {"det-overall": det_figure(s, None, marks), "scores": score_figure(s, marks)}
    for attribute, entry in demo["attributes"].items():
        if entry["strangers"]["rates"] and len(entry["strangers"]["rates"]) >= 2:
            figures[f"det-{attribute}"] = det_figure(s, attribute, marks)
            figures[f"scores-{attribute}"] = score_figure(s, marks, attribute)
            scan = entry["strangers"]["significance"]["scan"]
            figures[f"sweep-{attribute}"] = sweep_figure(s, attribute, marks, scan)
    return figures


def findings(result: dict) -> list[str]:
    """Plain sentences for the headline results, built from the figures."""
    demo = result["demographics"]
    out = []
    for row in demo["overall"]["strangers"]["all"]:
        mated = demo["overall"]["mated"].get("all", [{}])
        miss = next((m for m in mated if m.get("threshold") == row["threshold"]), None)
        out.append(
            f"At threshold {row['threshold']:g}, {row['errors']} of {row['searches']} strangers "
            f"raised a false alert (FPIR {row['rate']:.4f}, 95% interval {row['ci'][0]:.4f} to "
            f"{row['ci'][1]:.4f})"
            + (
                f"; {miss['errors']} of {miss['searches']} searches of watchlisted people were "
                f"missed (FNIR {miss['rate']:.3f})."
                if miss
                else "."
            )
        )
    for attribute, entry in demo["attributes"].items():
        part = entry["strangers"]
        if part.get("note"):
            out.append(f"{attribute}: {part['note']}.")
            continue
        for d, sig in zip(part["differential"], part["significance"]["at_thresholds"], strict=True):
            if d["worst_rate"] == 0:
                out.append(f"By {attribute}, at threshold {d['threshold']:g}: no false alerts.")
                continue
            ratio = (
                f"{d['ratio']:.2f} times"
                if d["ratio"] is not None
                else "not defined, as the lowest group had no false alert"
                if (d["ratio_to_best_upper"] or 0) < 1
                else "not defined, as the lowest group had no false alert (against that "
                f"group's 95% upper bound it is at least {d['ratio_to_best_upper']:.2f})"
            )
            verdict = "is" if sig["p_value"] < demo["alpha"] else "is not"
            out.append(
                f"By {attribute}, at threshold {d['threshold']:g}: the highest false-alert rate "
                f"was {d['worst']} ({d['worst_rate']:.4f}), the lowest {d['best']} "
                f"({d['best_rate']:.4f}); the ratio is {ratio}. The difference {verdict} "
                f"statistically significant (p = {sig['p_value']:.3f})."
            )
        lowest = part["significance"]["lowest_non_significant_threshold"]
        first = part["significance"]["scan"][0]["threshold"]
        last = part["significance"]["scan"][-1]["threshold"]
        if lowest is None:
            text = f"differences remain significant up to the highest threshold scanned ({last:g})"
        elif lowest == first:
            text = f"no threshold scanned ({first:g} to {last:g}) shows a significant difference"
        else:
            text = f"from threshold {lowest:g} upwards no difference is statistically significant"
        out.append(f"By {attribute}: {text}.")
        if entry["mated"].get("note"):
            out.append(f"{attribute}: {entry['mated']['note']}; only the overall FNIR is known.")
    return out


def _tables(result: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    demo = result["demographics"]
    tables = [(f"Overall: {t}", *sweep_table(demo, None, k)) for k, t in KINDS.items()]
    for attribute, entry in demo["attributes"].items():
        for kind, title in KINDS.items():
            if not entry[kind].get("note"):
                tables.append((f"By {attribute}: {title}", *sweep_table(demo, attribute, kind)))
    return tables


def write_report(out: Path, s: Searches, result: dict, inputs: dict) -> list[Path]:
    """Write index.html, report.pdf, results.json and the PNGs into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    figures = _figures(s, result)
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=110)
    data = [
        f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in inputs.items()
    ]
    model = result.get("model", "unknown")
    data.append(f"face model: {model}; report date {date.today().isoformat()}")
    text = findings(result)
    tables = _tables(result)
    (out / "index.html").write_text(_html(figures, text, tables, data))
    _pdf(out / "report.pdf", figures, text, tables, data)
    for fig in figures.values():
        plt.close(fig)
    return [out / "index.html", out / "report.pdf", out / "results.json"]


def _html(figures: dict, text: list[str], tables: list, data: list[str]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>OpenLFR equality evidence</title><style>body{font-family:sans-serif;"
        "max-width:60em;margin:2em auto;line-height:1.45}table{border-collapse:collapse;"
        "font-size:85%}td,th{border:1px solid #bbb;padding:3px 6px}img{max-width:100%}</style>",
        "</head><body><h1>Equality evidence: error rates by demographic group</h1>",
        "<h2>Findings</h2><ul>",
        *[f"<li>{e(t)}</li>" for t in text],
        "</ul><h2>Method</h2>",
        *[f"<p>{e(p)}</p>" for p in METHOD],
        "<h2>Data used</h2><ul>",
        *[f"<li>{e(d)}</li>" for d in data],
        "</ul><h2>Results</h2><p>Each cell: rate (errors/searches) [95% interval].</p>",
    ]
    for title, header, rows in tables:
        parts.append(f"<h3>{e(title)}</h3><table><tr>")
        parts += [f"<th>{e(h)}</th>" for h in header] + ["</tr>"]
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    parts += [f"<p><img src='{name}.png' alt='{e(name)}'></p>" for name in figures]
    parts.append("<h2>Limitations</h2><ul>")
    parts += [f"<li>{e(t)}</li>" for t in LIMITATIONS]
    parts.append("</ul></body></html>\n")
    return "\n".join(parts)


def _text_pages(pdf: PdfPages, blocks: list[tuple[str, list[str]]]) -> None:
    """Headings and wrapped paragraphs on A4 pages, as many as they need."""
    lines: list[tuple[str, bool]] = []
    for heading, paragraphs in blocks:
        lines.append((heading, True))
        for p in paragraphs:
            lines += [(w, False) for w in textwrap.wrap(p, 95)] + [("", False)]
    per_page = 58
    for start in range(0, len(lines), per_page):
        fig = plt.figure(figsize=(8.27, 11.69))
        for i, (line, bold) in enumerate(lines[start : start + per_page]):
            fig.text(
                0.07,
                0.95 - i * 0.0155,
                line,
                fontsize=11 if bold else 8.5,
                weight="bold" if bold else "normal",
                family="sans-serif",
            )
        pdf.savefig(fig)
        plt.close(fig)


def _pdf(path: Path, figures: dict, text: list[str], tables: list, data: list[str]) -> None:
    with PdfPages(path) as pdf:
        _text_pages(
            pdf,
            [
                ("Equality evidence: error rates by demographic group", []),
                ("Findings", text),
                ("Method", METHOD),
                ("Data used", data),
                ("Limitations", LIMITATIONS),
            ],
        )
        for title, header, rows in tables:
            fig = plt.figure(figsize=(11.69, 1.2 + 0.32 * len(rows)))
            ax = fig.add_axes((0.01, 0.01, 0.98, 0.8))
            ax.axis("off")
            ax.set_title(f"{title}: rate (errors/searches) [95% interval]", fontsize=10)
            table = ax.table(cellText=rows, colLabels=header, loc="upper center")
            table.auto_set_font_size(False)
            table.set_fontsize(7)
            table.auto_set_column_width(list(range(len(header))))
            pdf.savefig(fig)
            plt.close(fig)
        for fig in figures.values():
            pdf.savefig(fig)
