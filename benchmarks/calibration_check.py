"""Does the calibrated threshold hold FPIR at 1 in 1,000 on faces it was not calibrated on?
(issue 12, point 6). Two checks, neither of which the calibration saw:

    python benchmarks/calibration_check.py --data ../shared/data [--model mobilefacenet-v1]
        [--splits 10] [--pool 100000] [--json FILE]

D  held-out identities, one source. celeba-dev (label errors corrected) is split by identity
   into a calibration half and a check half, ``--splits`` times. ``openlfr calibrate``'s method
   runs on the calibration half alone. On the check half:
   - real lists: every photo is searched against one random photo of each *other* identity of
     the check half (74 people), at the calibration's threshold for 74;
   - padded lists: the check half's people are split again into a list (one random photo
     each) and strangers (all their photos); the list is padded to 1,000 ... 1,000,000 subjects
     with synthetic distractors fitted to the calibration half's photos (``evaluation.
     distractors``; a fit to the 37 listed people alone is too narrow: its distractors crowd
     round them), and FPIR estimated over a pool of ``--pool`` distractors, as
     benchmarks/faiss_index.py does. A different route beyond the data than the calibration's
     tail curve.
E  the shipped calibration, other-source strangers. UTKFace, FairFace and NASA portraits (none
   of them in the calibration) against all of celeba-dev's people, one random photo each,
   padded with distractors fitted to celeba-dev: FPIR at each size's shipped threshold.

MobileFaceNet's (or ``--model``'s) embeddings come through the evaluation cache.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from openlfr.evaluation.calibrate import calibrate
from openlfr.evaluation.datasets import (
    CELEBA_DEV_FIXES,
    default_cache,
    identity_folders,
    largest_faces,
    relabel,
)
from openlfr.evaluation.distractors import GaussianDistractors, PooledHits
from openlfr.vision.batch import list_images
from openlfr.vision.models import get_model
from openlfr.vision.models.calibration import load_calibration

PADDED = (1000, 10_000, 100_000, 1_000_000)
TARGET = 0.001
FLOOR = 0.4  # distractor similarities below this never matter at these thresholds


def load(data: Path, model: str):  # type: ignore[no-untyped-def]
    """celeba-dev as {identity: [faces]} and the other sources' faces, by the model."""
    cache = default_cache()
    root = data / "faces"
    people = relabel(identity_folders(root / "celeba-dev"), CELEBA_DEV_FIXES)
    found = largest_faces([p for ps in people.values() for p in ps], cache=cache, model=model)
    celeba = {n: [found[p] for p in ps if found[p] is not None] for n, ps in people.items()}
    celeba = {n: faces for n, faces in celeba.items() if faces}
    others = {}
    for folder in ("utkface-demographics", "fairface540", "nasa-portraits"):
        got = largest_faces(list_images([root / folder]), cache=cache, model=model)
        others[folder] = unit_rows([f.embedding for f in got.values() if f is not None])
    cache.close()
    return celeba, others


def unit_rows(rows: list) -> np.ndarray:
    x = np.stack(rows).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def padded_fpir(
    list_rows: np.ndarray,
    strangers: np.ndarray,
    fit: np.ndarray,
    thresholds: dict[int, float],
    pool: int,
    rng: np.random.Generator,
) -> dict[int, tuple[float, int]]:
    """Estimated FPIR of ``strangers`` against ``list_rows`` (one per subject) padded with
    distractors fitted to ``fit`` to each size in ``thresholds`` ({size: threshold}), over a
    pool of ``pool`` (``evaluation.distractors.PooledHits``), with how many strangers had a
    subject or a distractor at or above the threshold (the events behind it)."""
    hits = PooledHits.sample(
        GaussianDistractors.fit(fit),
        strangers,
        list_rows,
        real_subjects=len(list_rows),
        pool=pool,
        rng=rng,
        floor=FLOOR,
    )
    return {
        n: (float(hits.alerts(t, n).mean()), hits.strangers_hit(t)) for n, t in thresholds.items()
    }


