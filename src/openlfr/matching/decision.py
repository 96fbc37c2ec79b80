"""The alert decision: a probe alerts when its best candidate's score reaches the threshold.
An alert is a prompt for a human, never an identification.

The default threshold holds the false-positive identification rate (the share of people *not*
on the watchlist who raise an alert) at no more than the calibration's target, 1 in 1,000
searches, whatever the watchlist's size: a larger list offers a stranger more chances to
resemble somebody, so it needs a higher threshold. Each face model's table is data
(``openlfr.vision.models.calibration``), measured by ``openlfr calibrate --model``.
"""

from __future__ import annotations

from openlfr.matching.index import Candidate
from openlfr.vision.models.calibration import load_calibration

# The operating point quoted in docs and reports: a watchlist of 1,000.
REFERENCE_WATCHLIST_SIZE = 1000


def default_threshold(watchlist_size: int, model: str) -> float:
    """The calibrated threshold of ``model`` for a watchlist of ``watchlist_size`` subjects."""
    return load_calibration(model).threshold(watchlist_size)


def is_alert(candidates: list[Candidate], threshold: float) -> bool:
    """True when the best candidate's score reaches ``threshold``."""
    return bool(candidates) and candidates[0].score >= threshold
