"""Demographic differentials: error rates per group with confidence intervals, and a test of
whether the groups differ. Plain numpy on search outcomes; no images.

    >>> s = Searches(scores, correct, mated, person, people=names, groups={"sex": sexes})
    >>> rates = group_rates(s, "sex", [3.0, 3.9], mated=False)   # FPIR of the strangers
    >>> rates["F"][0].rate, rates["F"][0].ci
    (0.012, (0.004, 0.025))
    >>> differential(rates)[0].ratio                            # worst group / best group
    2.5
    >>> scan = significance_scan(s, "sex", np.arange(2, 5, 0.1))
    >>> lowest_non_significant(scan)                             # NPL-style figure
    3.4

Errors. A non-mated search (a stranger) errs when its best score reaches the threshold: a false
alert, counted in the FPIR. A mated search (a watchlisted person) errs when it does not alert on
the right person (score below the threshold, or the wrong rank-1 candidate): a miss, counted in
the FNIR = 1 - TPIR.

Why resample people. A person searched several times (several photos, or several calibration
rounds) gives correlated outcomes; resampling searches would understate the uncertainty. The
bootstrap therefore draws people with replacement within each group and keeps all their searches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

LEVEL = 0.95
BOOTSTRAP = 2000
PERMUTATIONS = 2000


@dataclass
class Searches:
    """One entry per search, and each person's group under each attribute (None: unlabelled)."""

    scores: np.ndarray  # best open-set score; -inf where no face was found
    correct: np.ndarray  # bool: rank-1 candidate is the searched person (mated searches)
    mated: np.ndarray  # bool
    person: np.ndarray  # int: index into ``people``
    people: list[str] = field(default_factory=list)
    groups: dict[str, list[str | None]] = field(default_factory=dict)

    def errors(self, thresholds: np.ndarray) -> np.ndarray:
        """``(searches, thresholds)`` bool: a false alert (non-mated) or a miss (mated)."""
        t = np.asarray(thresholds, dtype=float)[None, :]
        alert = self.scores[:, None] >= t
        return np.where(self.mated[:, None], ~(alert & self.correct[:, None]), alert)


@dataclass(frozen=True)
class GroupRate:
    """One group's error rate at one threshold. ``ci`` is a bootstrap percentile interval over
    people; where the group has no error at all the bootstrap cannot vary, so ``ci`` is then
    the exact binomial interval over its people (upper bound 1 - (0.025)^(1/people))."""

    group: str
    threshold: float
    people: int
    searches: int
    errors: int
    rate: float
    ci: tuple[float, float]
    ci_method: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Differential:
    """Worst and best group at one threshold; ``ratio`` is None when the best group has no
    errors (any ratio would be infinite, which says more about the sample than the system).
    ``ratio_to_best_upper`` then divides by the best group's 95% upper bound instead: a
    cautious figure, "at least about this much" (None when no group has an error)."""

    threshold: float
    worst: str
    worst_rate: float
    best: str
    best_rate: float
    ratio: float | None
    ratio_to_best_upper: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def per_person(s: Searches, thresholds: np.ndarray, mated: bool) -> tuple[np.ndarray, ...]:
    """People with searches of the kind asked for: their indices, error counts ``(P, T)`` and
    search counts ``(P,)``."""
    keep = s.mated == mated
    errors = s.errors(thresholds)[keep].astype(np.int64)
    person = s.person[keep]
    ids, inverse = np.unique(person, return_inverse=True)
    counts = np.zeros((len(ids), errors.shape[1]), dtype=np.int64)
    np.add.at(counts, inverse, errors)
    return ids, counts, np.bincount(inverse, minlength=len(ids))


def group_rates(
    s: Searches,
    attribute: str | None,
    thresholds: list[float] | np.ndarray,
    *,
    mated: bool,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> dict[str, list[GroupRate]]:
    """``{group: [rate at each threshold]}``: FPIR (``mated=False``) or FNIR (``mated=True``).

    ``attribute=None`` gives one group, ``"all"``. People without a label are left out."""
    thresholds = np.asarray(thresholds, dtype=float)
    ids, errors, searches = per_person(s, thresholds, mated)
    labels = ["all"] * len(s.people) if attribute is None else s.groups[attribute]
    person_group = np.array([labels[i] for i in ids], dtype=object)
    rng = np.random.default_rng(seed)
    alpha = 1 - LEVEL
    result: dict[str, list[GroupRate]] = {}
    for group in sorted({g for g in person_group if g is not None}, key=group_order):
        members = np.flatnonzero(person_group == group)
        e, n = errors[members], searches[members]
        total_e, total_n = e.sum(axis=0), int(n.sum())
        # Resample people: a multinomial draw gives how often each person is picked.
        weights = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), bootstrap)
        boot = (weights @ e) / np.maximum(weights @ n, 1)[:, None]
        low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
        rows = []
        for j, t in enumerate(thresholds):
            if total_e[j] == 0:
                ci, method = (0.0, 1 - (alpha / 2) ** (1 / len(members))), "exact (no errors)"
            elif total_e[j] == total_n:
                ci, method = ((alpha / 2) ** (1 / len(members)), 1.0), "exact (all errors)"
            else:
                ci, method = (float(low[j]), float(high[j])), "bootstrap over people"
            rows.append(
                GroupRate(
                    group=str(group),
                    threshold=round(float(t), 4),
                    people=len(members),
                    searches=total_n,
                    errors=int(total_e[j]),
                    rate=float(total_e[j] / total_n) if total_n else 0.0,
                    ci=(round(ci[0], 5), round(ci[1], 5)),
                    ci_method=method,
                )
            )
        result[str(group)] = rows
    return result


