"""Threshold calibration (``openlfr calibrate``): pick the open-set threshold that holds a target
false-positive identification rate (FPIR) on a watchlist of a given size.

Method. People come from a folder of identity sub-folders (``mated``: enrolled from the first
image with a face, searched with the others) and from stranger sets (one image, one person).
Each round draws a random watchlist of ``watchlist_size`` people from all of them; the mated
identities drawn are searched with their other photos (mated searches) and every person *not*
drawn is searched once (non-mated searches). Rounds are pooled, and the threshold is the lowest
one at which no more than ``target_fpir`` of the non-mated searches alert.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from openlfr.evaluation.openset import SearchOutcomes, rates, search_outcomes, threshold_for_fpir
from openlfr.vision.faces import Face


@dataclass
class Calibration:
    target_fpir: float
    watchlist_size: int
    rounds: int
    threshold: float
    tpir: float
    fpir: float
    mated_searches: int
    nonmated_searches: int
    people: int
    impostor_similarity_mean: float
    impostor_similarity_std: float
    tpir_at_thresholds: dict[str, float]
    fpir_at_thresholds: dict[str, float]
    baseline_raw_similarity: dict[str, float]  # the same target met with raw cosine scores

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Person:
    name: str
    enrolment: Face
    searches: list[Face]  # other photos of the same person (empty for strangers)


def people_from(
    mated: dict[str, list[Face | None]], strangers: list[tuple[str, Face | None]]
) -> list[Person]:
    people = []
    for name, faces in mated.items():
        found = [f for f in faces if f is not None]
        if found:
            people.append(Person(name, found[0], found[1:]))
    people.extend(Person(name, face, []) for name, face in strangers if face is not None)
    return people


def calibrate(
    people: list[Person],
    *,
    watchlist_size: int = 1000,
    target_fpir: float = 0.001,
    rounds: int = 10,
    seed: int = 0,
    record: list[tuple[list[str], list[str], SearchOutcomes]] | None = None,
) -> Calibration:
    """Calibrate as the module's docstring says. ``record``, when given, receives each round's
    mated and non-mated people (by name) with its outcomes: the demographic differential at
    the chosen threshold is computed from them (``demographics.calibration_searches``)."""
    if watchlist_size >= len(people):
        raise ValueError(
            f"a watchlist of {watchlist_size} needs more than {watchlist_size} people; "
            f"the data has {len(people)}"
        )
    rng = np.random.default_rng(seed)
    pooled: list[SearchOutcomes] = []
    pooled_raw: list[SearchOutcomes] = []
    impostor_means, impostor_stds = [], []
    for _ in range(rounds):
        order = rng.permutation(len(people))
        drawn = [people[i] for i in order[:watchlist_size]]
        rest = [people[i] for i in order[watchlist_size:]]
        enrolled = {p.name: p.enrolment for p in drawn}
        mated = [(p.name, f) for p in drawn for f in p.searches]
        nonmated = [
            p.searches[rng.integers(len(p.searches))] if p.searches else p.enrolment for p in rest
        ]
        pooled.append(search_outcomes(enrolled, mated, nonmated))
        if record is not None:
            record.append(([name for name, _ in mated], [p.name for p in rest], pooled[-1]))
        pooled_raw.append(search_outcomes(enrolled, mated, nonmated, raw_similarity=True))
        gallery = np.stack([f.embedding for f in enrolled.values()])
        sims = np.stack([f.embedding for f in nonmated]) @ gallery.T
        impostor_means.append(sims.mean(axis=1))
        impostor_stds.append(sims.std(axis=1))
    outcomes, raw = _pool(pooled), _pool(pooled_raw)
    threshold = threshold_for_fpir(outcomes.nonmated_scores, target_fpir)
    raw_threshold = threshold_for_fpir(raw.nonmated_scores, target_fpir)
    if threshold is None:
        raise ValueError(
            f"{len(outcomes.nonmated_scores)} non-mated searches cannot show an FPIR of "
            f"{target_fpir:g}: add strangers or rounds"
        )
    threshold = round(float(np.ceil(threshold * 100) / 100), 2)  # a round number, never lower
    tpir, fpir, _ = rates(outcomes, threshold)
    sweep = [round(threshold + d, 2) for d in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    return Calibration(
        target_fpir=target_fpir,
        watchlist_size=watchlist_size,
        rounds=rounds,
        threshold=threshold,
        tpir=round(tpir, 4),
        fpir=round(fpir, 5),
        mated_searches=len(outcomes.mated_scores),
        nonmated_searches=len(outcomes.nonmated_scores),
        people=len(people),
        impostor_similarity_mean=round(float(np.concatenate(impostor_means).mean()), 4),
        impostor_similarity_std=round(
            float(np.sqrt((np.concatenate(impostor_stds) ** 2).mean())), 4
        ),
        tpir_at_thresholds={f"{t:g}": round(rates(outcomes, t)[0], 4) for t in sweep},
        fpir_at_thresholds={f"{t:g}": round(rates(outcomes, t)[1], 5) for t in sweep},
        baseline_raw_similarity={
            "threshold": round(float(raw_threshold or 0.0), 4),
            "tpir": round(rates(raw, raw_threshold)[0], 4) if raw_threshold else 0.0,
            "fpir": round(rates(raw, raw_threshold)[1], 5) if raw_threshold else 0.0,
        },
    )


def _pool(parts: list[SearchOutcomes]) -> SearchOutcomes:
    return SearchOutcomes(
        np.concatenate([o.mated_scores for o in parts]),
        np.concatenate([o.mated_rank1 for o in parts]),
        np.concatenate([o.nonmated_scores for o in parts]),
    )
