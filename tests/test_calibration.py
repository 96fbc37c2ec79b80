"""Calibration arithmetic on made-up impostor scores whose FPIR is known in closed form."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from openlfr.evaluation.calibrate import ImpostorScores, _fpir

SIGMA = 0.1


def normal_impostors(probes: int, identities: int, photos: int, seed: int = 0) -> ImpostorScores:
    """Strangers against identities of ``photos`` photos each, every score N(0, SIGMA)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, SIGMA, size=(probes, identities * photos)).astype(np.float32)
    weights = np.full(identities * photos, 1.0 / photos, np.float32)
    return ImpostorScores(scores, weights, np.full(probes, float(identities)), identities)


def exact_threshold(n: int, target: float = 0.001) -> float:
    """The t with 1 - (1 - P(score >= t))^n = target, for N(0, SIGMA) scores."""
    per_person = -math.expm1(math.log1p(-target) / n)
    return SIGMA * NormalDist().inv_cdf(1 - per_person)


def test_fpir_of_tiny_rates_on_huge_lists_is_not_lost_to_rounding() -> None:
    assert _fpir(np.array([1e-12]), 1_000_000) == pytest.approx(1e-6, rel=1e-6)
    assert _fpir(np.array([0.5, 0.0]), 2) == pytest.approx(0.375)
    assert _fpir(np.array([1.0]), 10) == 1.0


def test_measured_share_counts_each_identity_once() -> None:
    # One probe; identity 0 has two photos (one reaches 0.5), identity 1 one photo (reaches it).
    scores = np.array([[0.6, 0.1, 0.7]], np.float32)
    impostors = ImpostorScores(scores, np.array([0.5, 0.5, 1.0], np.float32), np.array([2.0]), 2)
    assert impostors.share(0.5)[0] == pytest.approx((0.5 + 1.0) / 2)
    assert impostors.fpir_measured(0.5, 1) == pytest.approx(0.75)


@pytest.mark.parametrize(("n", "within"), [(10, 0.05), (100, 0.05), (10_000, 0.1), (10**6, 0.25)])
def test_thresholds_follow_the_true_tail_inside_and_beyond_the_data(n: int, within: float) -> None:
    """400,000 pairs resolve lists of about 100 directly; 10,000 and 1,000,000 need the tail
    (fitted to a normal's, whose curve the Pareto family reaches only in the limit, it errs a
    little low far out: 0.18 sigma at 1,000,000)."""
    impostors = normal_impostors(probes=2000, identities=200, photos=1)
    got = impostors.threshold(n, 0.001)
    assert got == pytest.approx(exact_threshold(n), abs=within * SIGMA)


def test_thresholds_rise_with_the_list_and_hold_the_target() -> None:
    impostors = normal_impostors(probes=1000, identities=150, photos=4, seed=1)
    sizes = [1, 10, 100, 1000, 100_000]
    thresholds = [impostors.threshold(n, 0.001) for n in sizes]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)
    for n, t in zip(sizes, thresholds, strict=True):
        assert impostors.fpir(t, n) <= 0.001 < impostors.fpir(t - 0.002, n)
