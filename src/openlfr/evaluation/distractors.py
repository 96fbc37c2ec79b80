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
