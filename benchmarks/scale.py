"""Issue 13's figures in one command: cameras on one machine against a local 2-node Ray
cluster (benchmarks/cluster.py), then the exact index against FAISS at 10k, 100k and 1M
templates (benchmarks/faiss_index.py), each baseline beside its alternative in the same run.

    python benchmarks/scale.py [--data ../shared/data] [--quick] [--json FILE]

``--quick``: one and two cameras for 15 s, and 3k/30k templates (a few minutes); without it
about half an hour on 2 cores, most of it building the two 1M graphs (the shipped float16 one
and the float32 baseline: 12 minutes together). docs/scale.md gives the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import cluster  # noqa: E402
import faiss_index  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/data")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip", choices=["cluster", "index"], help="leave one part out")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict = {}
    if args.skip != "cluster":
        argv = ["--data", str(args.data)] + (["--cameras", "1,2", "--seconds", "15"] * args.quick)
        report["cluster"] = cluster.run(cluster.arguments(argv))
        cluster.show(report["cluster"])
    if args.skip != "index":
        argv = ["--data", str(args.data)] + ["--quick"] * args.quick
        report["index"] = faiss_index.run(faiss_index.parser().parse_args(argv))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":  # local runs spawn camera workers that re-import this module
    main()
