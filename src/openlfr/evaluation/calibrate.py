"""Threshold calibration (``openlfr calibrate --model M``): the threshold that holds a target
false-positive identification rate (FPIR) for every watchlist size, for a cosine score rule.

Method: each probe's own impostor distribution, measured, with a tail fitted beyond the data.
The data is a folder of identity sub-folders from **one source** (strangers of the same source
may be added). Every image with a face is a probe, and every photo of every *other* identity is
one of its impostors: a watchlisted person's template may be any photo of them. ``q_p(t)`` is
the share of the other identities that reach ``t``, each identity counted once (a share of its
photos). A list of ``N`` people the probe is not alerts unless none of them reaches ``t``:

    FPIR(t, N) = mean over probes of  1 - (1 - q_p(t))^N

Faces that resemble many people keep their own rate, so they weigh in as they should.

Measured, ``q_p`` cannot resolve less than one identity's photo (about 1 in 1,700 here), which
is what lists of thousands need. So the upper tail is modelled too: a generalised Pareto curve
fitted to the top ``TAIL_FROM`` (0.1%) of all impostor pair scores, which is what extreme-value
theory says such exceedances follow, scaled by each probe's own rate at the tail's start:
``q_p(t) = q_p(u) G(t) / G(u)``. The threshold for ``N`` is the higher of the two estimates'.
Where both reach, they agree within the counting noise (docs/calibration.md); beyond, the curve
decides, and the table says which sizes the data holds that many distinct people for
(``measured_up_to``).

Until 2026-12 only each identity's first photo was a template, and lists beyond the data grew
by the last decade's step: that understated FPIR about twofold at 100 to 1,000 subjects, which
the FAISS benchmark's padded lists showed. Lists are not padded with other sources' faces:
padding from the strangers' source inflates their scores by source, padding from a third source
deflates them (and the public sets here share people: UTKFace holds celebrities of CelebA).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from openlfr.vision.faces import Face

SIZES = (1, 3, 10, 30, 100, 300, 1000, 3000, 10_000, 100_000, 1_000_000)
TAIL_FROM = 1e-3  # the share of impostor pair scores the tail curve is fitted to


@dataclass(frozen=True)
class Tail:
    """A generalised Pareto curve over the impostor pair scores above ``start``."""

    start: float  # u
    shape: float  # xi (negative: the scores have an upper end)
    scale: float  # sigma
    exceedances: int  # pair scores it was fitted to

    def survival(self, t: float) -> float:
        """G(t) / G(u): the share of scores above ``u`` that also reach ``t``."""
        from scipy.stats import genpareto

        return float(genpareto.sf(max(t - self.start, 0.0), self.shape, 0.0, self.scale))


@dataclass(eq=False)
class ImpostorScores:
    """Each probe's similarities to every photo of the identities it is not (NaN for its own)."""

    scores: np.ndarray  # (probes, photos), float32
    weights: np.ndarray  # (photos,): 1 / that identity's photos, so each identity counts once
    others: np.ndarray  # (probes,): how many identities each probe is not
    identities: int

    @property
    def mean(self) -> np.ndarray:
        return np.nanmean(self.scores, axis=1)

    @property
    def std(self) -> np.ndarray:
        return np.nanstd(self.scores, axis=1)

    @property
    def list_limit(self) -> int:
        """The largest list of distinct people the data holds for every probe."""
        return int(self.others.min())

    def share(self, threshold: float) -> np.ndarray:
        """``q_p(t)``, measured: the share of the other identities reaching ``threshold``."""
        return ((self.scores >= threshold) @ self.weights) / self.others

    @cached_property
    def tail(self) -> Tail:
        from scipy.stats import genpareto

        pairs = self.scores[~np.isnan(self.scores)].astype(np.float64)
        start = float(np.quantile(pairs, 1 - TAIL_FROM))
        over = pairs[pairs > start] - start
        shape, _, scale = genpareto.fit(over, floc=0.0)
        return Tail(start, float(shape), float(scale), len(over))

    @cached_property
    def _share_at_tail(self) -> np.ndarray:
        return self.share(self.tail.start)

    def fpir_measured(self, threshold: float, watchlist_size: int) -> float:
        return _fpir(self.share(threshold), watchlist_size)

    def fpir_modelled(self, threshold: float, watchlist_size: int) -> float:
        if threshold <= self.tail.start:
            return self.fpir_measured(threshold, watchlist_size)
        return self._fpir_tail(threshold, watchlist_size)

    def fpir(self, threshold: float, watchlist_size: int) -> float:
        """The higher of the measured and the modelled estimate (below the tail's start the
        two are one, so it is measured once)."""
        measured = self.fpir_measured(threshold, watchlist_size)
        if threshold <= self.tail.start:
            return measured
        return max(measured, self._fpir_tail(threshold, watchlist_size))

    def _fpir_tail(self, threshold: float, watchlist_size: int) -> float:
        return _fpir(self._share_at_tail * self.tail.survival(threshold), watchlist_size)

    def threshold(self, watchlist_size: int, target_fpir: float) -> float:
        """The lowest threshold (rounded up to 0.001) whose FPIR is at most the target."""
        low, high = float(np.nanmin(self.scores)), 1.0
        for _ in range(30):  # FPIR falls as the threshold rises: bisection
            mid = (low + high) / 2
            if self.fpir(mid, watchlist_size) > target_fpir:
                low = mid
            else:
                high = mid
        return round(float(np.ceil(high * 1000) / 1000), 3)


