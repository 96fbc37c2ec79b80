"""Per-group results as tables: rich for the terminal, plain rows for HTML and Markdown.

>>> print_demographics(Console(), result["demographics"])
>>> header, rows = sweep_table(result["demographics"], "race", "strangers")
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

KINDS = {"strangers": "FPIR (false alerts of strangers)", "mated": "FNIR (misses of watchlisted)"}


def cell(row: dict) -> str:
    """``0.0083 (1/120) [0.000-0.025]``: the rate, the counts and the 95% interval."""
    low, high = row["ci"]
    return f"{row['rate']:.4f} ({row['errors']}/{row['searches']}) [{low:.3f}-{high:.3f}]"


def sweep_table(demo: dict, attribute: str | None, kind: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per group (``attribute=None``: overall), one column per
    threshold, then the worst/best ratio row, as in the NPL study's tables."""
    header = ["group", "people"] + [f"at {t:g}" for t in demo["thresholds"]]
    if attribute is None:
        groups = demo["overall"][kind]
        diffs: list[dict] = []
    else:
        groups = demo["attributes"][attribute][kind]["rates"]
        diffs = demo["attributes"][attribute][kind]["differential"]
    rows = [[g, str(r[0]["people"])] + [cell(x) for x in r] for g, r in groups.items()]
    if diffs:
        rows.append(["worst / best", ""] + [ratio_text(d) for d in diffs])
    return header, rows


def ratio_text(d: dict) -> str:
    """``Black / White: 2.50``, or why there is no ratio."""
    if d["worst_rate"] == 0:
        return "no errors in any group"
    if d["ratio"] is None and (d["ratio_to_best_upper"] or 0) < 1:
        return f"{d['worst']} / {d['best']}: n/a, {d['best']} has 0; too few errors for a ratio"
    if d["ratio"] is None:
        return (
            f"{d['worst']} / {d['best']}: n/a, {d['best']} has 0 "
            f"(>= {d['ratio_to_best_upper']:.2f} against its upper bound)"
        )
    return f"{d['worst']} / {d['best']}: {d['ratio']:.2f}"


def print_demographics(console: Console, demo: dict) -> None:
    for kind, title in KINDS.items():
        header, rows = sweep_table(demo, None, kind)
        _print(console, f"overall: {title}", header, rows)
    for attribute, entry in demo["attributes"].items():
        for kind, title in KINDS.items():
            part = entry[kind]
            if part.get("note"):
                console.print(f"[dim]{attribute}: {part['note']}[/dim]")
                continue
            header, rows = sweep_table(demo, attribute, kind)
            _print(console, f"by {attribute}: {title}", header, rows)
            sig = part.get("significance")
            if sig:
                lowest = sig["lowest_non_significant_threshold"]
                at = ", ".join(
                    f"{r['threshold']:g}: p={r['p_value']:.3f}" for r in sig["at_thresholds"]
                )
                console.print(
                    f"{attribute}: difference between groups' FPIR {at}; lowest threshold from "
                    f"which no difference is significant (alpha {sig['alpha']}): "
                    f"[bold]{lowest if lowest is not None else 'none in the scan'}[/bold]"
                )


def _print(console: Console, title: str, header: list[str], rows: list[list[str]]) -> None:
    table = Table(*header, title=title)
    for row in rows:
        table.add_row(*row)
    console.print(table)