def held_out(celeba: dict, model: str, splits: int, pool: int, seed: int) -> dict:
    """Protocol D, pooled over the splits."""
    rng = np.random.default_rng(seed)
    names = sorted(celeba)
    real_alerts = real_searches = 0
    padded: dict[int, list[float]] = {n: [] for n in PADDED}
    events: dict[int, int] = dict.fromkeys(PADDED, 0)
    strangers_seen = 0
    stranger_counts: list[int] = []
    thresholds_seen: dict[int, list[float]] = {}
    for _ in range(splits):
        order = rng.permutation(len(names))
        half = len(names) // 2
        calibration_half = {names[i]: celeba[names[i]] for i in order[:half]}
        check = [names[i] for i in order[half:]]
        real_list = len(check) - 1
        table = calibrate(calibration_half, model=model, sizes=[real_list, *PADDED]).thresholds
        for n, t in table.items():
            thresholds_seen.setdefault(n, []).append(t)
        # Real lists: every photo against one random photo of each other check identity.
        photos = [unit_rows([f.embedding for f in celeba[n]]) for n in check]
        templates = np.stack([p[rng.integers(len(p))] for p in photos])
        for k, rows in enumerate(photos):
            sims = rows @ np.delete(templates, k, axis=0).T
            real_alerts += int((sims.max(axis=1) >= table[real_list]).sum())
            real_searches += len(rows)
        # Padded lists: a list half and a stranger half of the check identities.
        listed = rng.permutation(len(check))
        list_people = [photos[i] for i in listed[: len(check) // 2]]
        stranger_rows = np.vstack([photos[i] for i in listed[len(check) // 2 :]])
        list_rows = np.stack([p[rng.integers(len(p))] for p in list_people])
        got = padded_fpir(
            list_rows,
            stranger_rows,
            unit_rows([f.embedding for n in calibration_half for f in celeba[n]]),
            {n: table[n] for n in PADDED},
            pool,
            rng,
        )
        for n, (fpir, hits) in got.items():
            padded[n].append(fpir * len(stranger_rows))
            events[n] += hits
        strangers_seen += len(stranger_rows)
        stranger_counts.append(len(stranger_rows))
    return {
        "splits": splits,
        "real_lists": {
            "subjects": real_list,
            "threshold_mean": round(float(np.mean(thresholds_seen[real_list])), 4),
            "searches": real_searches,
            "alerts": real_alerts,
            "fpir": round(real_alerts / real_searches, 5),
        },
        "padded_lists": {
            str(n): {
                "threshold_mean": round(float(np.mean(thresholds_seen[n])), 4),
                "threshold_range": [min(thresholds_seen[n]), max(thresholds_seen[n])],
                "splits_over_target": int(
                    sum(
                        f > TARGET * len_s
                        for f, len_s in zip(padded[n], stranger_counts, strict=True)
                    )
                ),
                "strangers": strangers_seen,
                "strangers_with_any_hit": events[n],
                "fpir": round(float(np.sum(padded[n]) / strangers_seen), 5),
            }
            for n in PADDED
        },
    }


def other_sources(celeba: dict, others: dict, model: str, pool: int, seed: int) -> dict:
    """Protocol E at the shipped thresholds."""
    rng = np.random.default_rng(seed + 1)
    calibration = load_calibration(model)
    photos = [unit_rows([f.embedding for f in faces]) for faces in celeba.values()]
    list_rows = np.stack([p[rng.integers(len(p))] for p in photos])
    strangers = np.vstack(list(others.values()))
    part = np.repeat(np.arange(len(others)), [len(x) for x in others.values()])
    thresholds = {n: calibration.threshold(n) for n in PADDED}
    out = {}
    for j, name in enumerate(others):
        got = padded_fpir(list_rows, strangers[part == j], np.vstack(photos), thresholds, pool, rng)
        out[name] = {
            str(n): {"fpir": round(f, 5), "strangers_with_any_hit": h} for n, (f, h) in got.items()
        }
    out["thresholds"] = {str(n): t for n, t in thresholds.items()}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--model", default="mobilefacenet-v1")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = get_model(args.model).name
    celeba, others = load(args.data, model)
    report = {
        "model": model,
        "target_fpir": TARGET,
        "D_held_out_identities": held_out(celeba, model, args.splits, args.pool, args.seed),
        "E_other_source_strangers": other_sources(celeba, others, model, args.pool, args.seed),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
