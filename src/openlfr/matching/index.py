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

From ``APPROXIMATE_FROM`` templates (a measured crossover, ``openlfr.matching.approximate``)
``search`` walks a FAISS HNSW graph instead of multiplying by every template: it asks for
enough nearest templates to hold ``top_k`` distinct subjects, takes the best per subject, and
scores them with ``top_k_scores``. Callers need not know: the same constructor picks it, so
``openlfr search`` and deployments use it without a flag. ``subject_scores`` (every subject's
similarity, for evaluation) stays exact at every size. ``prebuilt`` takes a graph built once
for several indexes over the same list (a deployment's cameras: ``matching.shared``), with
``graph_ids``, the subject ids in its order. The graph holds its templates in half precision
(``approximate``'s docstring says what that costs); so does the index then, and its exact
products upcast them a block at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openlfr.errors import OpenLFRError
from openlfr.matching import approximate as ann
from openlfr.matching.approximate import GraphSettings, TemplateGraph, load_faiss
from openlfr.matching.scores import candidate_scores, top_k_scores
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


# The most nearest templates one approximate search asks for: a subject with more templates
# than this among a probe's neighbours would crowd the others out of its top-k.
MAX_TEMPLATES_ASKED = 1024


class WatchlistIndex:
    """Exact search (one matrix product per batch of probes) up to ``approximate_from``
    templates, an in-memory HNSW graph above it. ``approximate`` forces one or the other;
    ``expected_searches``, where a caller knows it (a batch of photos), keeps the exact
    product when so few searches would not repay the graph's build (``BUILD_PAYS_FROM``)."""

    def __init__(
        self,
        embeddings: np.ndarray | None,
        subject_ids: np.ndarray,
        subject_names: dict[int, str],
        *,
        model: str,
        calibration: Calibration | None = None,
        approximate: bool | None = None,
        approximate_from: int | None = None,
        graph: GraphSettings | None = None,
        expected_searches: int | None = None,
        prebuilt: TemplateGraph | None = None,
    ) -> None:
        self.model = model
        self.calibration = calibration or load_calibration(model)
        if self.calibration.model != model:
            raise ModelMismatchError(
                f"calibration of {self.calibration.model} given for an index of {model}"
            )
        if prebuilt is not None:  # another index's graph (``graph_ids``' order): no copy
            sorted_ids = np.asarray(subject_ids)
            if len(sorted_ids) != len(prebuilt.templates) or np.any(np.diff(sorted_ids) < 0):
                raise ValueError("a prebuilt graph needs its templates' subject ids, in order")
            self._embeddings = prebuilt.templates
        else:
            if embeddings is None:
                raise ValueError("an index needs its templates or a prebuilt graph")
            order = np.argsort(subject_ids, kind="stable")
            self._embeddings = np.ascontiguousarray(embeddings[order], dtype=np.float32)
            sorted_ids = np.asarray(subject_ids)[order]
        self.graph_ids = sorted_ids  # each template's subject, in the graph's order
        # Templates of one subject are contiguous: reduceat takes each run's maximum in one go.
        starts = (
            np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
            if len(sorted_ids)
            else np.zeros(0, dtype=np.int64)
        )
        self._run_starts = starts
        self._run_subjects = sorted_ids[starts] if len(sorted_ids) else sorted_ids
        self._names = subject_names
        # Each template's column in subject_scores' output, and the largest run of one subject.
        self._template_subject = np.repeat(
            np.arange(len(starts)), np.diff(np.r_[starts, len(sorted_ids)])
        )
        self._max_run = int(np.diff(np.r_[starts, len(sorted_ids)]).max()) if len(starts) else 0
        self.graph: TemplateGraph | None = prebuilt
        if prebuilt is not None:
            approximate = False  # built already
        elif approximate is None:
            approximate = ann.needs_graph(
                self.template_count,
                approximate_from=approximate_from,
                expected_searches=expected_searches,
            )
        if approximate and self.template_count and load_faiss() is not None:
            self.graph = TemplateGraph(self._embeddings, graph)
            self._embeddings = self.graph.templates  # held once: a view of the graph's copy
        if self.graph is not None and self.calibration.score == "z":
            # the z-score's impostor statistics (scores.py)
            self._template_mean = self._embeddings.mean(axis=0, dtype=np.float64)
            self._template_cov = np.cov(self._embeddings.T, bias=True)

    @property
    def approximate(self) -> bool:
        """True when searches walk the FAISS graph rather than every template."""
        return self.graph is not None

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
        similarity = _products(probes, self._embeddings)
        return np.maximum.reduceat(similarity, self._run_starts, axis=1)

    def search(
        self, probes: np.ndarray, top_k: int = 5, *, model: str | None = None
    ) -> list[list[Candidate]]:
        """The ``top_k`` subjects per probe, best first. ``model``, the probes' face model, is
        checked against the index's."""
        self.check_model(model)
        if self.graph is not None:
            return self._search_graph(probes, top_k)
        similarity = self.subject_scores(probes)
        scores = self.scores(similarity)
        k = min(top_k, similarity.shape[1])
        if k <= 0:
            return [[] for _ in range(len(similarity))]
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        results = []
        for sim_row, score_row, columns in zip(similarity, scores, top, strict=True):
            columns = columns[np.argsort(-sim_row[columns], kind="stable")]
            results.append([self._candidate(c, score_row[c], sim_row[c]) for c in columns])
        return results

    def _candidate(self, column: int, score: float, similarity: float) -> Candidate:
        subject_id = int(self._run_subjects[column])
        return Candidate(
            subject=self._names[subject_id],
            subject_id=subject_id,
            score=round(float(score), 3),
            similarity=round(float(similarity), 4),
        )

    def _impostor_moments(self, probes: np.ndarray, best: np.ndarray) -> dict[str, np.ndarray]:
        """Each probe's mean and variance of similarity over every template but its best one,
        from the templates' mean and covariance (p . mean, p' C p): no product with every
        template. Exact where subjects have one template each (the exact rule's impostors)."""
        p = probes.astype(np.float64)
        n = self.template_count
        mean = p @ self._template_mean
        second = np.einsum("ij,jk,ik->i", p, self._template_cov, p) + mean**2  # E[s^2]
        if n < 2:
            return {"impostor_mean": mean, "impostor_var": second - mean**2}
        best = np.where(np.isfinite(best), best, mean)
        mean_out = (n * mean - best) / (n - 1)
        var_out = (n * second - best**2) / (n - 1) - mean_out**2
        return {"impostor_mean": mean_out, "impostor_var": np.maximum(var_out, 0.0)}

    def _search_graph(self, probes: np.ndarray, top_k: int) -> list[list[Candidate]]:
        """The approximate search: nearest templates, best per subject, top-k scores."""
        assert self.graph is not None
        probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
        if probes.shape[1] != self._embeddings.shape[1]:
            self.subject_scores(probes[:0])  # raises the exact index's ModelMismatchError
        # Subjects wanted: at least two, so the gap rule knows the runner-up.
        wanted = min(max(top_k, 2), self.subject_count)
        # Enough templates that even if the nearest ones all belong to the top subjects, as
        # many distinct subjects remain as wanted.
        asked = min(self.template_count, wanted * self._max_run, MAX_TEMPLATES_ASKED)
        sims, rows = self.graph.search(probes, asked)
        per_probe: list[tuple[np.ndarray, np.ndarray]] = []
        for sim_row, row in zip(sims, rows, strict=True):
            found = row >= 0
            columns = self._template_subject[row[found]]
            # Rows come best first: a subject's first occurrence is its best template.
            _, first = np.unique(columns, return_index=True)
            first.sort()
            first = first[:wanted]
            per_probe.append((columns[first], sim_row[found][first]))
        width = max((len(c) for c, _ in per_probe), default=0)
        padded = np.full((len(probes), max(width, 1)), -np.inf)
        for i, (_, s) in enumerate(per_probe):
            padded[i, : len(s)] = s
        extra = {}
        if self.calibration.score == "z":
            extra = self._impostor_moments(probes, padded[:, 0])
        scores = top_k_scores(
            np.where(np.isfinite(padded), padded, 0.0),
            self.calibration.score,
            self.calibration.priors,
            subjects=self.subject_count,
            **extra,
        )
        k = min(top_k, self.subject_count)
        return [
            [self._candidate(c, scores[i, j], s[j]) for j, c in enumerate(columns[:k])]
            for i, (columns, s) in enumerate(per_probe)
        ]


def _products(probes: np.ndarray, templates: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """``probes @ templates.T`` in float32. A graph's float16 templates are upcast a block at a
    time: at a million templates, one whole copy would be 768 MB for every call."""
    if templates.dtype == np.float32:
        return probes @ templates.T
    out = np.empty((len(probes), len(templates)), dtype=np.float32)
    for start in range(0, len(templates), block):
        chunk = templates[start : start + block].astype(np.float32)
        out[:, start : start + block] = probes @ chunk.T
    return out
