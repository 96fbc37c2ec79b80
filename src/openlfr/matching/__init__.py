"""1:N search of probes against a watchlist, score rules and the alert decision."""

from openlfr.matching.decision import default_threshold, is_alert
from openlfr.matching.index import Candidate, ModelMismatchError, WatchlistIndex
from openlfr.matching.scores import candidate_scores

__all__ = [
    "Candidate",
    "ModelMismatchError",
    "WatchlistIndex",
    "candidate_scores",
    "default_threshold",
    "is_alert",
]
