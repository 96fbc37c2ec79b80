"""Each face model's calibration, as data: the score rule, the threshold for each watchlist
size, score priors, how they were measured, and the figures the model card quotes.

>>> cal = load_calibration("mobilefacenet-v1")
>>> cal.score, cal.threshold(1000)
('cosine', 0.47)

The JSON files beside this module are the calibration OpenLFR ships (aggregates only, no
personal data), written by ``openlfr calibrate --model M --output FILE``. A site that calibrates
on its own images writes ``$OPENLFR_HOME/calibration/<model>.json`` (``openlfr calibrate
--model M --write``), which then takes precedence.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from openlfr.config import data_dir
from openlfr.errors import OpenLFRError

SCORE_RULES = ("cosine", "z", "gap")


@dataclass(frozen=True)
class Calibration:
    model: str
    score: str  # one of SCORE_RULES (openlfr.matching.scores)
    target_fpir: float
    thresholds: dict[int, float]  # watchlist size -> threshold for FPIR <= target_fpir
    priors: dict[str, float] = field(default_factory=dict)  # e.g. the z-score's population values
    method: str = ""  # the protocol, and the command that reproduces it
    figures: dict[str, Any] = field(default_factory=dict)  # measured numbers for the model card
    source: str = ""  # the file it was read from

    def threshold(self, watchlist_size: int) -> float:
        """The threshold for a list of ``watchlist_size`` subjects: the table's, interpolated on
        a log scale between sizes; below the first size the first entry's, beyond the last the
        last entry's (tables run to the largest size measured)."""
        sizes = sorted(self.thresholds)
        n = max(int(watchlist_size), 1)
        if n <= sizes[0]:
            return self.thresholds[sizes[0]]
        if n >= sizes[-1]:
            return self.thresholds[sizes[-1]]
        for low, high in zip(sizes, sizes[1:], strict=False):
            if low <= n <= high:
                share = (math.log(n) - math.log(low)) / (math.log(high) - math.log(low))
                value = self.thresholds[low] + share * (
                    self.thresholds[high] - self.thresholds[low]
                )
                return round(value, 4)
        raise AssertionError("unreachable: n lies inside the table")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("source")
        data["thresholds"] = {str(k): v for k, v in sorted(self.thresholds.items())}
        return data


def site_path(model: str) -> Path:
    return data_dir() / "calibration" / f"{model}.json"


def packaged_path(model: str) -> Path:
    return Path(str(files(__package__) / f"{model}.json"))


def load_calibration(model: str) -> Calibration:
    """The site's calibration of ``model`` where there is one, else the one shipped."""
    for path in (site_path(model), packaged_path(model)):
        if path.is_file():
            return read_calibration(path)
    raise OpenLFRError(
        f"no calibration for face model {model!r}: run 'openlfr calibrate --model {model}'"
    )


def read_calibration(path: Path) -> Calibration:
    try:
        data = json.loads(path.read_text())
        calibration = Calibration(
            model=data["model"],
            score=data["score"],
            target_fpir=float(data["target_fpir"]),
            thresholds={int(k): float(v) for k, v in data["thresholds"].items()},
            priors={k: float(v) for k, v in data.get("priors", {}).items()},
            method=data.get("method", ""),
            figures=data.get("figures", {}),
            source=str(path),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OpenLFRError(f"{path} is not a calibration file: {exc}") from exc
    if calibration.score not in SCORE_RULES or not calibration.thresholds:
        raise OpenLFRError(f"{path}: score must be one of {SCORE_RULES}, with thresholds")
    return calibration


def write_calibration(calibration: Calibration, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(calibration.as_dict(), indent=2) + "\n")
    tmp.replace(path)
    return path
