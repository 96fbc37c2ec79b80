"""Per-group figures at exact cosine thresholds, and the significance scan on a cosine grid.

A stopgap for docs/fairness.md (2026-12-01), until ``openlfr evaluate`` handles cosine units:
``demographic_results`` rounds thresholds to two decimals (0.5888 becomes 0.59) and scans
1.0-6.0 (z-score units), where no cosine score reaches. This script runs the same protocol as
``openlfr evaluate`` (same embeddings cache, same statistics functions of
``openlfr.evaluation.fairness``) at unrounded thresholds and on a grid in the model's units,
and prints (to stderr, not to the file) the strangers who alert at the calibrated threshold
with the subject they match, for checking by eye; only aggregates are written.

    python docs/fairness/cosine_scan.py ../shared/data/faces docs/fairness/cosine-scan
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import openlfr.evaluation.plots as plots  # noqa: E402
from openlfr.evaluation.datasets import default_cache, identity_folders, largest_faces  # noqa: E402
from openlfr.evaluation.demographics import searches_from_protocol  # noqa: E402
from openlfr.evaluation.fairness import (  # noqa: E402
    differential,
    group_rates,
    lowest_non_significant,
    significance_scan,
)
from openlfr.evaluation.labels import read_labels  # noqa: E402
from openlfr.evaluation.openset import protocol, search_outcomes  # noqa: E402
from openlfr.matching import default_threshold  # noqa: E402
from openlfr.vision.batch import list_images  # noqa: E402
from openlfr.vision.models import get_model  # noqa: E402

MODELS = {  # the scan grid per model, in cosine units (FPIR from about 0.5 down to 0)
    "mobilefacenet-v1": np.round(np.arange(0.30, 0.801, 0.01), 3),
    "dlib-resnet-v1": np.round(np.arange(0.88, 1.0001, 0.0025), 4),
}
SETS = {
    "utkface": ("utkface-demographics", "utkface-demographics/labels.csv", ["sex", "race", "age"]),
    "fairface": ("fairface540", "fairface540/ground_truth.json", ["age", "gender"]),
}


def main(data: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    people = identity_folders(data / "celeba-dev")
    watch = [p for images in people.values() for p in images]
    everything: dict = {}
    for name, grid in MODELS.items():
        unit = get_model(name)
        t150 = default_threshold(150, name)
        t1000 = default_threshold(1000, name)
        everything[name] = {"threshold_150": t150, "threshold_1000": t1000, "sets": {}}
        for set_name, (folder, label_file, attributes) in SETS.items():
            strangers = list_images([data / folder])
            faces = largest_faces(watch + strangers, cache=default_cache(), model=unit)
            p = protocol(people, strangers, faces)
            outcomes = search_outcomes(p.enrolled, p.mated, p.nonmated, model=name)
            labels = read_labels(data / label_file)
            s = searches_from_protocol(p, outcomes, labels, attributes)
            exact = [t150, t1000]
            entry: dict = {
                "overall_fpir": [
                    r.as_dict() for r in group_rates(s, None, exact, mated=False)["all"]
                ],
                "overall_fnir": [
                    r.as_dict() for r in group_rates(s, None, exact, mated=True)["all"]
                ],
                "attributes": {},
            }
            for attribute in attributes:
                rates = group_rates(s, attribute, exact, mated=False)
                scan = significance_scan(s, attribute, grid)
                found = {}
                for group in rates:
                    member = [s.groups[attribute][i] == group for i in s.person]
                    sel = ~s.mated & np.array(member)
                    found[group] = [int(np.isfinite(s.scores[sel]).sum()), int(sel.sum())]
                entry["attributes"][attribute] = {
                    "rates": {g: [r.as_dict() for r in rows] for g, rows in rates.items()},
                    "differential": [d.as_dict() for d in differential(rates)],
                    "p_values": [r.as_dict() for r in significance_scan(s, attribute, exact)],
                    "lowest_non_significant_threshold": lowest_non_significant(scan),
                    "significant_at": [r.threshold for r in scan if r.p_value < 0.05],
                    "faces_found": found,
                    "scan": [r.as_dict() for r in scan],
                }
                plots.SCAN = grid  # the sweep's x-axis, in the model's units
                fig = plots.sweep_figure(s, attribute, [t150], [r.as_dict() for r in scan])
                fig.axes[1].set_xlabel(f"threshold (cosine similarity, {name})")
                fig.savefig(out / f"{name}-{set_name}-sweep-{attribute}.png", dpi=100)
                plt.close(fig)
            # Who alerts at the calibrated threshold: the stranger's best subject and score
            names = sorted(p.enrolled)
            gallery = np.stack([p.enrolled[n].embedding for n in names])
            alerts = []
            for face, who in zip(p.nonmated, p.nonmated_people, strict=True):
                if face is None:
                    continue
                sims = gallery @ face.embedding
                if sims.max() >= t150:
                    alerts.append(
                        {
                            "stranger": Path(who).name,
                            "subject": names[int(sims.argmax())],
                            "score": round(float(sims.max()), 4),
                        }
                    )
            entry["alerts_at_threshold_150"] = len(alerts)
            for a in sorted(alerts, key=lambda a: -a["score"]):
                print(name, set_name, a, file=sys.stderr)
            everything[name]["sets"][set_name] = entry
    (out / "cosine-scan.json").write_text(json.dumps(everything, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
