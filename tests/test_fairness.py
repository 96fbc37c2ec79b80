"""Demographic evaluation: the statistics on made-up scores, label files and their errors, and one
small run of ``openlfr evaluate --labels --report`` on real faces."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from openlfr.cli import app
from openlfr.evaluation.fairness import (
    Searches,
    chi_square,
    differential,
    group_order,
    group_rates,
    lowest_non_significant,
    significance_scan,
)
from openlfr.evaluation.labels import LabelError, age_band, read_labels


def strangers(rates: dict[str, float], n: int, rng: np.random.Generator) -> Searches:
    """``n`` strangers per group; a stranger alerts at threshold 0.5 with the group's rate
    (score 1) and never otherwise (score 0)."""
    groups, scores = [], []
    for group, rate in rates.items():
        groups += [group] * n
        scores.append((rng.random(n) < rate).astype(float))
    total = len(groups)
    return Searches(
        scores=np.concatenate(scores),
        correct=np.zeros(total, bool),
        mated=np.zeros(total, bool),
        person=np.arange(total),
        people=[str(i) for i in range(total)],
        groups={"g": groups},
    )


def test_bootstrap_interval_covers_the_true_rate() -> None:
    rng = np.random.default_rng(1)
    covered = 0
    for seed in range(60):
        s = strangers({"a": 0.08}, 300, rng)
        (row,) = group_rates(s, "g", [0.5], mated=False, bootstrap=400, seed=seed)["a"]
        covered += row.ci[0] <= 0.08 <= row.ci[1]
        assert row.ci_method == "bootstrap over people"
    assert covered >= 52  # 95% nominal; 60 trials leave room for chance, not for a broken CI


def test_bootstrap_resamples_people_not_searches() -> None:
    """Ten searches per person, persons either always or never missed: the honest interval is
    that of 40 people, much wider than that of 400 independent searches would be."""
    rng = np.random.default_rng(2)
    missed = rng.random(40) < 0.5
    person = np.repeat(np.arange(40), 10)
    s = Searches(
        scores=np.where(missed[person], 0.0, 1.0),
        correct=np.ones(400, bool),
        mated=np.ones(400, bool),
        person=person,
        people=[str(i) for i in range(40)],
        groups={"g": ["x"] * 40},
    )
    (row,) = group_rates(s, "g", [0.5], mated=True, bootstrap=1000)["x"]
    assert row.people == 40 and row.searches == 400
    width = row.ci[1] - row.ci[0]
    p = row.rate
    assert width > 0.8 * 2 * 1.96 * np.sqrt(p * (1 - p) / 40)  # about the people's width
    assert width > 2.5 * 2 * 1.96 * np.sqrt(p * (1 - p) / 400)  # far wider than the searches'


def test_no_errors_gives_the_exact_upper_bound() -> None:
    s = strangers({"a": 0.0}, 100, np.random.default_rng(0))
    (row,) = group_rates(s, "g", [0.5], mated=False)["a"]
    assert row.errors == 0 and row.ci[0] == 0
    assert row.ci[1] == pytest.approx(1 - 0.025 ** (1 / 100), abs=1e-5)  # about 3.7 / 100


def test_ratio_is_worst_over_best_and_undefined_at_zero() -> None:
    s = strangers({"a": 0.0, "b": 0.0, "c": 0.0}, 100, np.random.default_rng(0))
    s.scores[:5] = 1  # a: 5 false alerts in 100
    s.scores[100:120] = 1  # b: 20
    s.scores[200:210] = 1  # c: 10
    rates = group_rates(s, "g", [0.5, 2.0], mated=False, bootstrap=100)
    at_half, at_two = differential(rates)
    assert (at_half.worst, at_half.best, at_half.ratio) == ("b", "a", 4.0)
    assert at_two.ratio is None and at_two.worst_rate == 0 and at_two.ratio_to_best_upper is None
    s.scores[:5] = 0  # a has none now: no ratio, but a cautious one against a's upper bound
    (at_half,) = differential(group_rates(s, "g", [0.5], mated=False, bootstrap=100))
    assert at_half.best == "a" and at_half.ratio is None
    assert at_half.ratio_to_best_upper == pytest.approx(0.20 / (1 - 0.025 ** (1 / 100)), rel=1e-3)


def test_age_bands_sort_by_age() -> None:
    bands = ["70+", "20-29", "3-9", "0-2", "10-19"]
    assert sorted(bands, key=group_order) == ["0-2", "3-9", "10-19", "20-29", "70+"]


def test_chi_square_matches_the_textbook_statistic() -> None:
    errors = np.array([12, 30, 8])
    searches = np.array([200, 220, 190])
    observed = np.array([errors, searches - errors]).T
    expected = observed.sum(1, keepdims=True) * observed.sum(0) / observed.sum()
    assert chi_square(errors, searches) == pytest.approx(
        ((observed - expected) ** 2 / expected).sum()
    )
    assert chi_square(np.array([0, 0]), np.array([10, 10])) == 0


def test_significance_scan_finds_a_known_differential() -> None:
    """Group b alerts four times as often as a below threshold 2; nobody alerts above 3."""
    rng = np.random.default_rng(3)
    s = strangers({"a": 0.05, "b": 0.20}, 300, rng)
    s.scores = s.scores * 2.5  # alerts score 2.5: counted at thresholds up to 2.5
    scan = significance_scan(s, "g", [1.0, 2.0, 3.0, 4.0], permutations=500)
    assert [r.p_value < 0.05 for r in scan] == [True, True, False, False]
    assert scan[2].errors == 0 and scan[2].p_value == 1.0
    assert lowest_non_significant(scan) == 3.0
    same = strangers({"a": 0.1, "b": 0.1}, 300, rng)
    assert significance_scan(same, "g", [0.5], permutations=500)[0].p_value > 0.01


def test_lowest_non_significant_needs_every_higher_threshold_clear() -> None:
    from openlfr.evaluation.fairness import Significance

    scan = [Significance(t, 1, 0.0, p) for t, p in [(1, 0.01), (2, 0.2), (3, 0.01), (4, 0.5)]]
    assert lowest_non_significant(scan) == 4
    assert lowest_non_significant([Significance(9, 1, 9.0, 0.001)]) is None


# --- labels -----------------------------------------------------------------------------------


@pytest.fixture
def images(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / "images" / name).write_bytes(b"not decoded here")
    return tmp_path


def test_csv_labels_resolve_paths_relative_to_the_file(images: Path) -> None:
    (images / "labels.csv").write_text(
        "path,age,sex,race\nimages/a.jpg,24,F,Asian\nimages/b.jpg,71,M,Black\nimages/c.png,5,M,Asian\n"
    )
    labels = read_labels(images / "labels.csv")
    assert labels.columns == ["age", "sex", "race"]
    assert labels.by_path[(images / "images/a.jpg").resolve()] == {
        "age": "20-29",
        "sex": "F",
        "race": "Asian",
    }
    assert labels.by_path[(images / "images/c.jpg").resolve()]["age"] == "3-9"  # .png -> .jpg
    assert labels.default_groupings() == ["age", "sex", "race"]
    with pytest.raises(LabelError, match="no column 'ethnicity'"):
        labels.check_columns(["sex", "ethnicity"])


def test_json_labels_find_bare_file_names_in_sub_folders(images: Path) -> None:
    (images / "ground_truth.json").write_text(
        json.dumps([{"id": "x", "filename": "a.jpg", "age": "50-59", "gender": "Male"}])
    )
    labels = read_labels(images / "ground_truth.json")
    assert labels.by_path[(images / "images/a.jpg").resolve()]["gender"] == "Male"
    assert labels.default_groupings() == []  # one value each: nothing to compare yet


def test_label_errors_name_the_problem(images: Path) -> None:
    bad = images / "bad.csv"
    bad.write_text("file_name,sex\nimages/a.jpg,F\n")
    with pytest.raises(LabelError, match="no path column"):
        read_labels(bad)
    bad.write_text("path,sex\nimages/a.jpg,F\nimages/zz.jpg,M\n")
    with pytest.raises(LabelError, match="entry 3: unknown path 'images/zz.jpg'"):
        read_labels(bad)
    with pytest.raises(LabelError, match="no such label file"):
        read_labels(images / "missing.csv")
    assert age_band(70) == "70+" and age_band(0) == "0-2"


def test_evaluate_refuses_an_unknown_group_column(images: Path) -> None:
    (images / "labels.csv").write_text("path,sex\nimages/a.jpg,F\n")
    result = CliRunner().invoke(
        app,
        ["evaluate", str(images), "--labels", str(images / "labels.csv"), "--group-by", "race"],
    )
    assert result.exit_code == 2 and "no column 'race'" in result.stderr


# --- real faces -------------------------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_with_labels_on_real_faces(test_data: Path, tmp_path: Path) -> None:
    """12 watchlisted CelebA identities and 48 UTKFace strangers (6 per sex x race), with a
    label file written beside links to them: per-group results, the report, a re-run's speed."""
    faces = test_data / "faces"
    watchlist = tmp_path / "watchlist"
    watchlist.mkdir()
    for folder in sorted((faces / "celeba-dev").iterdir())[:12]:
        (watchlist / folder.name).symlink_to(folder)
    rows = (faces / "utkface-demographics" / "labels.csv").read_text().splitlines()
    chosen: dict[tuple[str, str], list[str]] = {}
    for row in rows[1:]:
        path, _, sex, race = row.split(",")
        chosen.setdefault((sex, race), [])
        if len(chosen[(sex, race)]) < 6:
            chosen[(sex, race)].append(row)
    strangers_dir = tmp_path / "strangers"
    strangers_dir.mkdir()
    lines = ["path,age,sex,race"]
    for row in (r for group in chosen.values() for r in group):
        path, age, sex, race = row.split(",")
        (strangers_dir / Path(path).name).symlink_to(faces / "utkface-demographics" / path)
        lines.append(f"{Path(path).name},{age},{sex},{race}")
    (strangers_dir / "labels.csv").write_text("\n".join(lines) + "\n")
    args = [
        "evaluate",
        str(watchlist),
        "--strangers",
        str(strangers_dir),
        "--labels",
        str(strangers_dir / "labels.csv"),
        "--group-by",
        "sex",
        "--group-by",
        "race",
        "--thresholds",
        "2.5,3.5",
        "--json",
    ]
    result = CliRunner().invoke(app, [*args, "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.stderr
    demo = json.loads(result.stdout)["demographics"]
    assert demo["thresholds"] == [2.5, 3.5]
    race = demo["attributes"]["race"]
    assert set(race["strangers"]["rates"]) == {"Asian", "Black", "Indian", "White"}
    assert all(r[0]["people"] == 12 for r in race["strangers"]["rates"].values())
    assert "no race labels for the watchlisted" in race["mated"]["note"]
    assert demo["overall"]["strangers"]["all"][0]["searches"] == 48
    assert 0 <= race["strangers"]["significance"]["at_thresholds"][0]["p_value"] <= 1
    for name in ("index.html", "report.pdf", "results.json", "det-race.png", "sweep-sex.png"):
        assert (tmp_path / "report" / name).stat().st_size > 1000
    assert (tmp_path / "report" / "report.pdf").read_bytes().startswith(b"%PDF")
    assert "Limitations" in (tmp_path / "report" / "index.html").read_text()
    # New thresholds: answered from the embedding cache.
    started = time.monotonic()
    again = CliRunner().invoke(app, [*args[:-3], "--thresholds", "3", "--json"])
    assert again.exit_code == 0, again.stderr
    assert time.monotonic() - started < 20  # seconds, not the minutes of embedding
    assert json.loads(again.stdout)["demographics"]["thresholds"] == [3.0]
