"""Watchlists of millions (issue 13, point 4): the exact index against FAISS HNSW and IVF.

    python benchmarks/faiss_index.py --data ../shared/data [--sizes 10000 100000 1000000]
        [--quick] [--no-ivf] [--no-graph-baseline] [--json FILE]

The list: celeba-dev split by identity (label errors fixed as in protocols.py). 75 identities
are enrolled with their first two photos (multi-template subjects), their other photos are
the mated searches; every photo of the other identities is a same-source stranger, and
UTKFace, FairFace and NASA portraits are other-source strangers. The list is padded to each
size with synthetic distractors, one template each, drawn from a Gaussian fitted to the
enrolled identities' photos (``openlfr.evaluation.distractors``; its ``realism`` figures say
how close they come to real people).

For each size and index (the shipped graph, its templates in float16, beside the float32 graph
shipped until 2026-12-03): build time, ms per query (a single probe, and batches of 64), recall
of the exact top-1 subject over every probe, memory, and at the shipped threshold for the
list's subject count: FPIR of each stranger set and TPIR of the mated searches. The exact
index's FPIR is the reference; the approximate ones may only lose alerts, never add.
MobileFaceNet's embeddings, through the evaluation cache (the first run embeds ~3,400 photos).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from openlfr.evaluation.datasets import (
    CELEBA_DEV_FIXES,
    default_cache,
    identity_folders,
    largest_faces,
    relabel,
)
from openlfr.evaluation.distractors import GaussianDistractors, PooledHits, realism
from openlfr.matching import WatchlistIndex
from openlfr.matching.approximate import GraphSettings, load_faiss
from openlfr.matching.shared import SharedGraph, can_share
from openlfr.vision.batch import list_images

MODEL = "mobilefacenet-v1"
EF_LADDER = (64, 128, 256, 512, 1024)
NPROBE_LADDER = (32, 64, 128, 256, 512, 1024)
SYNTHETIC_FROM = 10**6  # subject ids of synthetic distractors start here
RECALL_TARGET = 0.99
BATCH = 64
CPU_MS = [0.0]  # the last per_query_ms's median CPU ms of a single probe


@dataclass
class RealSets:
    enrolled: np.ndarray  # (n, d) templates of the enrolled identities
    enrolled_ids: np.ndarray  # subject id of each
    mated: np.ndarray
    mated_ids: np.ndarray
    same_source: np.ndarray  # strangers from celeba-dev
    other_source: np.ndarray  # strangers from UTKFace, FairFace, NASA
    fit: np.ndarray  # what the distractors are fitted on: the enrolled identities' photos


def load_real(data: Path, seed: int = 0) -> RealSets:
    cache = default_cache()
    faces_root = data / "faces"
    people = relabel(identity_folders(faces_root / "celeba-dev"), CELEBA_DEV_FIXES)
    found = largest_faces([p for ps in people.values() for p in ps], cache=cache, model=MODEL)
    names = sorted(people)
    rng = np.random.default_rng(seed)
    enrolled_names = set(rng.permutation(names)[: len(names) // 2])
    enrolled, enrolled_ids, mated, mated_ids, same, fit = [], [], [], [], [], []
    for sid, name in enumerate(names):
        embs = [found[p].embedding for p in people[name] if found[p] is not None]
        if name in enrolled_names:
            enrolled += embs[:2]
            enrolled_ids += [sid] * len(embs[:2])
            mated += embs[2:]
            mated_ids += [sid] * len(embs[2:])
            fit += embs
        else:
            same += embs
    other = []
    for folder in ("utkface-demographics", "fairface540", "nasa-portraits"):
        got = largest_faces(list_images([faces_root / folder]), cache=cache, model=MODEL)
        other += [f.embedding for f in got.values() if f is not None]
    cache.close()

    def stack(rows: list) -> np.ndarray:
        x = np.stack(rows).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return RealSets(
        stack(enrolled),
        np.array(enrolled_ids),
        stack(mated),
        np.array(mated_ids),
        stack(same),
        stack(other),
        stack(fit),
    )


def padded_list(
    real: RealSets, gaussian: GaussianDistractors, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Templates, subject ids and names of a list of ``size`` templates: the real enrolled
    ones plus synthetic distractors (ids from 10**6 up, one template each)."""
    n_synthetic = max(size - len(real.enrolled), 0)
    embeddings = np.vstack([real.enrolled, gaussian.sample(n_synthetic, rng)])
    ids = np.concatenate([real.enrolled_ids, SYNTHETIC_FROM + np.arange(n_synthetic)])
    return embeddings, ids, {int(i): f"s{i}" for i in np.unique(ids)}


