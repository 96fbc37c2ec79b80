"""Threshold calibration (``openlfr calibrate --model M``): the threshold that holds a target
false-positive identification rate (FPIR) for every watchlist size, for a cosine score rule.

Method: each probe's own impostor scores, resampled. The data is a folder of identity
sub-folders from **one source** (strangers of the same source may be added). Each identity's
first image with a face is its template; every image is a probe, and its similarities to the
``m`` templates of *other* identities are its impostor scores, ``k_p(t)`` of them at or above
a threshold ``t``. A list of ``N`` people the probe is not is ``N`` of those, so

    FPIR(t, N) = mean over probes of  P(at least one of N drawn reaches t)

exactly (drawn without replacement) for ``N <= m``, and drawn with replacement,
``1 - (1 - k_p / m) ** N``, beyond. The threshold for ``N`` is solved from it. Faces that
resemble many people keep their own scores, so they weigh in as they should, and no curve is
assumed for the tail: a normal fit per probe, tried first, overstated dlib's false alerts
sixfold at 75 subjects (docs/calibration.md). Beyond ``m`` the table assumes the list's people
are like the calibration's, which ``benchmarks/protocols.py`` checks on lists of other
sources; lists far larger than the data are not padded with other sources' faces (padding from
the strangers' source inflates their scores by source, padding from a third source deflates
them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from openlfr.vision.faces import Face

SIZES = (1, 3, 10, 30, 100, 300, 1000, 3000, 10_000, 100_000, 1_000_000)


@dataclass
class ImpostorScores:
    """Each probe's similarities to the identities it is not (NaN where it is the identity)."""

    scores: np.ndarray  # (probes, identities)
    identities: int

    @property
    def mean(self) -> np.ndarray:
        return np.nanmean(self.scores, axis=1)

    @property
    def std(self) -> np.ndarray:
        return np.nanstd(self.scores, axis=1)

    def fpir(self, threshold: float, watchlist_size: int) -> float:
        m = (~np.isnan(self.scores)).sum(axis=1).astype(np.float64)
        k = (self.scores >= threshold).sum(axis=1).astype(np.float64)
        n = float(watchlist_size)
        with np.errstate(divide="ignore", invalid="ignore"):
            # P(none of n drawn without replacement reaches t) = C(m - k, n) / C(m, n)
            log_none = (
                _lgamma(m - k + 1) - _lgamma(m - k - n + 1) - _lgamma(m + 1) + _lgamma(m - n + 1)
            )
            exact = np.where(m - k >= n, 1 - np.exp(log_none), 1.0)
            beyond = -np.expm1(n * np.log1p(-k / m))
        return float(np.mean(np.where(n <= m, exact, beyond)))

    def threshold(self, watchlist_size: int, target_fpir: float) -> float:
        """The lowest threshold (rounded up to 0.001) whose FPIR is at most the target."""
        low, high = float(np.nanmin(self.scores)), 1.0
        for _ in range(40):  # FPIR falls as the threshold rises: bisection
            mid = (low + high) / 2
            if self.fpir(mid, watchlist_size) > target_fpir:
                low = mid
            else:
                high = mid
        return round(float(np.ceil(high * 1000) / 1000), 3)


def _lgamma(x: np.ndarray) -> np.ndarray:
    """log Gamma, elementwise; arguments below 1 (masked out by the caller) give 0."""
    return np.array([math.lgamma(v) if v >= 1 else 0.0 for v in np.ravel(x)]).reshape(
        np.shape(x)
    )


def impostor_scores(
    identities: dict[str, list[Face | None]], strangers: list[Face | None] = ()
) -> ImpostorScores:
    """The impostor scores of every face of ``identities`` (against the other identities'
    first faces) and of every stranger (against all of them)."""
    names = [n for n, faces in identities.items() if any(f is not None for f in faces)]
    if len(names) < 10:
        raise ValueError(f"calibration needs 10 or more identities with a face; got {len(names)}")
    templates = np.stack([next(f for f in identities[n] if f is not None).embedding for n in names])
    probes, owner = [], []
    for k, name in enumerate(names):
        for face in identities[name]:
            if face is not None:
                probes.append(face.embedding)
                owner.append(k)
    for face in strangers:
        if face is not None:
            probes.append(face.embedding)
            owner.append(-1)
    sim = np.stack(probes).astype(np.float64) @ templates.T.astype(np.float64)
    rows = np.arange(len(probes))
    mine = np.array(owner)
    sim[rows[mine >= 0], mine[mine >= 0]] = np.nan
    return ImpostorScores(sim, len(names))


@dataclass
class CalibrationResult:
    model: str
    target_fpir: float
    thresholds: dict[int, float]
    probes: int
    identities: int
    impostor_similarity_mean: float
    impostor_similarity_std: float
    tpir_at_threshold: dict[int, float] = field(default_factory=dict)  # on the folder's own list

    def as_dict(self) -> dict:
        data = asdict(self)
        data["thresholds"] = {str(k): v for k, v in self.thresholds.items()}
        data["tpir_at_threshold"] = {str(k): v for k, v in self.tpir_at_threshold.items()}
        return data


def calibrate(
    identities: dict[str, list[Face | None]],
    strangers: list[Face | None] = (),
    *,
    model: str,
    sizes: tuple[int, ...] | list[int] = SIZES,
    target_fpir: float = 0.001,
) -> CalibrationResult:
    """Thresholds for each list size, as the module's docstring says, and the share of mated
    searches (each identity's other faces against its first) that reach each threshold."""
    fits = impostor_scores(identities, strangers)
    thresholds = {int(n): fits.threshold(int(n), target_fpir) for n in sorted(sizes)}
    names = [n for n, faces in identities.items() if any(f is not None for f in faces)]
    gallery = np.stack([next(f for f in identities[n] if f is not None).embedding for n in names])
    mated_sims, correct = [], []
    for k, name in enumerate(names):
        found = [f for f in identities[name] if f is not None]
        if len(found) > 1:
            sims = np.stack([f.embedding for f in found[1:]]) @ gallery.T
            mated_sims.append(sims.max(axis=1))
            correct.append(sims.argmax(axis=1) == k)
    tpir = {}
    if mated_sims:
        best, right = np.concatenate(mated_sims), np.concatenate(correct)
        tpir = {n: round(float(((best >= t) & right).mean()), 4) for n, t in thresholds.items()}
    return CalibrationResult(
        model=model,
        target_fpir=target_fpir,
        thresholds=thresholds,
        probes=len(fits.mean),
        identities=fits.identities,
        impostor_similarity_mean=round(float(fits.mean.mean()), 4),
        impostor_similarity_std=round(float(np.sqrt((fits.std**2).mean())), 4),
        tpir_at_threshold=tpir,
    )