def _fpir(share: np.ndarray, watchlist_size: int) -> float:
    """Mean over probes of 1 - (1 - q_p)^N, computed stably for tiny q_p and large N."""
    with np.errstate(divide="ignore"):  # a share of 1 is log(0): the list surely alerts
        return float(np.mean(-np.expm1(watchlist_size * np.log1p(-np.minimum(share, 1.0)))))


def impostor_scores(
    identities: dict[str, list[Face | None]], strangers: list[Face | None] = ()
) -> ImpostorScores:
    """The impostor scores of every face of ``identities`` (against every photo of the other
    identities) and of every stranger (against all of them)."""
    names = [n for n, faces in identities.items() if any(f is not None for f in faces)]
    if len(names) < 10:
        raise ValueError(f"calibration needs 10 or more identities with a face; got {len(names)}")
    photos, owner = [], []
    for k, name in enumerate(names):
        for face in identities[name]:
            if face is not None:
                photos.append(face.embedding)
                owner.append(k)
    gallery = np.stack(photos).astype(np.float32)
    probe_owner = list(owner) + [-1 for face in strangers if face is not None]
    probes = [*photos, *(face.embedding for face in strangers if face is not None)]
    sim = np.stack(probes).astype(np.float32) @ gallery.T
    mine = np.array(probe_owner)
    sim[mine[:, None] == np.array(owner)[None, :]] = np.nan
    per_identity = np.bincount(owner)
    weights = (1.0 / per_identity[owner]).astype(np.float32)
    others = np.where(mine >= 0, len(names) - 1, len(names)).astype(np.float64)
    return ImpostorScores(sim, weights, others, len(names))


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
    measured_up_to: int = 0  # list sizes above this are modelled by the tail alone
    tail: dict = field(default_factory=dict)  # the fitted curve: start, shape, scale
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
    thresholds = {int(n): impostors.threshold(int(n), target_fpir) for n in sorted(sizes)}
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
        measured_up_to=impostors.list_limit,
        tail={
            k: round(v, 5) if isinstance(v, float) else v for k, v in asdict(impostors.tail).items()
        },
        impostor_similarity_mean=round(float(impostors.mean.mean()), 4),
        impostor_similarity_std=round(float(np.sqrt((impostors.std**2).mean())), 4),
        tpir_at_threshold=tpir,
    )
