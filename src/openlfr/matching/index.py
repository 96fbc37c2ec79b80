"""The 1:N watchlist index: exact cosine search over every template, best template per subject.

    >>> index = WatchlistIndex(embeddings, subject_ids, {7: "alice", 9: "bob"},
    ...                        model="mobilefacenet-v1")
    >>> index.search(probe_embeddings, top_k=3, model="mobilefacenet-v1")[0]
    [Candidate(subject='alice', subject_id=7, score=0.71, similarity=0.71), ...]

The index belongs to one face model: its templates carry that model's tag, its scores follow
that model's calibration (score rule and thresholds), and a search with another model's
embeddings is refused (``ModelMismatchError``), never silently compared.

A subject with several reference images scores as its *best-matching* template: each photo
stands for the person, and a probe need resemble only one of them (a frontal and a
three-quarter photo, say). Averaging would punish a subject for having varied photos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openlfr.errors import OpenLFRError
from openlfr.matching.scores import candidate_scores
from openlfr.vision.models.calibration import Calibration, load_calibration


class ModelMismatchError(OpenLFRError):
    """Probes of one face model searched against another model's templates."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A watchlist subject proposed for a probe. ``score`` is the open-set score that thresholds
    apply to (see ``openlfr.matching.openset``); ``similarity`` the raw cosine similarity."""

    subject: str
    subject_id: int
    score: float
    similarity: float


class WatchlistIndex:
    """Exact search: one matrix product per batch of probes, so 100k templates take milliseconds."""

    def __init__(
        self,
        embeddings: np.ndarray,
        subject_ids: np.ndarray,
        subject_names: dict[int, str],
        *,
        model: str,
        calibration: Calibration | None = None,
    ) -> None:
        self.model = model
        self.calibration = calibration or load_calibration(model)
        if self.calibration.model != model:
            raise ModelMismatchError(
                f"calibration of {self.calibration.model} given for an index of {model}"
            )
        order = np.argsort(subject_ids, kind="stable")
        self._embeddings = np.ascontiguousarray(embeddings[order], dtype=np.float32)
        sorted_ids = np.asarray(subject_ids)[order]
        # Templates of one subject are contiguous: reduceat takes each run's maximum in one go.
        starts = (
            np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
            if len(sorted_ids)
            else np.zeros(0, dtype=np.int64)
        )
        self._run_starts = starts
        self._run_subjects = sorted_ids[starts] if len(sorted_ids) else sorted_ids
        self._names = subject_names

    @property
    def template_count(self) -> int:
        return len(self._embeddings)

    @property
    def subject_count(self) -> int:
        return len(self._run_starts)

    def default_threshold(self) -> float:
        """The calibrated threshold for this list's size (FPIR at most the calibration's target)."""
        return self.calibration.threshold(self.subject_count)

    def check_model(self, model: str | None) -> None:
        if model is not None and model != self.model:
            raise ModelMismatchError(
                f"probes of face model {model} cannot be searched against templates of "
                f"{self.model}: re-embed the watchlist ('openlfr watchlist re-embed NAME "
                f"--model {model}') or search with --model {self.model}"
            )

    def scores(self, similarity: np.ndarray) -> np.ndarray:
        """The calibrated score rule applied to ``subject_scores``' output."""
        return candidate_scores(similarity, self.calibration.score, self.calibration.priors)

    def subject_scores(self, probes: np.ndarray) -> np.ndarray:
        """``(m, subjects)`` best-template cosine similarity of each probe to each subject."""
        probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
        if self.template_count and probes.shape[1] != self._embeddings.shape[1]:
            raise ModelMismatchError(
                f"{probes.shape[1]}-d probes against {self._embeddings.shape[1]}-d templates of "
                f"{self.model}: embeddings of two models are never compared"
            )
        if self.template_count == 0:
            return np.zeros((len(probes), 0), dtype=np.float32)
        similarity = probes @ self._embeddings.T
        return np.maximum.reduceat(similarity, self._run_starts, axis=1)

    def search(
        self, probes: np.ndarray, top_k: int = 5, *, model: str | None = None
    ) -> list[list[Candidate]]:
        """The ``top_k`` subjects per probe, best first. ``model``, the probes' face model, is
        checked against the index's."""
        self.check_model(model)
        similarity = self.subject_scores(probes)
        scores = self.scores(similarity)
        k = min(top_k, similarity.shape[1])
        if k <= 0:
            return [[] for _ in range(len(similarity))]
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        results = []
        for sim_row, score_row, columns in zip(similarity, scores, top, strict=True):
            columns = columns[np.argsort(-sim_row[columns], kind="stable")]
            results.append(
                [
                    Candidate(
                        subject=self._names[int(self._run_subjects[c])],
                        subject_id=int(self._run_subjects[c]),
                        score=round(float(score_row[c]), 3),
                        similarity=round(float(sim_row[c]), 4),
                    )
                    for c in columns
                ]
            )
        return results