def per_query_ms(search, probes: np.ndarray, singles: int):  # type: ignore[no-untyped-def]
    """(median ms for one probe alone, ms per probe in batches of BATCH, the batches'
    results). The median, since other work on a shared machine inflates a mean."""
    times, cpu = [], []
    for i in range(singles):
        start, start_cpu = time.perf_counter(), time.process_time()
        search(probes[i : i + 1])
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    single = float(np.median(times)) * 1e3
    # CPU time, all threads: what the search costs whatever else runs on the machine.
    CPU_MS[0] = round(float(np.median(cpu)) * 1e3, 3)
    start = time.perf_counter()
    out = [search(probes[i : i + BATCH]) for i in range(0, len(probes), BATCH)]
    batched = (time.perf_counter() - start) / len(probes) * 1e3
    return single, batched, out


def top1(results) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    ids = np.array([r[0].subject_id if r else -1 for batch in results for r in batch])
    scores = np.array([r[0].score if r else -np.inf for batch in results for r in batch])
    return ids, scores


def outcomes(
    ids: np.ndarray, scores: np.ndarray, threshold: float, parts: dict[str, slice], truth
) -> dict:  # type: ignore[no-untyped-def]
    alerts = scores >= threshold
    out = {}
    for name, part in parts.items():
        if name == "mated":
            hits = alerts[part] & (ids[part] == truth)
            out["tpir"] = round(float(hits.mean()), 4)
        else:
            # Alerts on a synthetic distractor are what a longer list adds; alerts on a real
            # enrolled subject are there at any size (some are true matches: UTKFace holds
            # people of CelebA, see protocols.py).
            on_synthetic = alerts[part] & (ids[part] >= SYNTHETIC_FROM)
            out[f"fpir_{name}"] = (
                f"{int(alerts[part].sum())} of {int(alerts[part].size)} "
                f"({int(on_synthetic.sum())} on distractors)"
            )
    return out


def bench_size(
    real: RealSets,
    gaussian: GaussianDistractors,
    size: int,
    *,
    singles: int,
    ivf: bool,
    graph_baseline: bool,
    seed: int,
) -> dict:
    rng = np.random.default_rng(seed + size)
    embeddings, ids, names = padded_list(real, gaussian, size, rng)
    probes = np.vstack([real.mated, real.same_source, real.other_source])
    order = np.random.default_rng(seed).permutation(len(probes))  # singles: a fair mix
    a, b = len(real.mated), len(real.mated) + len(real.same_source)
    parts = {"mated": slice(0, a), "same_source": slice(a, b), "other_source": slice(b, None)}
    row: dict = {"templates": len(embeddings), "subjects": len(names)}

    start = time.perf_counter()
    exact = WatchlistIndex(embeddings, ids, names, model=MODEL, approximate=False)
    row["exact"] = {"build_s": round(time.perf_counter() - start, 3)}
    threshold = exact.default_threshold()
    row["threshold"] = threshold
    single, batched, results = per_query_ms(lambda p: exact.search(p, top_k=1), probes, singles)
    truth_ids, truth_scores = top1(results)
    top = np.sort(truth_scores[a:])[::-1]
    row["exact"] |= {
        "ms_single": round(single, 3),
        "ms_batched": round(batched, 3),
        "cpu_ms_single": CPU_MS[0],
        "recall": 1.0,
        "memory_mb": round(embeddings.nbytes / 2**20, 1),
        **outcomes(truth_ids, truth_scores, threshold, parts, real.mated_ids),
        # The strangers' top scores: where FPIR 1 in 1,000 would put the threshold here.
        "stranger_top_scores": [round(float(s), 3) for s in top[:5]],
    }
    del results

    graphs = {"hnsw": GraphSettings()}  # the shipped graph: float16 templates
    if graph_baseline:  # the float32 graph shipped until 2026-12-03, in the same process
        graphs["hnsw_fp32"] = GraphSettings(half_precision=False)
    for key, settings in graphs.items():
        row[key] = bench_graph(
            embeddings,
            ids,
            names,
            settings,
            probes,
            order,
            truth_ids,
            truth_scores,
            threshold=threshold,
            parts=parts,
            mated_ids=real.mated_ids,
            singles=singles,
        )
    if ivf:
        row["ivf"] = bench_ivf(embeddings, ids, probes, truth_ids, singles, order)
    return row


