"""The alert decision: a probe alerts when its best candidate's open-set score reaches the
threshold. An alert is a prompt for a human, never an identification.

``DEFAULT_THRESHOLD`` is the operating point that ``openlfr calibrate`` chose on the development
data for a false-positive identification rate of at most 1 in 1,000 searches against a
1,000-subject watchlist (docs/calibration.md: method, figures, and the command to reproduce).
"""

from __future__ import annotations

from openlfr.matching.index import Candidate

DEFAULT_THRESHOLD = 4.68


def is_alert(candidates: list[Candidate], threshold: float | None = None) -> bool:
    """True when the best candidate's open-set score reaches ``threshold`` (default: calibrated)."""
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    return bool(candidates) and candidates[0].score >= threshold
