"""Open-set scores: how far a candidate stands out from the crowd, not just how alike it is.

Raw cosine similarity makes a poor alert rule for dlib's model: on a 1,000-subject watchlist the
best raw similarity of a stranger is as high as that of most watchlisted people (docs/
calibration.md has the figures). Some faces simply resemble many faces. So each probe is
scored against its own impostor distribution, the similarities it has to the *other*
watchlist subjects (all but the best candidate):

    score = (similarity - mean_impostor) / std_impostor

a z-score: "this candidate is ``score`` standard deviations above what this probe scores
against people who are not it". On small watchlists the probe's own impostor statistics are
uncertain, so they are shrunk towards population values measured on development data
(``PRIOR_*``; a plain weighted average, weight ``n / (n + PRIOR_WEIGHT)`` for ``n`` impostors).
"""

from __future__ import annotations

import numpy as np

# Mean and spread of a probe's cosine similarity to unrelated people, dlib-resnet-v1,
# measured on the development data (celeba-dev, utkface-demographics, fairface540) by
# ``openlfr calibrate``: aggregates, no personal data.
PRIOR_MEAN = 0.827
PRIOR_STD = 0.036
PRIOR_WEIGHT = 50.0


def open_set_scores(subject_scores: np.ndarray) -> np.ndarray:
    """Z-scores of an ``(m, subjects)`` similarity matrix against each row's impostor statistics."""
    scores = np.atleast_2d(np.asarray(subject_scores, dtype=np.float64))
    m, n_subjects = scores.shape
    if n_subjects == 0:
        return scores.copy()
    best = np.argmax(scores, axis=1)
    impostors = scores.copy()
    impostors[np.arange(m), best] = np.nan
    n = n_subjects - 1
    if n > 0:
        mean = np.nanmean(impostors, axis=1)
        var = np.nanvar(impostors, axis=1)
    else:
        mean = np.full(m, PRIOR_MEAN)
        var = np.full(m, PRIOR_STD**2)
    weight = n / (n + PRIOR_WEIGHT)
    mean = weight * mean + (1 - weight) * PRIOR_MEAN
    std = np.sqrt(weight * var + (1 - weight) * PRIOR_STD**2)
    return (scores - mean[:, None]) / std[:, None]
