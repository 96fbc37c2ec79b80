"""1:N search: best template per subject, top-k order, open-set scores, the alert decision."""

from __future__ import annotations

import numpy as np

from openlfr.matching import (
    DEFAULT_THRESHOLD,
    Candidate,
    WatchlistIndex,
    default_threshold,
    is_alert,
    open_set_scores,
)
from openlfr.matching.decision import CALIBRATED
from openlfr.matching.openset import PRIOR_MEAN, PRIOR_STD
from openlfr.vision.embed import normalise


def _random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    return normalise(rng.normal(size=(n, 128)).astype(np.float32))


def test_subject_scores_take_the_best_template_of_each_subject() -> None:
    rng = np.random.default_rng(1)
    templates = _random_unit(rng, 5)
    ids = np.array([9, 3, 9, 3, 7])  # deliberately unsorted
    index = WatchlistIndex(templates, ids, {3: "c", 7: "b", 9: "a"})
    probe = templates[2] + 0.01
    scores = index.subject_scores(probe[None])[0]
    sims = templates @ normalise(probe[None])[0] * np.linalg.norm(probe)
    expected = [max(sims[1], sims[3]), sims[4], max(sims[0], sims[2])]  # subjects 3, 7, 9
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    top = index.search(probe[None], top_k=2)[0]
    assert [c.subject for c in top] == ["a", top[1].subject] and len(top) == 2
    assert top[0].similarity >= top[1].similarity


def test_search_ranks_the_right_subject_first_among_many() -> None:
    rng = np.random.default_rng(2)
    gallery = _random_unit(rng, 1000)
    names = {i: f"s{i}" for i in range(1000)}
    index = WatchlistIndex(gallery, np.arange(1000), names)
    probes = normalise(gallery[[5, 500, 999]] + 0.05 * rng.normal(size=(3, 128)).astype(np.float32))
    results = index.search(probes, top_k=3)
    assert [r[0].subject for r in results] == ["s5", "s500", "s999"]
    assert all(len(r) == 3 for r in results)


def test_empty_watchlist_finds_nothing() -> None:
    index = WatchlistIndex(np.zeros((0, 128), np.float32), np.zeros(0, np.int64), {})
    assert index.search(np.ones((2, 128), np.float32)) == [[], []]
    assert not is_alert([], threshold=0.0)


def test_open_set_score_is_a_z_score_against_the_other_subjects() -> None:
    rng = np.random.default_rng(3)
    impostors = rng.normal(0.8, 0.04, size=10_000)
    row = np.concatenate([[0.98], impostors])
    z = open_set_scores(row[None])[0]
    weight = len(impostors) / (len(impostors) + 50)
    mean = weight * impostors.mean() + (1 - weight) * PRIOR_MEAN
    std = np.sqrt(weight * impostors.var() + (1 - weight) * PRIOR_STD**2)
    assert abs(z[0] - (0.98 - mean) / std) < 1e-9
    # The same similarity stands out less for a probe that resembles everybody.
    crowded = np.concatenate([[0.98], rng.normal(0.9, 0.04, size=10_000)])
    assert open_set_scores(crowded[None])[0, 0] < z[0] - 1


def test_one_subject_watchlist_falls_back_to_population_statistics() -> None:
    z = open_set_scores(np.array([[PRIOR_MEAN + 5 * PRIOR_STD]]))
    assert abs(z[0, 0] - 5) < 1e-9


def test_alert_decision_uses_the_threshold() -> None:
    above = [Candidate("a", 1, DEFAULT_THRESHOLD + 0.01, 0.99)]
    below = [Candidate("a", 1, DEFAULT_THRESHOLD - 0.01, 0.99)]
    assert is_alert(above, DEFAULT_THRESHOLD) and not is_alert(below, DEFAULT_THRESHOLD)
    assert is_alert(below, threshold=DEFAULT_THRESHOLD - 1)


def test_default_threshold_grows_with_the_watchlist() -> None:
    assert default_threshold(1000) == DEFAULT_THRESHOLD == CALIBRATED[1000]
    assert default_threshold(0) == default_threshold(1) == CALIBRATED[1]
    sizes = [1, 2, 5, 10, 50, 150, 1000, 5000, 100_000]
    thresholds = [default_threshold(n) for n in sizes]
    assert thresholds == sorted(thresholds)
    assert CALIBRATED[100] < default_threshold(150) < CALIBRATED[300]
    # Ten times the strangers' chances costs about a third of a standard deviation out there.
    assert 0.2 < default_threshold(10_000) - default_threshold(1000) < 0.6
