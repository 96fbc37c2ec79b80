"""The pick rules at enrolment (``openlfr.vision.pick``), on real photos with bystanders.

    python benchmarks/pick.py --data ../shared/data [--limit 150]

Every photo of ``faces/celeba-dev`` (150 people, 12 photos each) is searched for faces with the
configured model. Photos with one face are enrolled as they are today; photos with several are
what ``--pick`` is for. For each of those, the face that really is the subject is the one
nearest (cosine) to the mean template of the subject's own one-face photos, when that face is
clearly nearer than the others (0.15 ahead); photos where that cannot be told are left out of
the "right" count. Then, per rule: how many of the many-face photos it takes, and of those, how
many it took the subject's face (right), the bystander's (wrong), or one that cannot be told.
A wrong pick enrols a stranger, so the rules are meant to refuse rather than guess.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from openlfr.vision.batch import analyse_files, list_images
from openlfr.vision.pick import Pick, eye_distance, pick_face

CLEAR = 0.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("OPENLFR_TEST_DATA"))
    parser.add_argument("--limit", type=int, default=150, help="people")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--show-wrong", action="store_true", help="list each wrong pick")
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("give --data or set OPENLFR_TEST_DATA")
    people = sorted(p for p in (args.data / "faces" / "celeba-dev").iterdir() if p.is_dir())
    people = people[: args.limit]
    jobs = [(person.name, path) for person in people for path in list_images([person])]
    results = analyse_files([p for _, p in jobs], upsample=1, workers=args.workers)
    by_person: dict[str, list] = {}
    for (name, _), result in zip(jobs, results, strict=True):
        by_person.setdefault(name, []).append(result)

    many, truth = [], []
    single = 0
    for found in by_person.values():
        solo = [r.faces[0].embedding for r in found if len(r.faces) == 1]
        single += len(solo)
        centre = np.mean(solo, axis=0) if solo else None
        for result in found:
            if len(result.faces) < 2:
                continue
            many.append(result)
            if centre is None:
                truth.append(None)
                continue
            scores = sorted(
                ((float(f.embedding @ centre), i) for i, f in enumerate(result.faces)),
                reverse=True,
            )
            truth.append(scores[0][1] if scores[0][0] - scores[1][0] >= CLEAR else None)

    console = Console()
    console.print(
        f"{len(jobs)} photos of {len(people)} people: {single} with one face, "
        f"{len(many)} with several ({sum(t is not None for t in truth)} where the subject's "
        "face can be told from the bystanders')"
    )
    table = Table("rule", "taken", "right", "wrong", "cannot tell", "refused")
    for rule in Pick:
        taken = right = wrong = unknown = 0
        for result, true_index in zip(many, truth, strict=True):
            face, _ = pick_face(result.faces, result.width, result.height, rule)
            if face is None:
                continue
            taken += 1
            index = next(i for i, f in enumerate(result.faces) if f is face)
            if true_index is None:
                unknown += 1
            elif index == true_index:
                right += 1
            else:
                wrong += 1
                if args.show_wrong:
                    console.print(
                        f"{rule.value} took face {index}, the subject is face {true_index}: "
                        f"{result.path} {result.width}x{result.height} "
                        f"{[(f.box.as_list(), round(eye_distance(f))) for f in result.faces]}"
                    )
        table.add_row(
            rule.value, str(taken), str(right), str(wrong), str(unknown), str(len(many) - taken)
        )
    console.print(table)


if __name__ == "__main__":
    main()
