"""1:N search of probes against a watchlist, open-set scores and the alert decision."""

from openlfr.matching.decision import DEFAULT_THRESHOLD, default_threshold, is_alert
from openlfr.matching.index import Candidate, WatchlistIndex
from openlfr.matching.openset import open_set_scores

__all__ = [
    "DEFAULT_THRESHOLD",
    "Candidate",
    "default_threshold",
    "WatchlistIndex",
    "is_alert",
    "open_set_scores",
]
