"""Evaluation and calibration: the arithmetic on made-up scores, and the shipped threshold
reproduced from the real development data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from openlfr.cli import app
from openlfr.evaluation.openset import SearchOutcomes, rates, threshold_for_fpir
from openlfr.matching import DEFAULT_THRESHOLD


def test_threshold_for_fpir_lets_through_at_most_the_target_share() -> None:
    strangers = np.arange(1000, dtype=float)  # scores 0..999
    t = threshold_for_fpir(strangers, 0.01)
    assert t is not None and 989 < t <= 990
    assert (strangers >= t).sum() == 10
    assert threshold_for_fpir(strangers, 0.0001) is None  # 1,000 searches cannot show 1 in 10,000


def test_rates_count_wrong_rank1_alerts_as_false() -> None:
    outcomes = SearchOutcomes(
        mated_scores=np.array([5.0, 5.0, 1.0, -np.inf]),
        mated_rank1=np.array([True, False, True, False]),
        nonmated_scores=np.array([5.0, 0.0, 0.0, -np.inf]),
    )
    tpir, fpir, precision = rates(outcomes, 4.0)
    assert tpir == 0.25 and fpir == 0.25 and precision == pytest.approx(1 / 3)


@pytest.mark.slow
def test_shipped_threshold_is_reproduced_by_calibration(test_data: Path, tmp_path: Path) -> None:
    """The documented command, on the documented data, gives the threshold the code ships."""
    faces = test_data / "faces"
    output = tmp_path / "calibration.json"
    result = CliRunner().invoke(
        app,
        [
            "calibrate",
            "--mated",
            str(faces / "celeba-dev"),
            "--strangers",
            str(faces / "utkface-demographics"),
            "--strangers",
            str(faces / "fairface540"),
            "--strangers",
            str(faces / "nasa-portraits"),
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.stderr
    calibration = json.loads(output.read_text())
    assert calibration["threshold"] == DEFAULT_THRESHOLD
    assert calibration["fpir"] <= 0.001
    assert calibration["nonmated_searches"] >= 5000
    # The open-set score must beat plain cosine similarity at the same false-alert rate.
    assert calibration["tpir"] > calibration["baseline_raw_similarity"]["tpir"]
