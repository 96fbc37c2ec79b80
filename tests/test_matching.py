"""1:N search: best template per subject, top-k order, score rules, the alert decision, and
the refusal to compare two models' templates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from openlfr.errors import OpenLFRError
from openlfr.matching import (
    Candidate,
    ModelMismatchError,
    WatchlistIndex,
    candidate_scores,
    default_threshold,
    is_alert,
)
from openlfr.matching.scores import gap_scores, z_scores
from openlfr.vision.embed import normalise
from openlfr.vision.models import model_names
from openlfr.vision.models.calibration import (
    Calibration,
    load_calibration,
    site_path,
    write_calibration,
)

DLIB = "dlib-resnet-v1"


def _random_unit(rng: np.random.Generator, n: int, d: int = 128) -> np.ndarray:
    return normalise(rng.normal(size=(n, d)).astype(np.float32))


def test_subject_scores_take_the_best_template_of_each_subject() -> None:
    rng = np.random.default_rng(1)
    templates = _random_unit(rng, 5)
    ids = np.array([9, 3, 9, 3, 7])  # deliberately unsorted
    index = WatchlistIndex(templates, ids, {3: "c", 7: "b", 9: "a"}, model=DLIB)
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
    index = WatchlistIndex(gallery, np.arange(1000), names, model=DLIB)
    probes = normalise(gallery[[5, 500, 999]] + 0.05 * rng.normal(size=(3, 128)).astype(np.float32))
    results = index.search(probes, top_k=3)
    assert [r[0].subject for r in results] == ["s5", "s500", "s999"]
    assert all(len(r) == 3 for r in results)


def test_empty_watchlist_finds_nothing() -> None:
    index = WatchlistIndex(np.zeros((0, 128), np.float32), np.zeros(0, np.int64), {}, model=DLIB)
    assert index.search(np.ones((2, 128), np.float32)) == [[], []]
    assert not is_alert([], threshold=0.0)


def test_a_search_with_another_models_probes_is_refused() -> None:
    rng = np.random.default_rng(4)
    index = WatchlistIndex(_random_unit(rng, 3), np.arange(3), {0: "a", 1: "b", 2: "c"}, model=DLIB)
    with pytest.raises(ModelMismatchError, match="re-embed"):
        index.search(_random_unit(rng, 1), model="mobilefacenet-v1")
    # Even without the tag, 192-d probes never meet 128-d templates.
    with pytest.raises(ModelMismatchError, match="never compared"):
        index.search(_random_unit(rng, 1, 192))


def test_z_score_is_taken_against_the_other_subjects() -> None:
    rng = np.random.default_rng(3)
    impostors = rng.normal(0.8, 0.04, size=10_000)
    row = np.concatenate([[0.98], impostors])
    prior = {"mean": 0.82, "std": 0.03, "weight": 50.0}
    z = z_scores(row[None], **prior)[0]
    weight = len(impostors) / (len(impostors) + 50)
    mean = weight * impostors.mean() + (1 - weight) * prior["mean"]
    std = np.sqrt(weight * impostors.var() + (1 - weight) * prior["std"] ** 2)
    assert abs(z[0] - (0.98 - mean) / std) < 1e-9
    crowded = np.concatenate([[0.98], rng.normal(0.9, 0.04, size=10_000)])
    assert z_scores(crowded[None], **prior)[0, 0] < z[0] - 1
    # One subject: the population values alone.
    assert abs(z_scores(np.array([[0.82 + 5 * 0.03]]), **prior)[0, 0] - 5) < 1e-9


def test_gap_is_the_margin_over_the_best_other_subject() -> None:
    sims = np.array([[0.9, 0.5, 0.7], [0.6, 0.6, 0.1]])
    gaps = gap_scores(sims)
    np.testing.assert_allclose(gaps[0], [0.2, -0.4, -0.2])
    np.testing.assert_allclose(gaps[1], [0.0, 0.0, -0.5])  # a tie stands out from nobody
    np.testing.assert_allclose(candidate_scores(sims, "cosine"), sims)
    with pytest.raises(ValueError, match="score rule"):
        candidate_scores(sims, "magic")


def test_alert_decision_uses_the_threshold() -> None:
    above = [Candidate("a", 1, 0.51, 0.51)]
    below = [Candidate("a", 1, 0.49, 0.49)]
    assert is_alert(above, 0.5) and not is_alert(below, 0.5)
    assert is_alert(below, threshold=0.4)


@pytest.mark.parametrize("model", model_names())
def test_every_model_ships_a_calibration_whose_threshold_grows_with_the_list(model: str) -> None:
    calibration = load_calibration(model)
    assert calibration.model == model and calibration.target_fpir == 0.001
    sizes = [1, 2, 5, 10, 50, 150, 1000, 5000, 100_000, 1_000_000]
    thresholds = [default_threshold(n, model) for n in sizes]
    assert thresholds == sorted(thresholds)
    assert default_threshold(0, model) == default_threshold(1, model)
    table = sorted(calibration.thresholds)
    assert table[-1] >= 1000 and calibration.method


def test_a_sites_calibration_takes_precedence_and_a_broken_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENLFR_HOME", str(tmp_path))

    mine = Calibration(DLIB, "cosine", 0.001, {1: 0.9, 1000: 0.95}, method="site")
    write_calibration(mine, site_path(DLIB))
    assert load_calibration(DLIB).thresholds == {1: 0.9, 1000: 0.95}
    assert default_threshold(31, DLIB) == pytest.approx(0.925, abs=1e-3)  # log-interpolated
    site_path(DLIB).write_text(json.dumps({"model": DLIB, "score": "magic"}))
    with pytest.raises(OpenLFRError, match="not a calibration file|score must be"):
        load_calibration(DLIB)
