"""Plots of open-set results (matplotlib, Agg: no display needed), each returned as a Figure.

    >>> fig = det_figure(searches, "race", marks=[3.9])
    >>> fig.savefig("det-race.png", dpi=120)

- ``det_figure``: DET curves, FNIR against FPIR on log axes, overall and per group.
- ``score_figure``: distributions of the best open-set score of mated and non-mated searches.
- ``sweep_figure``: each group's FPIR against the threshold (95% bands) over the p-value of
  the test of equal rates: where the groups differ, and from where no difference shows.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot: evaluation runs on servers without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from openlfr.evaluation.demographics import det_points, scan_for  # noqa: E402
from openlfr.evaluation.fairness import Searches, group_rates  # noqa: E402

FLOOR = 1e-4  # log axes cannot show 0: rates of 0 are drawn at this floor and said so


def det_figure(s: Searches, attribute: str | None, marks: list[float]) -> Figure:
    """FNIR against FPIR. With ``attribute``, one curve per group of strangers (and of
    watchlisted people where they are labelled; otherwise all of them share the FNIR)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    curves = [("all strangers", None, None)]
    if attribute is not None:
        names = sorted({g for g in s.groups[attribute] if g is not None})
        curves = [(f"{attribute} = {g}", attribute, g) for g in names]
    for label, attr, group in curves:
        d = det_points(s, attr, group)
        (line,) = ax.plot(
            np.maximum(d["fpir"], FLOOR), np.maximum(d["fnir"], FLOOR), label=label, lw=1.4
        )
        for t in marks:  # the operating points, where a deployment would sit
            j = int(np.searchsorted(d["threshold"], t))
            if j < len(d["threshold"]):
                ax.plot(
                    max(d["fpir"][j], FLOOR), max(d["fnir"][j], FLOOR), "o", color=line.get_color()
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(FLOOR * 0.8, 1.05)
    ax.set_xlabel(f"FPIR: share of strangers raising an alert (0 drawn at {FLOOR:g})")
    ax.set_ylabel("FNIR: share of watchlisted searches missed")
    marked = ", ".join(f"{t:g}" for t in marks)
    ax.set_title(
        ("DET overall" if attribute is None else f"DET by {attribute} of the strangers")
        + f" (dots: threshold {marked})",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def score_figure(s: Searches, marks: list[float], attribute: str | None = None) -> Figure:
    """Histograms of the best score of each search; with ``attribute``, of the strangers of
    each group (densities, so groups of different sizes compare)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    finite = np.isfinite(s.scores)
    bins = np.linspace(s.scores[finite].min(), s.scores[finite].max(), 60)
    if attribute is None:
        series = [
            ("mated, right person first", s.mated & s.correct),
            ("mated, wrong person first", s.mated & ~s.correct),
            ("non-mated (strangers)", ~s.mated),
        ]
    else:
        labels = np.array(s.groups[attribute], dtype=object)[s.person]
        names = sorted({g for g in labels[~s.mated] if g is not None})
        series = [(f"strangers, {attribute} = {g}", ~s.mated & (labels == g)) for g in names]
    for label, mask in series:
        values = s.scores[mask & finite]
        if len(values):
            ax.hist(values, bins=bins, density=True, histtype="step", lw=1.4, label=label)
    for t in marks:
        ax.axvline(t, color="k", ls="--", lw=1)
        ax.annotate(f"threshold {t:g}", (t, ax.get_ylim()[1] * 0.95), fontsize=8, ha="left")
    ax.set_xlabel("best open-set score of the search")
    ax.set_ylabel("density")
    ax.set_title(
        "Scores of mated and non-mated searches"
        if attribute is None
        else f"Scores of strangers by {attribute}",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    return fig


def sweep_figure(
    s: Searches,
    attribute: str,
    marks: list[float],
    scan: list[dict],
    alpha: float = 0.05,
    seed: int = 0,
) -> Figure:
    """Top: FPIR per group against the threshold, 95% bands. Bottom: the test's p-value at
    each threshold of ``scan``, the significance scan ``demographic_results`` already ran (a
    permutation test per threshold: seconds to recompute)."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(6.4, 6.0), sharex=True, layout="constrained", height_ratios=[2, 1]
    )
    grid = scan_for(s)
    rates = group_rates(s, attribute, grid, mated=False, bootstrap=500, seed=seed)
    for group, rows in rates.items():
        rate = np.array([r.rate for r in rows])
        low = np.array([r.ci[0] for r in rows])
        high = np.array([r.ci[1] for r in rows])
        (line,) = top.plot(grid, np.maximum(rate, FLOOR), label=f"{group} ({rows[0].people})")
        top.fill_between(
            grid,
            np.maximum(low, FLOOR),
            np.maximum(high, FLOOR),
            alpha=0.12,
            color=line.get_color(),
        )
    top.set_yscale("log")
    top.set_ylim(FLOOR * 0.8, 1.05)
    top.set_ylabel("FPIR of strangers")
    top.set_title(f"False alerts by {attribute} against the threshold (95% bands)", fontsize=10)
    top.legend(fontsize=8, title="group (people)", title_fontsize=8)
    bottom.plot([r["threshold"] for r in scan], [r["p_value"] for r in scan], color="k", lw=1.2)
    bottom.axhline(alpha, color="r", ls=":", lw=1)
    bottom.set_yscale("log")
    bottom.set_ylim(1e-4, 1.5)
    bottom.set_ylabel("p-value, equal rates")
    bottom.set_xlabel("threshold (open-set score)")
    for ax in (top, bottom):
        for t in marks:
            ax.axvline(t, color="k", ls="--", lw=0.8)
        ax.grid(True, which="both", alpha=0.3)
    return fig
