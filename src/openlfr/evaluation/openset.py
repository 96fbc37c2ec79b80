"""Open-set 1:N evaluation (``openlfr evaluate``): watchlisted people found, strangers not alerted.

Protocol. In a folder of identity sub-folders, each identity with two or more images is
enrolled from its first image (sorted by name) in which a face is found; its other images are
*mated* searches. Identities with a single image, and every image of ``strangers``, are
*non-mated* searches. An image with no face is a miss (mated) or no alert (non-mated).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from openlfr.matching.index import WatchlistIndex
from openlfr.matching.scores import candidate_scores
from openlfr.vision.faces import Face


@dataclass
class SearchOutcomes:
    """Per search: the best open-set score (-inf: no face) and, for mated searches, whether
    the rank-1 candidate is the right person."""

    mated_scores: np.ndarray
    mated_rank1: np.ndarray  # bool
    nonmated_scores: np.ndarray
    mated_groups: list[str] = field(default_factory=list)
    nonmated_groups: list[str] = field(default_factory=list)


@dataclass
class OpenSetReport:
    watchlist_subjects: int
    mated_searches: int
    nonmated_searches: int
    faces_missing: int
    rank1_accuracy: float
    threshold: float
    tpir: float
    fpir: float
    alert_precision: float | None
    tpir_at_fpir: dict[str, float | None]
    threshold_at_fpir: dict[str, float | None]

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Protocol:
    """The searches of the protocol above, with who each search is of (identity folder name, or
    the image path of a stranger) and each person's images (for their demographic labels)."""

    enrolled: dict[str, Face]
    mated: list[tuple[str, Face | None]]
    nonmated: list[Face | None]
    nonmated_people: list[str]
    images: dict[str, list[Path]]


def protocol(
    people: dict[str, list[Path]], strangers: list[Path], faces: dict[Path, Face | None]
) -> Protocol:
    """Enrol, and list the mated and non-mated searches, as the module's docstring says."""
    p = Protocol({}, [], [], [], {})
    for name, images in people.items():
        p.images[name] = images
        if len(images) == 1:
            p.nonmated.append(faces[images[0]])
            p.nonmated_people.append(name)
            continue
        found = [i for i in images if faces[i] is not None]
        if not found:
            p.mated.extend((name, None) for _ in images[1:])
            continue
        p.enrolled[name] = faces[found[0]]
        p.mated.extend((name, faces[i]) for i in images if i != found[0])
    for path in strangers:
        p.nonmated.append(faces[path])
        p.nonmated_people.append(str(path))
        p.images[str(path)] = [path]
    return p


def search_outcomes(
    enrolled: dict[str, Face],
    mated: list[tuple[str, Face | None]],
    nonmated: list[Face | None],
    *,
    model: str | None = None,
    score: str | None = None,
) -> SearchOutcomes:
    """Search every probe against a watchlist of ``enrolled`` (one template per identity).

    Scores follow ``score`` (``cosine``, ``z`` or ``gap``), by default the calibrated rule of
    the faces' model (``model``, else the enrolled faces' own tag)."""
    names = sorted(enrolled)
    ids = np.arange(len(names))
    model = model or next(iter(enrolled.values())).model
    index = WatchlistIndex(
        np.stack([enrolled[n].embedding for n in names]),
        ids,
        dict(zip(ids.tolist(), names, strict=True)),
        model=model,
        approximate=False,  # every subject's score is read (subject_scores): no graph
    )
    rule = score or index.calibration.score
    position = {n: i for i, n in enumerate(names)}

    def best(faces: list[Face | None]) -> tuple[np.ndarray, np.ndarray]:
        scores = np.full(len(faces), -np.inf)
        top = np.full(len(faces), -1)
        have = [i for i, f in enumerate(faces) if f is not None]
        if have:
            similarity = index.subject_scores(np.stack([faces[i].embedding for i in have]))
            z = candidate_scores(similarity, rule, index.calibration.priors)
            scores[have] = z.max(axis=1)
            top[have] = z.argmax(axis=1)
        return scores, top

    mated_scores, mated_top = best([f for _, f in mated])
    rank1 = np.array(
        [t == position[n] for (n, _), t in zip(mated, mated_top, strict=True)], dtype=bool
    )
    nonmated_scores, _ = best(nonmated)
    return SearchOutcomes(mated_scores, rank1, nonmated_scores)


def threshold_for_fpir(nonmated_scores: np.ndarray, fpir: float) -> float | None:
    """The lowest threshold whose false-positive identification rate is at most ``fpir``;
    None when there are too few non-mated searches to tell (fewer than ``1 / fpir``)."""
    n = len(nonmated_scores)
    if n == 0 or n * fpir < 1:
        return None
    allowed = int(np.floor(n * fpir))  # non-mated searches that may still alert
    ordered = np.sort(nonmated_scores)[::-1]
    # Alert is score >= threshold: put it just above the (allowed+1)-th highest stranger.
    return float(np.nextafter(ordered[allowed], np.inf))


def rates(outcomes: SearchOutcomes, threshold: float) -> tuple[float, float, float | None]:
    """TPIR, FPIR and alert precision (true alerts / all alerts) at ``threshold``."""
    true_alerts = (outcomes.mated_scores >= threshold) & outcomes.mated_rank1
    false_mated = (outcomes.mated_scores >= threshold) & ~outcomes.mated_rank1
    false_strangers = outcomes.nonmated_scores >= threshold
    tpir = float(true_alerts.mean()) if len(true_alerts) else 0.0
    fpir = float(false_strangers.mean()) if len(false_strangers) else 0.0
    alerts = int(true_alerts.sum() + false_mated.sum() + false_strangers.sum())
    precision = float(true_alerts.sum() / alerts) if alerts else None
    return tpir, fpir, precision


def report(outcomes: SearchOutcomes, subjects: int, threshold: float) -> OpenSetReport:
    tpir, fpir, precision = rates(outcomes, threshold)
    tpir_at: dict[str, float | None] = {}
    thr_at: dict[str, float | None] = {}
    for target in (0.01, 0.001):
        t = threshold_for_fpir(outcomes.nonmated_scores, target)
        thr_at[f"{target:g}"] = None if t is None else round(t, 3)
        tpir_at[f"{target:g}"] = None if t is None else round(rates(outcomes, t)[0], 4)
    missing = int(np.isinf(outcomes.mated_scores).sum() + np.isinf(outcomes.nonmated_scores).sum())
    return OpenSetReport(
        watchlist_subjects=subjects,
        mated_searches=len(outcomes.mated_scores),
        nonmated_searches=len(outcomes.nonmated_scores),
        faces_missing=missing,
        rank1_accuracy=round(float(outcomes.mated_rank1.mean()), 4)
        if len(outcomes.mated_rank1)
        else 0.0,
        threshold=threshold,
        tpir=round(tpir, 4),
        fpir=round(fpir, 5),
        alert_precision=None if precision is None else round(precision, 4),
        tpir_at_fpir=tpir_at,
        threshold_at_fpir=thr_at,
    )
