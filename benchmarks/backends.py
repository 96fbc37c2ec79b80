"""Before and after the ONNX backend: `openlfr evaluate` on celeba-dev and the live pipeline on
the pass-by clip, with dlib's embedding and with ONNX Runtime's, in the same process.

    python benchmarks/backends.py [--data ../shared/data] [--skip-passby]

The backend is switched through ``OPENLFR_EMBEDDING_BACKEND`` between runs; evaluation runs
with ``--no-cache`` so that every face is detected and embedded again. Both runs use dlib's
model (``dlib-resnet-v1``), the one the backend setting chooses the runtime of.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
import passby  # noqa: E402

from openlfr.cli import app  # noqa: E402

MODEL = "dlib-resnet-v1"


def time_evaluate(folder: Path) -> float:
    started = time.monotonic()
    result = CliRunner().invoke(
        app, ["evaluate", str(folder), "--no-cache", "--json", "--model", MODEL]
    )
    if result.exit_code != 0:
        raise SystemExit(result.stderr)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("OPENLFR_TEST_DATA", "../shared/data"))
    )
    parser.add_argument("--skip-passby", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "passby.mp4"
        if not args.skip_passby:
            built = passby.build_clip(args.data, 40, 10, 0, clip)
            watchlist = passby.enrol(built, MODEL)
        for backend in ("dlib", "onnx"):
            os.environ["OPENLFR_EMBEDDING_BACKEND"] = backend
            evaluate_s = time_evaluate(args.data / "faces/celeba-dev")
            fps = (
                passby.run_openlfr(built, watchlist, MODEL).fps
                if not args.skip_passby
                else float("nan")
            )
            rows.append((backend, evaluate_s, fps))
    table = Table(
        "embedding backend",
        "evaluate celeba-dev (s)",
        "pass-by pipeline fps",
        title="before (dlib) and after (ONNX Runtime), same process",
    )
    for backend, evaluate_s, fps in rows:
        table.add_row(backend, f"{evaluate_s:.1f}", f"{fps:.1f}")
    (_, dlib_s, dlib_fps), (_, onnx_s, onnx_fps) = rows
    table.add_row("ratio", f"{dlib_s / onnx_s:.2f}x faster", f"{onnx_fps / dlib_fps:.2f}x")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