def bench_graph(
    embeddings: np.ndarray,
    ids: np.ndarray,
    names: dict[int, str],
    settings: GraphSettings,
    probes: np.ndarray,
    order: np.ndarray,
    truth_ids: np.ndarray,
    truth_scores: np.ndarray,
    *,
    threshold: float,
    parts: dict[str, slice],
    mated_ids: np.ndarray,
    singles: int,
) -> dict:
    """One HNSW graph: build time, memory, and each search beam's speed, recall and outcomes
    (single probes in ``order``, a fair mix), against the exact index's top-1."""
    start = time.perf_counter()
    graph = WatchlistIndex(embeddings, ids, names, model=MODEL, approximate=True, graph=settings)
    build = time.perf_counter() - start
    assert graph.graph is not None
    default_ef = graph.graph.settings.beam(graph.template_count)
    # How far the graph's similarities (float16 templates) are from float32 ones: each probe's
    # nearest template, against its float32 row (the index orders templates by subject id).
    sims, rows = graph.graph.search(probes, 1)
    found = rows[:, 0] >= 0
    templates = embeddings[np.argsort(ids, kind="stable")[rows[found, 0]]]
    exact_sims = np.einsum("ij,ij->i", probes[found], templates)
    similarity_error = float(np.abs(sims[found, 0] - exact_sims).max())
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    ladder = []
    for ef in sorted({*EF_LADDER, default_ef}):
        graph.graph.settings = replace(graph.graph.settings, ef_search=ef)
        s1, sb, res = per_query_ms(
            lambda p, index=graph: index.search(p, top_k=1), probes[order], singles
        )
        got_ids, got_scores = top1(res)
        got_ids, got_scores = got_ids[back], got_scores[back]
        alerting = truth_scores >= threshold
        hit = got_ids[alerting] == truth_ids[alerting]
        ladder.append(
            {
                "ef_search": ef,
                "ms_single": round(s1, 3),
                "ms_batched": round(sb, 3),
                "cpu_ms_single": CPU_MS[0],
                "recall": round(float(np.mean(got_ids == truth_ids)), 4),
                # By the probes' source: celeba-dev's mated and strangers, and the other
                # sources' strangers (UTKFace, FairFace, NASA), a second protocol for recall.
                "recall_by_part": {
                    name: round(float(np.mean(got_ids[part] == truth_ids[part])), 4)
                    for name, part in parts.items()
                },
                "recall_of_alerts": round(float(hit.mean()), 4) if alerting.any() else None,
                **outcomes(got_ids, got_scores, threshold, parts, mated_ids),
            }
        )
    shared = shared_timing(graph, names, probes[order], default_ef, singles)
    return {
        "templates_dtype": str(graph.graph.templates.dtype),
        "build_s": round(build, 1),
        "memory_mb": round(graph.graph.memory_bytes / 2**20, 1),
        # Of it, on 2 MiB pages (approximate.huge_pages; 0 where the system has none).
        "huge_page_mb": round(graph.graph.huge_page_bytes / 2**20, 1),
        "max_similarity_error": round(similarity_error, 6),
        "default_ef_search": default_ef,
        "at_default": next(r for r in ladder if r["ef_search"] == default_ef),
        "shared": shared,
        "ladder": ladder,
    }


def shared_timing(
    graph: WatchlistIndex, names: dict[int, str], probes: np.ndarray, ef: int, singles: int
) -> dict | None:
    """Lone probes at beam ``ef`` through the copy a deployment's cameras search (sealed
    anonymous memory, matching/shared.py, on the pages the kernel gives shared memory), timed
    probe by probe in turn with the graph in this process's own (huge-page) memory."""
    if not can_share():
        return None
    assert graph.graph is not None
    shared = SharedGraph.of(graph.graph)
    try:
        mapped = WatchlistIndex(None, graph.graph_ids, names, model=MODEL, prebuilt=shared.open())
        assert mapped.graph is not None
        for index in (graph, mapped):  # the ladder left the last beam it tried
            index.graph.settings = replace(index.graph.settings, ef_search=ef)  # type: ignore[union-attr]
        own, in_shared = [], []
        for i in range(singles):
            for index, times in ((graph, own), (mapped, in_shared)):
                start = time.perf_counter()
                index.search(probes[i : i + 1], top_k=1)
                times.append(time.perf_counter() - start)
        same = graph.search(probes[:singles], top_k=1) == mapped.search(probes[:singles], top_k=1)
        return {
            "ef_search": ef,
            "ms_single": round(float(np.median(in_shared)) * 1e3, 3),
            "ms_single_own_memory": round(float(np.median(own)) * 1e3, 3),
            "same_answers": same,
        }
    finally:
        shared.close()


