"""Per-group open-set results (``openlfr evaluate --labels``, ``openlfr calibrate --labels``).

Ties the evaluation protocol to the statistics of ``fairness``: who each search is of, which
group each person is in, and one JSON-ready result with, per attribute (sex, race, age band...),
the FPIR of each group's strangers and the FNIR of each group's watchlisted people at each
threshold (95% intervals, people resampled), the worst/best ratio, and the significance scan.

    >>> s = searches_from_protocol(p, outcomes, labels, ["sex", "race"])
    >>> result = demographic_results(s, [3.9], default_threshold=3.9)
    >>> result["attributes"]["race"]["strangers"]["rates"]["Black"][0]["rate"]
    0.0083
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from openlfr.evaluation.fairness import (
    Searches,
    differential,
    group_rates,
    lowest_non_significant,
    significance_scan,
)
from openlfr.evaluation.labels import Labels
from openlfr.evaluation.openset import Protocol, SearchOutcomes

ALPHA = 0.05
SCAN_POINTS = 51


def scan_for(s: Searches) -> np.ndarray:
    """Thresholds to scan, in the scores' own units (cosine for one model, another scale for
    the next): from the strangers' median best score, where half alert, to their highest,
    where none does."""
    strangers = s.scores[~s.mated & np.isfinite(s.scores)]
    if len(strangers) == 0:
        return np.zeros(0)
    low, high = np.quantile(strangers, [0.5, 1.0])
    return np.round(np.linspace(low, high + 1e-4, SCAN_POINTS), 4)


def person_groups(
    images: dict[str, list[Path]], labels: Labels, attributes: list[str]
) -> dict[str, dict[str, str | None]]:
    """``{attribute: {person: group}}``. A person's group is the most common label among their
    images (one image for a stranger); None where no image is labelled."""
    resolved = {person: [p.resolve() for p in paths] for person, paths in images.items()}
    out: dict[str, dict[str, str | None]] = {}
    for attribute in attributes:
        out[attribute] = {}
        for person, paths in resolved.items():
            values = [
                labels.by_path[p][attribute]
                for p in paths
                if p in labels.by_path and labels.by_path[p].get(attribute)
            ]
            out[attribute][person] = Counter(values).most_common(1)[0][0] if values else None
    return out


def make_searches(
    scores: np.ndarray,
    correct: np.ndarray,
    mated: np.ndarray,
    who: list[str],
    groups: dict[str, dict[str, str | None]],
) -> Searches:
    people = sorted(set(who))
    index = {name: i for i, name in enumerate(people)}
    return Searches(
        scores=np.asarray(scores, dtype=float),
        correct=np.asarray(correct, dtype=bool),
        mated=np.asarray(mated, dtype=bool),
        person=np.array([index[w] for w in who], dtype=np.int64),
        people=people,
        groups={a: [g.get(p) for p in people] for a, g in groups.items()},
    )


def searches_from_protocol(
    p: Protocol, outcomes: SearchOutcomes, labels: Labels, attributes: list[str]
) -> Searches:
    """The evaluation's searches with each person's groups."""
    who = [name for name, _ in p.mated] + p.nonmated_people
    return make_searches(
        np.concatenate([outcomes.mated_scores, outcomes.nonmated_scores]),
        np.concatenate([outcomes.mated_rank1, np.zeros(len(p.nonmated), dtype=bool)]),
        np.r_[np.ones(len(p.mated), dtype=bool), np.zeros(len(p.nonmated), dtype=bool)],
        who,
        person_groups(p.images, labels, attributes),
    )


def demographic_results(
    s: Searches,
    thresholds: list[float],
    *,
    default_threshold: float,
    scan: np.ndarray | None = None,
    alpha: float = ALPHA,
    bootstrap: int = 2000,
    seed: int = 0,
) -> dict:
    """Overall and per-group rates at ``thresholds``, differentials and the significance scan."""
    thresholds = sorted({round(float(t), 4) for t in thresholds})
    scan = scan_for(s) if scan is None else scan
    result: dict = {
        "thresholds": thresholds,
        "default_threshold": default_threshold,
        "confidence_level": 0.95,
        "bootstrap_resamples": bootstrap,
        "alpha": alpha,
        "overall": {
            "strangers": _rows(group_rates(s, None, thresholds, mated=False, bootstrap=bootstrap)),
            "mated": _rows(group_rates(s, None, thresholds, mated=True, bootstrap=bootstrap)),
        },
        "attributes": {},
    }
    for attribute in s.groups:
        entry: dict = {}
        for kind, mated in (("strangers", False), ("mated", True)):
            people = {int(i) for i in s.person[s.mated == mated]}
            labelled = sum(s.groups[attribute][i] is not None for i in people)
            rates = group_rates(
                s, attribute, thresholds, mated=mated, bootstrap=bootstrap, seed=seed
            )
            part: dict = {"people": len(people), "people_labelled": labelled}
            if len(rates) < 2:
                part["note"] = (
                    f"no {attribute} labels for the "
                    + ("watchlisted (mated) people" if mated else "strangers")
                    + (": per-group rates need at least two labelled groups" if rates else "")
                )
            part["rates"] = _rows(rates)
            part["differential"] = [d.as_dict() for d in differential(rates)] if rates else []
            if not mated and len(rates) >= 2:
                tested = significance_scan(s, attribute, scan, seed=seed)
                part["significance"] = {
                    "test": "permutation chi-square over people, groups x (false alert, none)",
                    "alpha": alpha,
                    "lowest_non_significant_threshold": lowest_non_significant(tested, alpha),
                    "at_thresholds": [
                        r.as_dict() for r in significance_scan(s, attribute, thresholds, seed=seed)
                    ],
                    "scan": [r.as_dict() for r in tested],
                }
            entry[kind] = part
        result["attributes"][attribute] = entry
    return result


def _rows(rates: dict) -> dict[str, list[dict]]:
    return {group: [r.as_dict() for r in rows] for group, rows in rates.items()}


def det_points(s: Searches, group_attribute: str | None = None, group: str | None = None) -> dict:
    """FNIR and FPIR over every distinct score, for DET curves: mated searches overall (or of
    the group, where watchlisted people are labelled) against strangers of the group."""
    grid = np.unique(s.scores[np.isfinite(s.scores)])
    member = np.ones(len(s.scores), dtype=bool)
    if group_attribute is not None:
        labels = np.array(s.groups[group_attribute], dtype=object)
        member = labels[s.person] == group
    strangers = s.scores[~s.mated & member]
    mated_mask = s.mated & member
    if not mated_mask.any():  # no labelled watchlisted people: the overall FNIR
        mated_mask = s.mated
    hits = np.where(s.correct[mated_mask], s.scores[mated_mask], -np.inf)
    fpir = (strangers[:, None] >= grid[None, :]).mean(axis=0) if len(strangers) else grid * 0
    fnir = 1 - (hits[:, None] >= grid[None, :]).mean(axis=0) if len(hits) else grid * 0 + 1
    return {"threshold": grid, "fpir": fpir, "fnir": fnir, "strangers": len(strangers)}


def calibration_searches(
    record: list[tuple[list[str], list[str], SearchOutcomes]],
    images: dict[str, list[Path]],
    labels: Labels,
    attributes: list[str],
) -> Searches:
    """The searches of every calibration round, pooled; a person drawn in several rounds is
    one person (the bootstrap and the test keep their searches together)."""
    who = [n for mated, nonmated, _ in record for n in mated + nonmated]
    return make_searches(
        np.concatenate([np.r_[o.mated_scores, o.nonmated_scores] for _, _, o in record]),
        np.concatenate(
            [np.r_[o.mated_rank1, np.zeros(len(o.nonmated_scores), bool)] for _, _, o in record]
        ),
        np.concatenate(
            [np.r_[np.ones(len(m), bool), np.zeros(len(n), bool)] for m, n, _ in record]
        ),
        who,
        person_groups(images, labels, attributes),
    )
