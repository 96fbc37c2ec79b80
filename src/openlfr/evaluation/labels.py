"""Demographic labels for evaluation images (``openlfr evaluate --labels``).

Two forms are read:

- a CSV with a ``path`` column and any other columns (``sex``, ``race``, ``age_band``...);
- a JSON list of objects, each naming its image in ``path``, ``filename`` or ``file`` (the form
  of FairFace's ``ground_truth.json``); every other key is a column.

A label's path is relative to the label file's folder. A path that is not there is looked up by
file name in the folder's sub-folders, and by stem (the data's re-encoding turned ``.png`` into
``.jpg``), so a bare ``fairface_0001.jpg`` finds ``fairface/fairface_0001.jpg``. A label that
matches no image, or several, is an error: silently dropping people would bias the groups.

An ``age`` column of whole years (UTKFace's) is turned into FairFace's age bands (``20-29``,
``70+``...), so that ages from both kinds of file form the same groups.

    >>> labels = read_labels(Path("faces/utkface-demographics/labels.csv"))
    >>> labels.columns, labels.by_path[Path("faces/utkface-demographics/images/x.jpg")]
    (['age', 'sex', 'race'], {'age': '24', 'sex': 'F', 'race': 'Asian'})
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from openlfr.errors import OpenLFRError
from openlfr.vision.batch import list_images

PATH_KEYS = ("path", "filename", "file")
# Columns that name a person or a file rather than a group: never grouped on by default.
NOT_GROUPS = {"id", "identity", "name", "othernames", "astronautid", *PATH_KEYS}
AGE_BANDS = [(0, 2), (3, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69)]
MAX_GROUPS = 12  # a column with more distinct values (an exact age) is not a grouping by default


class LabelError(OpenLFRError):
    """A label file that cannot be used as it is."""


@dataclass
class Labels:
    """Attributes per image (resolved absolute paths), and the columns seen."""

    by_path: dict[Path, dict[str, str]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)

    def merge(self, other: Labels) -> Labels:
        """Both label sets; a later file's value wins for an image labelled twice."""
        merged = Labels(dict(self.by_path), list(self.columns))
        for path, attrs in other.by_path.items():
            merged.by_path[path] = {**merged.by_path.get(path, {}), **attrs}
        merged.columns += [c for c in other.columns if c not in merged.columns]
        return merged

    def default_groupings(self) -> list[str]:
        """Columns that look like groups: not names or paths, 2 to ``MAX_GROUPS`` values."""
        chosen = []
        for column in self.columns:
            values = {a[column] for a in self.by_path.values() if a.get(column)}
            if column.lower() not in NOT_GROUPS and 2 <= len(values) <= MAX_GROUPS:
                chosen.append(column)
        return chosen

    def check_columns(self, columns: list[str]) -> None:
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise LabelError(
                f"no column {', '.join(map(repr, missing))} in the labels; "
                f"columns are: {', '.join(self.columns) or 'none'}"
            )


def read_labels(path: Path) -> Labels:
    """Read a CSV or JSON label file (see the module's docstring)."""
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"{path}: no such label file")
    rows = _json_rows(path) if path.suffix.lower() == ".json" else _csv_rows(path)
    if not rows:
        raise LabelError(f"{path}: no labels in the file")
    key = next((k for k in PATH_KEYS if k in rows[0]), None)
    if key is None:
        raise LabelError(
            f"{path}: no path column (one of {', '.join(PATH_KEYS)}); "
            f"columns are: {', '.join(rows[0])}"
        )
    columns = [c for c in rows[0] if c != key]
    finder = _Finder(path.parent)
    labels = Labels(columns=columns)
    for line, row in enumerate(rows, start=2 if path.suffix.lower() != ".json" else 1):
        name = (row.get(key) or "").strip()
        if not name:
            raise LabelError(f"{path}, entry {line}: empty {key}")
        image = finder.find(name)
        if image is None:
            raise LabelError(f"{path}, entry {line}: unknown path {name!r}: no such image")
        labels.by_path[image] = {c: str(row.get(c) or "").strip() for c in columns}
    for column in columns:
        values = [a[column] for a in labels.by_path.values() if a[column]]
        if column.lower() == "age" and values and all(v.isdigit() for v in values):
            for attrs in labels.by_path.values():
                attrs[column] = age_band(int(attrs[column])) if attrs[column] else ""
    return labels


def age_band(years: int) -> str:
    """FairFace's band for an age in years: ``age_band(24) == "20-29"``."""
    return next((f"{lo}-{hi}" for lo, hi in AGE_BANDS if years <= hi), "70+")


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _json_rows(path: Path) -> list[dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LabelError(f"{path}: not JSON ({exc})") from exc
    if isinstance(data, dict):  # {"images": [...]} or {path: {attrs}}
        data = next((v for v in data.values() if isinstance(v, list)), None) or [
            {"path": k, **v} for k, v in data.items() if isinstance(v, dict)
        ]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise LabelError(f"{path}: expected a list of objects, one per image")
    return [{k: v for k, v in r.items() if not isinstance(v, dict | list)} for r in data]


class _Finder:
    """Resolve label paths: exactly, else by unique file name, else by unique stem."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._by_name: dict[str, list[Path]] | None = None
        self._by_stem: dict[str, list[Path]] = defaultdict(list)

    def find(self, name: str) -> Path | None:
        exact = (self.root / name).resolve()
        if exact.is_file():
            return exact
        if self._by_name is None:  # indexed once, on the first label that needs it
            self._by_name = defaultdict(list)
            for image in list_images([self.root]):
                self._by_name[image.name].append(image.resolve())
                self._by_stem[image.stem].append(image.resolve())
        candidates = self._by_name.get(Path(name).name) or self._by_stem.get(Path(name).stem, [])
        return candidates[0] if len(candidates) == 1 else None