def bench_ivf(embeddings, ids, probes, truth_ids, singles, order) -> dict:  # type: ignore[no-untyped-def]
    """FAISS IVF-Flat (inner product), nlist = 4 sqrt(n), trained on up to 64 per list."""
    faiss = load_faiss()
    n, d = embeddings.shape
    nlist = int(4 * np.sqrt(n))
    start = time.perf_counter()
    quantiser = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantiser, d, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)
    index.train(embeddings[sample])
    index.add(embeddings)
    build = time.perf_counter() - start
    ladder = []
    for nprobe in NPROBE_LADDER:
        if nprobe > nlist:
            continue
        index.nprobe = nprobe

        def search(p):  # type: ignore[no-untyped-def]
            return index.search(p, 1)[1][:, 0]

        s1, sb, res = per_query_ms(search, probes[order], singles)
        got = ids[np.concatenate(res)]
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        ladder.append(
            {
                "nprobe": nprobe,
                "ms_single": round(s1, 3),
                "ms_batched": round(sb, 3),
                "recall": round(float(np.mean(got[back] == truth_ids)), 4),
            }
        )
    memory = n * d * 4 + n * 8 + nlist * d * 4
    return {
        "nlist": nlist,
        "build_s": round(build, 1),
        "memory_mb": round(memory / 2**20, 1),
        "ladder": ladder,
    }


def pooled_fpir(
    real: RealSets,
    gaussian: GaussianDistractors,
    pool: int,
    sizes: list[int],
    *,
    seed: int,
    target: float = 0.001,
    floor: float = 0.5,
) -> dict:
    """FPIR at each list size's shipped threshold, estimated on a pool of synthetic distractors
    larger than one list (``evaluation.distractors.PooledHits``), for each stranger set; also
    the threshold at which the estimate meets ``target``."""
    from openlfr.vision.models.calibration import load_calibration

    calibration = load_calibration(MODEL)
    strangers = {"same_source": real.same_source, "other_source": real.other_source}
    probes = np.vstack(list(strangers.values()))
    owner_parts = np.repeat(np.arange(len(strangers)), [len(x) for x in strangers.values()])
    hits = PooledHits.sample(
        gaussian,
        probes,
        real.enrolled,
        real_subjects=len(np.unique(real.enrolled_ids)),
        pool=pool,
        rng=np.random.default_rng(seed + 7),
        floor=floor,
        batch=BATCH,
    )

    def fpir(t: float, n: int, mask: np.ndarray | None = None) -> float:
        alert = hits.alerts(t, n)
        return float(alert[mask].mean() if mask is not None else alert.mean())

    out = {"pool": pool, "strangers": len(probes), "sizes": []}
    for n in sizes:
        t = calibration.threshold(n)
        low, high = floor, 1.0
        for _ in range(40):  # the smallest threshold whose estimated FPIR is within target
            mid = (low + high) / 2
            low, high = (low, mid) if fpir(mid, n) <= target else (mid, high)
        out["sizes"].append(
            {
                "subjects": n,
                "shipped_threshold": t,
                "fpir": round(fpir(t, n), 5),
                **{
                    f"fpir_{name}": round(fpir(t, n, owner_parts == j), 5)
                    for j, name in enumerate(strangers)
                },
                "threshold_for_target": round(high, 4),
            }
        )
    return out


def cheapest(ladder: list[dict]) -> dict | None:
    """The fastest single-probe setting that reaches the recall target."""
    good = [r for r in ladder if r["recall"] >= RECALL_TARGET]
    return min(good, key=lambda r: r["ms_single"]) if good else None


