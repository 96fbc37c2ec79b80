"""Score rules: the number an alert threshold applies to, from a probe's similarities.

``subject_scores`` is ``(probes, subjects)`` cosine similarity (best template per subject).

- ``cosine``: the similarity itself. Chosen for both models by measurement (docs/models.md):
  on protocols where the watchlist, the mated searches and the strangers come from one
  source it finds the most watchlisted people at 1 false alert in 1,000.
- ``z``: how many standard deviations the candidate stands above this probe's similarity to
  the *other* subjects (its impostor distribution), the statistics shrunk towards population
  priors on small lists. It looked best only on a protocol whose strangers shared a source
  with the padding of the list, which rewards recognising the source, not the person.
- ``gap``: the candidate's similarity minus the best similarity to any other subject.

A large watchlist's approximate index knows only each probe's top candidates, not every
subject's similarity: ``top_k_scores`` applies the same rules there (see its docstring).
"""

from __future__ import annotations

import numpy as np


def candidate_scores(
    subject_scores: np.ndarray, rule: str, priors: dict[str, float] | None = None
) -> np.ndarray:
    """``(m, subjects)`` scores under ``rule`` (``cosine``, ``z`` or ``gap``)."""
    similarity = np.atleast_2d(np.asarray(subject_scores, dtype=np.float64))
    if rule == "cosine":
        return similarity
    if rule == "z":
        return z_scores(similarity, **(priors or {}))
    if rule == "gap":
        return gap_scores(similarity)
    raise ValueError(f"unknown score rule {rule!r}: use cosine, z or gap")


def z_scores(
    similarity: np.ndarray, mean: float = 0.0, std: float = 1.0, weight: float = 50.0
) -> np.ndarray:
    """Z-scores against each row's impostors (all but its best subject), the row's mean and
    variance shrunk towards ``mean`` and ``std`` with weight ``n / (n + weight)``."""
    scores = np.atleast_2d(np.asarray(similarity, dtype=np.float64))
    m, n_subjects = scores.shape
    if n_subjects == 0:
        return scores.copy()
    best = np.argmax(scores, axis=1)
    impostors = scores.copy()
    impostors[np.arange(m), best] = np.nan
    n = n_subjects - 1
    if n > 0:
        row_mean = np.nanmean(impostors, axis=1)
        row_var = np.nanvar(impostors, axis=1)
    else:
        row_mean = np.full(m, mean)
        row_var = np.full(m, std**2)
    w = n / (n + weight)
    row_mean = w * row_mean + (1 - w) * mean
    row_std = np.sqrt(w * row_var + (1 - w) * std**2)
    return (scores - row_mean[:, None]) / row_std[:, None]


def gap_scores(similarity: np.ndarray) -> np.ndarray:
    """Each candidate's similarity minus the best of the others (positive for the top one
    only; a lone subject's gap is its similarity)."""
    scores = np.atleast_2d(np.asarray(similarity, dtype=np.float64))
    m, n = scores.shape
    if n < 2:
        return scores.copy()
    order = np.argsort(-scores, axis=1)
    first = scores[np.arange(m), order[:, 0]]
    second = scores[np.arange(m), order[:, 1]]
    best_other = np.where(scores >= first[:, None], second[:, None], first[:, None])
    return scores - best_other


def top_k_scores(
    similarity: np.ndarray,
    rule: str,
    priors: dict[str, float] | None = None,
    *,
    subjects: int,
    impostor_mean: np.ndarray | None = None,
    impostor_var: np.ndarray | None = None,
) -> np.ndarray:
    """Scores under ``rule`` when only each probe's best candidates are known.

    ``similarity`` is ``(m, k)``, each row sorted best first, from a list of ``subjects``.
    - ``cosine`` needs nothing else.
    - ``gap`` needs the best two, which the top-k holds (k >= 2 where there are two subjects).
    - ``z`` needs each probe's mean and variance over its impostors. The index computes them
      exactly over all *templates* from their first two moments (``p . mean`` and
      ``p' C p``), so no similarity to every template is needed: for one template per
      subject this equals the exact rule up to leaving the best one out, which at the sizes
      the approximate index serves moves the statistics by under 1/subjects. Both are
      shrunk towards the calibration's priors as the exact rule does.
    """
    sims = np.atleast_2d(np.asarray(similarity, dtype=np.float64))
    if rule == "cosine":
        return sims
    if rule == "gap":
        if sims.shape[1] < 2 or subjects < 2:
            return sims.copy()
        best_other = np.where(np.arange(sims.shape[1])[None, :] == 0, sims[:, 1:2], sims[:, 0:1])
        return sims - best_other
    if rule == "z":
        if impostor_mean is None or impostor_var is None:
            raise ValueError("the z-score from top-k needs each probe's impostor mean and variance")
        values = {"mean": 0.0, "std": 1.0, "weight": 50.0} | (priors or {})
        n = max(subjects - 1, 0)
        w = n / (n + values["weight"])
        mean = w * np.asarray(impostor_mean, np.float64) + (1 - w) * values["mean"]
        std = np.sqrt(w * np.asarray(impostor_var, np.float64) + (1 - w) * values["std"] ** 2)
        return (sims - mean[:, None]) / std[:, None]
    raise ValueError(f"unknown score rule {rule!r}: use cosine, z or gap")
