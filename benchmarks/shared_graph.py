"""Camera workers on a large list: one graph shared by every worker (what deployments do,
``openlfr.matching.shared``) against a worker that builds its own, in the same run.

    python benchmarks/shared_graph.py [--templates 100000] [--workers 3]

Random unit templates (only memory and time are measured here; recall is benchmarks/
faiss_index.py's). Prints the runner's build time, each worker's time to be ready, its own
memory (USS: pages no other process shares) and RSS, and CPU ms per lone probe over 200 probes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np
import psutil

from openlfr.matching import WatchlistIndex
from openlfr.matching.shared import SharedGraph

MODEL = "mobilefacenet-v1"
DIMENSIONS = 192


def _units(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIMENSIONS)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _names(ids: np.ndarray) -> dict[int, str]:
    return {int(i): f"s{i}" for i in ids}


def worker(mode: str, payload: tuple, out: mp.Queue) -> None:  # type: ignore[type-arg]
    started = time.perf_counter()
    if mode == "shared":
        shared, ids = payload
        index = WatchlistIndex(None, ids, _names(ids), model=MODEL, prebuilt=shared.open())
    else:
        embeddings, ids = payload
        index = WatchlistIndex(embeddings, ids, _names(ids), model=MODEL, approximate=True)
        del embeddings, payload
    ready = time.perf_counter() - started
    probes = _units(np.random.default_rng(1), 200)
    cpu = time.process_time()
    for probe in probes:
        index.search(probe[None], top_k=1)
    cpu_ms = (time.process_time() - cpu) / len(probes) * 1000
    memory = psutil.Process().memory_full_info()
    out.put((mode, ready, memory.uss / 1e6, memory.rss / 1e6, cpu_ms))
    time.sleep(1)  # every worker is alive while the others measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--templates", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    embeddings = _units(np.random.default_rng(0), args.templates)
    ids = np.arange(args.templates)
    context = mp.get_context("spawn")
    started = time.perf_counter()
    index = WatchlistIndex(embeddings, ids, _names(ids), model=MODEL, approximate=True)
    shared = SharedGraph.of(index.graph)
    print(
        f"runner: built and shared in {time.perf_counter() - started:.1f} s, "
        f"{shared.size / 1e6:.0f} MB of shared memory"
    )
    graph_ids = index.graph_ids
    del index
    for mode, payload, count in (
        ("shared", (shared, graph_ids), args.workers),
        ("own graph", (embeddings, ids), 1),
    ):
        out = context.Queue()
        processes = [
            context.Process(target=worker, args=(mode, payload, out)) for _ in range(count)
        ]
        for process in processes:
            process.start()
        rows = [out.get() for _ in processes]
        for process in processes:
            process.join()
        for name, ready, own, rss, cpu_ms in rows:
            print(
                f"worker, {name}: ready in {ready:.2f} s, own memory {own:.0f} MB, "
                f"RSS {rss:.0f} MB, {cpu_ms:.2f} CPU ms/probe"
            )
    shared.close()


if __name__ == "__main__":
    main()