def run(args: argparse.Namespace) -> dict:
    """The whole benchmark; the dict ``--json`` writes (benchmarks/scale.py calls this)."""
    faiss = load_faiss()
    if faiss is None:
        raise SystemExit("faiss-cpu is not installed: pip install faiss-cpu")
    real = load_real(Path(args.data), args.seed)
    gaussian = GaussianDistractors.fit(real.fit)
    synthetic = gaussian.sample(len(real.enrolled), np.random.default_rng(args.seed))
    report: dict = {
        "model": MODEL,
        "threads": faiss.omp_get_max_threads(),
        "real": {
            "enrolled_templates": len(real.enrolled),
            "enrolled_subjects": len(np.unique(real.enrolled_ids)),
            "mated": len(real.mated),
            "same_source_strangers": len(real.same_source),
            "other_source_strangers": len(real.other_source),
            "distractors_fitted_on": gaussian.fitted_on,
        },
        "realism": {
            "same_source_strangers": realism(real.same_source, real.enrolled, synthetic),
            "other_source_strangers": realism(real.other_source, real.enrolled, synthetic),
        },
        "sizes": [],
    }
    sizes = args.sizes or ([3000, 30000] if args.quick else [10_000, 100_000, 1_000_000])
    for size in sizes:
        t0 = time.perf_counter()
        row = bench_size(
            real,
            gaussian,
            size,
            singles=args.singles,
            ivf=not args.no_ivf,
            graph_baseline=not args.no_graph_baseline,
            seed=args.seed,
        )
        for key in ("hnsw", "hnsw_fp32"):
            if key in row:
                row[key]["cheapest"] = cheapest(row[key]["ladder"])
        if "ivf" in row:
            row["ivf"]["cheapest"] = cheapest(row["ivf"]["ladder"])
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        report["sizes"].append(row)
        print(summary(row), flush=True)
    if not args.no_pool:
        pool = args.pool or max(sizes)
        fpir_sizes = sorted({1000, *(s for s in (10_000, 100_000, 1_000_000) if s <= pool), *sizes})
        report["pooled_fpir"] = pooled_fpir(real, gaussian, pool, fpir_sizes, seed=args.seed)
        for r in report["pooled_fpir"]["sizes"]:
            print(
                f"  pooled FPIR at {r['subjects']:>9,} subjects, threshold "
                f"{r['shipped_threshold']}: "
                f"{r['fpir']:.5f} (same-source {r['fpir_same_source']:.5f}, other "
                f"{r['fpir_other_source']:.5f}); {r['threshold_for_target']} would give 0.001",
                flush=True,
            )
    return report


def summary(row: dict) -> str:
    e = row["exact"]
    lines = [
        f"{row['templates']:>9,} templates ({row['subjects']:,} subjects), threshold "
        f"{row['threshold']}:",
        f"  exact  build {e['build_s']:.2f} s  {e['ms_single']:.2f} ms/probe alone, "
        f"{e['ms_batched']:.3f} batched  {e['memory_mb']} MB  TPIR {e['tpir']}  "
        f"FPIR same-source {e['fpir_same_source']}, other {e['fpir_other_source']}",
    ]
    for key, label in (("hnsw", "HNSW fp16"), ("hnsw_fp32", "HNSW fp32")):
        if key not in row:
            continue
        h, hd, hc = row[key], row[key]["at_default"], row[key]["cheapest"] or {}
        lines.append(
            f"  {label}  build {h['build_s']} s  {h['memory_mb']} MB  shipped beam "
            f"{h['default_ef_search']}: recall {hd['recall']} {hd['ms_single']} ms alone "
            f"(CPU {hd['cpu_ms_single']}), {hd['ms_batched']} batched  TPIR {hd['tpir']}  "
            f"FPIR {hd['fpir_same_source']}, {hd['fpir_other_source']}; cheapest at recall "
            f"{RECALL_TARGET}: beam {hc.get('ef_search')}, {hc.get('ms_single')} ms; "
            f"similarity error {h['max_similarity_error']}; recall by probes' source "
            f"{hd['recall_by_part']}"
        )
        if h["shared"]:
            sh = h["shared"]
            lines.append(
                f"    shared by a deployment's cameras (matching/shared.py): {sh['ms_single']} "
                f"ms alone, against {sh['ms_single_own_memory']} in own memory, in turn; "
                f"same answers: {sh['same_answers']}"
            )
    if "hnsw_fp32" in row:
        fp32, fp16 = row["hnsw_fp32"]["at_default"], row["hnsw"]["at_default"]
        ratio = fp32["ms_single"] / fp16["ms_single"]
        lines.append(f"  fp16 graph against fp32, lone probe at the shipped beam: {ratio:.2f}x")
    if "ivf" in row:
        i, ic = row["ivf"], row["ivf"]["cheapest"] or {}
        lines.append(
            f"  IVF{i['nlist']} build {i['build_s']} s  nprobe {ic.get('nprobe')}: recall "
            f"{ic.get('recall')} {ic.get('ms_single')} ms alone, {ic.get('ms_batched')} "
            f"batched  {i['memory_mb']} MB"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--sizes", type=int, nargs="*", help="templates (default 10k 100k 1M)")
    p.add_argument("--quick", action="store_true", help="3k and 30k templates only")
    p.add_argument("--singles", type=int, default=200, help="probes timed one at a time")
    p.add_argument("--no-ivf", action="store_true", help="skip the IVF comparison")
    p.add_argument(
        "--no-graph-baseline", action="store_true", help="skip the float32 graph's comparison"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--pool", type=int, help="distractors behind the pooled FPIR (default: max size)"
    )
    p.add_argument("--no-pool", action="store_true", help="skip the pooled FPIR estimate")
    p.add_argument("--json", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    report = run(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["realism"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
