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
@pytest.mark.parametrize("model", ["dlib-resnet-v1", "mobilefacenet-v1"])
def test_shipped_calibration_is_reproduced_by_the_documented_command(
    test_data: Path, tmp_path: Path, model: str
) -> None:
    """The documented command, on the documented data, gives the thresholds the code ships."""
    from openlfr.vision.models import _units
    from openlfr.vision.models.calibration import load_calibration, read_calibration

    if not _units()[model].installed():
        pytest.skip(f"{model} is not installed: run 'openlfr models install'")
    output = tmp_path / "calibration.json"
    result = CliRunner().invoke(
        app,
        [
            "calibrate",
            "--mated",
            str(test_data / "faces" / "celeba-dev"),
            "--relabel",
            "celeb7393=celeb7392",
            "--relabel",
            "026072.jpg=celeb7433",
            "--model",
            model,
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert read_calibration(output).thresholds == load_calibration(model).thresholds
    summary = json.loads(result.stdout)
    assert summary["identities"] == 149 and summary["probes"] >= 1700  # two folders are one person