def group_order(name: object) -> tuple[float, str]:
    """Groups in natural order: age bands by their first number (3-9 before 10-19), then text."""
    text = str(name)
    digits = text.split("-")[0].rstrip("+")
    return (float(digits) if digits.isdigit() else float("inf"), text)


def differential(rates: dict[str, list[GroupRate]]) -> list[Differential]:
    """Worst over best group at each threshold (ties: worst is the first group, best the last)."""
    if not rates:
        return []
    out = []
    for j in range(len(next(iter(rates.values())))):
        at = [rows[j] for rows in rates.values()]
        worst = max(at, key=lambda r: r.rate)
        best = min(reversed(at), key=lambda r: r.rate)  # on a tie, not the worst group itself
        out.append(
            Differential(
                threshold=worst.threshold,
                worst=worst.group,
                worst_rate=worst.rate,
                best=best.group,
                best_rate=best.rate,
                ratio=round(worst.rate / best.rate, 3) if best.rate > 0 else None,
                ratio_to_best_upper=round(worst.rate / best.ci[1], 3)
                if best.rate == 0 and worst.rate > 0
                else None,
            )
        )
    return out


def chi_square(errors: np.ndarray, searches: np.ndarray) -> np.ndarray:
    """Pearson's chi-square of a groups x (error, no error) table, vectorised.

    ``errors`` and ``searches`` are ``(..., groups)``; the result is ``(...)``. Zero when nobody
    or everybody errs (no differential can show)."""
    errors = errors.astype(float)
    searches = searches.astype(float)
    total_e = errors.sum(axis=-1, keepdims=True)
    total_n = searches.sum(axis=-1, keepdims=True)
    share = np.divide(total_e, total_n, out=np.zeros_like(total_e), where=total_n > 0)
    expect_e = searches * share
    expect_ok = searches - expect_e
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expect_e > 0, (errors - expect_e) ** 2 / expect_e, 0.0) + np.where(
            expect_ok > 0, ((searches - errors) - expect_ok) ** 2 / expect_ok, 0.0
        )
    return terms.sum(axis=-1)


@dataclass(frozen=True)
class Significance:
    threshold: float
    errors: int
    chi_square: float
    p_value: float

    def as_dict(self) -> dict:
        return asdict(self)


def significance_scan(
    s: Searches,
    attribute: str,
    thresholds: list[float] | np.ndarray,
    *,
    mated: bool = False,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> list[Significance]:
    """At each threshold, do the groups' error rates differ more than chance would make them?

    A permutation test: the chi-square statistic of the groups x (error, no error) table is
    compared with its distribution when people's group labels are shuffled. With one search per
    person this is the Monte Carlo form of Fisher's exact test for any number of groups, and
    stays valid with the handful of false alerts that an operating threshold leaves (where the
    chi-square approximation does not); with several searches per person it keeps each
    person's searches together, as the bootstrap does."""
    thresholds = np.asarray(thresholds, dtype=float)
    ids, errors, searches = per_person(s, thresholds, mated)
    labels = s.groups[attribute]
    labelled = np.array([labels[i] is not None for i in ids], dtype=bool)
    ids, errors, searches = ids[labelled], errors[labelled], searches[labelled]
    names = sorted({labels[i] for i in ids}, key=group_order)
    code = np.array([names.index(labels[i]) for i in ids])
    k = len(names)
    if k < 2:
        return [Significance(round(float(t), 4), 0, 0.0, 1.0) for t in thresholds]

    def table(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # codes: (B, P) -> group error sums (B, T, k) and search sums (B, 1, k)
        onehot = (codes[:, :, None] == np.arange(k)).astype(float)  # (B, P, k)
        per_group = onehot.transpose(0, 2, 1)  # (B, k, P): one matrix product per chunk
        e = (per_group @ errors.astype(float)).transpose(0, 2, 1)
        n = (per_group @ searches.astype(float))[:, None, :]
        return e, n

    observed = chi_square(*table(code[None, :]))[0]
    rng = np.random.default_rng(seed)
    exceed = np.zeros(len(thresholds))
    for start in range(0, permutations, 250):  # chunks keep memory at a few tens of MB
        b = min(250, permutations - start)
        shuffled = np.stack([rng.permutation(code) for _ in range(b)])
        exceed += (chi_square(*table(shuffled)) >= observed[None, :] - 1e-9).sum(axis=0)
    p = (exceed + 1) / (permutations + 1)
    total = errors.sum(axis=0)
    out = []
    for j, t in enumerate(thresholds):
        no_test = total[j] == 0 or total[j] == searches.sum()
        out.append(
            Significance(
                threshold=round(float(t), 4),
                errors=int(total[j]),
                chi_square=round(float(observed[j]), 3),
                p_value=1.0 if no_test else round(float(p[j]), 4),
            )
        )
    return out


def lowest_non_significant(scan: list[Significance], alpha: float = 0.05) -> float | None:
    """The lowest threshold at and above which no scanned threshold shows a significant
    difference (None when the highest one still does). Higher thresholds leave fewer false
    alerts, so "not significant" there is also "too few errors to tell": read it with the
    counts beside it."""
    lowest = None
    for row in sorted(scan, key=lambda r: r.threshold, reverse=True):
        if row.p_value < alpha:
            break
        lowest = row.threshold
    return lowest
