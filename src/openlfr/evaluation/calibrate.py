"""Threshold calibration (``openlfr calibrate --model M``): the threshold that holds a target
false-positive identification rate (FPIR) for every watchlist size, for a cosine score rule.

Method: each probe's own impostor scores, resampled. The data is a folder of identity
sub-folders from **one source** (strangers of the same source may be added). Each identity's
first image with a face is its template; every image is a probe, and its similarities to the
``m`` templates of *other* identities are its impostor scores, ``k_p(t)`` of them at or above
a threshold ``t``. A list of ``N`` people the probe is not is ``N`` of those, so

    FPIR(t, N) = mean over probes of  P(at least one of N drawn reaches t)
               = mean over probes of  1 - C(m - k_p, N) / C(m, N)

exactly, for every ``N <= m``, and the threshold for ``N`` is solved from it. Faces that
resemble many people keep their own scores, so they weigh in as they should, and no curve is
assumed for the tail. Two curves were tried for going beyond ``m`` and rejected: a normal fit
per probe, and one tail shape pooled over standardised probes, overstated the false alerts
that resampling measures at 75 subjects six to ten times (docs/calibration.md). So beyond
``m`` the threshold grows by the last measured decade's step per tenfold list (the curve
flattens, so this errs high), and the table says which sizes were measured
(``measured_up_to``). Lists are not padded with other sources' faces: padding from the
strangers' source inflates their scores by source, padding from a third source deflates them
(and the public sets here share people: UTKFace holds celebrities of CelebA).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from openlfr.vision.faces import Face

SIZES = (1, 3, 10, 30, 100, 300, 1000, 3000, 10_000, 100_000, 1_000_000)


@dataclass(eq=False)
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

    @cached_property
    def counts(self) -> np.ndarray:
        """How many impostor scores each probe has (``m``)."""
        return (~np.isnan(self.scores)).sum(axis=1).astype(np.float64)

    @property
    def list_limit(self) -> int:
        """The largest list the data measures: the fewest impostors any probe has."""
        return int(self.counts.min())

    def fpir(self, threshold: float, watchlist_size: int) -> float:
        n = float(watchlist_size)
        if n > self.list_limit:
            raise ValueError(f"{watchlist_size} subjects: the data measures {self.list_limit}")
        m = self.counts
        k = (self.scores >= threshold).sum(axis=1).astype(np.float64)
        # P(none of n drawn without replacement reaches t) = C(m - k, n) / C(m, n)
        log_none = (
            _lgamma(m - k + 1) - _lgamma(m - k - n + 1) - _lgamma(m + 1) + _lgamma(m - n + 1)
        )
        return float(np.mean(np.where(m - k >= n, -np.expm1(log_none), 1.0)))

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
    names, templates = _templates(identities)
    if len(names) < 10:
        raise ValueError(f"calibration needs 10 or more identities with a face; got {len(names)}")
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


def _templates(identities: dict[str, list[Face | None]]) -> tuple[list[str], np.ndarray]:
    """The identities with a face, and each one's template: its first face."""
    names = [n for n, faces in identities.items() if any(f is not None for f in faces)]
    first = [next(f for f in identities[n] if f is not None).embedding for n in names]
    return names, np.stack(first) if first else np.zeros((0, 0), np.float32)


@dataclass
class CalibrationResult:
    model: str
    target_fpir: float
    thresholds: dict[int, float]
    probes: int
    identities: int
    impostor_similarity_mean: float
    impostor_similarity_std: float
    measured_up_to: int = 0  # list sizes above this are extrapolated
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
    impostors = impostor_scores(identities, strangers)
    limit = impostors.list_limit
    thresholds = {
        int(n): impostors.threshold(int(n), target_fpir) for n in sorted(sizes) if n <= limit
    }
    top = impostors.threshold(limit, target_fpir)
    step = top - impostors.threshold(max(limit // 10, 1), target_fpir)  # the last decade's rise
    for n in sorted(sizes):
        if n > limit:
            thresholds[int(n)] = round(top + step * math.log10(n / limit), 3)
    names, gallery = _templates(identities)
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
        probes=len(impostors.scores),
        identities=impostors.identities,
        measured_up_to=limit,
        impostor_similarity_mean=round(float(impostors.mean.mean()), 4),
        impostor_similarity_std=round(float(np.sqrt((impostors.std**2).mean())), 4),
        tpir_at_threshold=tpir,
    )
