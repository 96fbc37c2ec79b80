"""The alert decision: a probe alerts when its best candidate's open-set score reaches the
threshold. An alert is a prompt for a human, never an identification.

The default threshold holds the false-positive identification rate (the share of people *not*
on the watchlist who raise an alert) at no more than 1 in 1,000 searches, whatever the
watchlist's size: a larger list offers a stranger more chances to resemble somebody, so it
needs a higher threshold. ``CALIBRATED`` is the table that ``openlfr calibrate`` measured on the
development data (docs/calibration.md: method, figures, the command that reproduces it);
sizes between entries are interpolated on a log scale, and sizes beyond the last entry add the
growth of a normal tail (the chance that the best of N strangers' scores passes a threshold).
"""

from __future__ import annotations

import math
from statistics import NormalDist

from openlfr.matching.index import Candidate

TARGET_FPIR = 0.001

# Watchlist size -> open-set threshold for FPIR <= TARGET_FPIR (dlib-resnet-v1).
CALIBRATED: dict[int, float] = {
    1: 3.04,
    3: 3.37,
    10: 3.65,
    30: 3.65,
    100: 3.80,
    300: 4.11,
    1000: 4.68,
}

# The operating point of a 1,000-subject watchlist: the figure quoted in docs and reports.
DEFAULT_THRESHOLD = CALIBRATED[1000]


def default_threshold(watchlist_size: int) -> float:
    """The calibrated threshold for a watchlist of ``watchlist_size`` subjects."""
    sizes = sorted(CALIBRATED)
    n = max(int(watchlist_size), 1)
    if n >= sizes[-1]:
        largest = sizes[-1]
        tail = NormalDist().inv_cdf
        extra = tail(1 - TARGET_FPIR / n) - tail(1 - TARGET_FPIR / largest)
        return round(CALIBRATED[largest] + extra, 2)
    for low, high in zip(sizes, sizes[1:], strict=False):
        if low <= n <= high:
            share = (math.log(n) - math.log(low)) / (math.log(high) - math.log(low))
            return round(CALIBRATED[low] + share * (CALIBRATED[high] - CALIBRATED[low]), 2)
    raise AssertionError("unreachable: n >= 1 lies in the table or above it")


def is_alert(candidates: list[Candidate], threshold: float) -> bool:
    """True when the best candidate's open-set score reaches ``threshold``."""
    return bool(candidates) and candidates[0].score >= threshold
