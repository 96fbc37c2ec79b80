"""The detection budget (``vision.image.detection_view``: at most 2 MP, counting upsampling)
against detection on the whole image, on every photo of the data that is over that budget.

    python benchmarks/detect_budget.py --data ../shared/data

Per photo: are the same faces found (IoU over 0.5)? Which are lost, by width? And the CPU
seconds of each way. The accuracy protocols' sets (celeba-dev, UTKFace, FairFace, NASA) hold
no photo over the budget, so their figures cannot move; the counts say so.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from PIL import Image

from openlfr.vision.detect import box_iou
from openlfr.vision.image import DETECT_PIXELS, detection_view, load_image
from openlfr.vision.models import get_model

UPSAMPLE = 1  # what enrolment uses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("OPENLFR_TEST_DATA"))
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("give --data or set OPENLFR_TEST_DATA")
    unit = get_model()
    over = []
    for folder in sorted(p for p in (args.data / "faces").iterdir() if p.is_dir()):
        photos = [f for f in sorted(folder.rglob("*")) if f.suffix.lower() in (".jpg", ".png")]
        big = []
        for photo in photos:
            with Image.open(photo) as image:
                if image.size[0] * image.size[1] * 4**UPSAMPLE > DETECT_PIXELS:
                    big.append(photo)
        print(f"{folder.name}: {len(big)} of {len(photos)} photos over the budget")
        over += big
    same = changed = 0
    lost: list[int] = []
    whole_s = budget_s = 0.0
    for photo in over:
        rgb = load_image(photo)
        started = time.process_time()
        whole = unit.find(rgb, UPSAMPLE)
        whole_s += time.process_time() - started
        started = time.process_time()
        view, scale, upsample = detection_view(rgb, UPSAMPLE)
        found = [[v / scale for v in f.box.as_list()] for f in unit.find(view, upsample)]
        budget_s += time.process_time() - started
        missing = [f for f in whole if not any(box_iou(f.box.as_list(), b) > 0.5 for b in found)]
        lost += [f.box.width for f in missing]
        if not missing and len(found) == len(whole):
            same += 1
        else:
            changed += 1
    print(f"{unit.name}, {len(over)} photos over the budget: {same} the same faces, {changed} not")
    print(f"faces lost to the budget, widths in px: {sorted(lost)}")
    print(f"CPU seconds: whole images {whole_s:.1f}, within the budget {budget_s:.1f}")


if __name__ == "__main__":
    main()
