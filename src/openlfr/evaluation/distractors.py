"""Synthetic distractors: watchlist padding for sizes no development set reaches (100k, 1M).

A Gaussian fitted to real embeddings of one source (mean and full covariance, before unit
normalisation), sampled and normalised as the model's own embeddings are. It keeps what
drives a stranger's chance of resembling someone on a list: the embeddings' offset from the
origin (real ones share a mean direction; isotropic noise would not) and their correlated
spread, so a probe meets distractors with about the similarity it meets real people with.
What it lacks: identity structure finer than a covariance (clusters of look-alikes, twins,
duplicate photos of one person) and heavy tails, so FPIR measured against it is the FPIR of
a list of distinct, typical strangers. ``realism`` measures the gap on real probes.

Biometric hygiene: fitting keeps only the mean and a covariance factor (aggregates of many
faces); no real template survives in what it samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GaussianDistractors:
    mean: np.ndarray  # (d,)
    factor: np.ndarray  # (d, d): covariance = factor @ factor.T
    fitted_on: int  # how many real embeddings

    @classmethod
    def fit(cls, embeddings: np.ndarray, shrinkage: float = 0.01) -> GaussianDistractors:
        """Fit to real unit embeddings (``(n, d)``, n > d). ``shrinkage`` blends the sample
        covariance with its mean variance on the diagonal, so that a fit on about a
        thousand faces stays positive definite."""
        x = np.asarray(embeddings, dtype=np.float64)
        cov = np.cov(x.T)
        d = cov.shape[0]
        cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / d * np.eye(d)
        return cls(mean=x.mean(axis=0), factor=np.linalg.cholesky(cov), fitted_on=len(x))

    def sample(self, n: int, rng: np.random.Generator, chunk: int = 100_000) -> np.ndarray:
        """``(n, d)`` float32 unit embeddings, made ``chunk`` at a time to bound memory."""
        d = len(self.mean)
        out = np.empty((n, d), dtype=np.float32)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            z = rng.standard_normal((stop - start, d))
            x = self.mean + z @ self.factor.T
            out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out


def realism(
    probes: np.ndarray, real: np.ndarray, synthetic: np.ndarray, quantiles=(0.5, 0.99, 0.999)
) -> dict[str, dict[str, float]]:
    """Similarity of real ``probes`` to ``real`` and to as many ``synthetic`` templates: mean,
    standard deviation and upper quantiles of each, the numbers a reader compares."""
    synthetic = synthetic[: len(real)]
    out = {}
    for name, gallery in (("real", real), ("synthetic", synthetic)):
        sims = (probes @ gallery.T).ravel()
        out[name] = {"mean": float(sims.mean()), "std": float(sims.std())} | {
            f"q{q}": float(np.quantile(sims, q)) for q in quantiles
        }
    return out


@dataclass(frozen=True)
class PooledHits:
    """Real strangers against a list padded with synthetic distractors, estimated from a pool
    larger than one list: each stranger's distractors at or above ``floor`` among ``pool``, and
    its best score against the list's real subjects. With k of the pool's M distractors at or
    above t, a list of N alerts with probability 1 - (1 - real(t)) (1 - k/M)^(N - real
    subjects), real(t) being whether a real subject reaches t. Averaged over strangers, that
    uses every distractor in the pool, as if M/N lists were drawn, so it is steadier than one
    list's count (at N = M it is that count)."""

    pool: int
    value: np.ndarray  # similarities at or above the floor
    owner: np.ndarray  # the stranger (row) each belongs to
    real_best: np.ndarray  # (strangers,) best similarity to the list's real subjects
    real_subjects: int

    @classmethod
    def sample(
        cls,
        distractors: GaussianDistractors,
        strangers: np.ndarray,
        list_rows: np.ndarray,
        *,
        real_subjects: int,
        pool: int,
        rng: np.random.Generator,
        floor: float,
        batch: int = 256,
    ) -> PooledHits:
        """``list_rows``: the real subjects' templates (several rows may be one subject's)."""
        real_best = (strangers @ list_rows.T).max(axis=1)
        values, owners = [], []
        for start in range(0, pool, 100_000):
            block = distractors.sample(min(100_000, pool - start), rng)
            for i in range(0, len(strangers), batch):
                sims = strangers[i : i + batch] @ block.T
                rows, cols = np.nonzero(sims >= floor)
                values.append(sims[rows, cols])
                owners.append(rows + i)
        return cls(pool, np.concatenate(values), np.concatenate(owners), real_best, real_subjects)

    def alerts(self, threshold: float, watchlist_size: int) -> np.ndarray:
        """Each stranger's probability of alerting against a list of ``watchlist_size``."""
        k = np.bincount(self.owner[self.value >= threshold], minlength=len(self.real_best))
        padding = max(watchlist_size - self.real_subjects, 0)
        return 1 - (self.real_best < threshold) * (1 - k / self.pool) ** padding

    def strangers_hit(self, threshold: float) -> int:
        """Strangers with at least one subject or distractor at or above ``threshold``: the
        events behind an estimate."""
        hit = np.zeros(len(self.real_best), bool)
        hit[self.owner[self.value >= threshold]] = True
        return int((hit | (self.real_best >= threshold)).sum())
