"""Issue 7's whole speed benchmark in one command: dlib beside ONNX Runtime, each in one process.

    python benchmarks/speed.py --data ../shared/data      # about 8 minutes on 2 cores
    python benchmarks/speed.py --quick                    # about 3: no evaluate, 480p/540p only

It runs, one after the other (each prints its own table with ratios):

1. ``embedding.py``: faces/s at batch 1 and 32: dlib's ResNet on dlib and on ONNX Runtime,
   MobileFaceNet (``mobilefacenet-v1``) as shipped and without the mirror image;
2. ``detection.py``: ms per frame at 480p, 540p, 720p and 1080p for dlib's HOG, dlib's MMOD
   and the ONNX MMOD (fp32 and int8);
3. ``backends.py``: ``openlfr evaluate`` on celeba-dev and the live pipeline's fps on the
   pass-by clip, with dlib's embedding (before) and ONNX Runtime's (after); needs the shared
   data and is left out by ``--quick``. (``passby.py`` puts the two face models side by side
   on that clip.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("OPENLFR_TEST_DATA", "../shared/data"))
    )
    parser.add_argument("--quick", action="store_true", help="skip evaluate and 720p/1080p")
    args = parser.parse_args()
    runs = [["embedding.py"], ["detection.py", *(["--quick"] if args.quick else [])]]
    if not args.quick:
        runs.append(["backends.py", "--data", str(args.data)])
    for script, *options in runs:
        print(f"\n== {script} {' '.join(options)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *options], check=True)


if __name__ == "__main__":
    main()
