"""Issue 15's soak, short enough for CI: ``benchmarks/soak.py`` for six simulated minutes at
twelve times the wall clock, with both cameras dropping and a reviewer adjudicating over HTTP.
The full hour is the benchmark itself (docs/soak.md). The verdicts the soak draws from its
measurements are tested first on made-up series, so that a leak or a duplicate is seen to fail.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parents[1] / "benchmarks"))
import soak  # noqa: E402  (benchmarks/ is not a package; spawned processes import it by name)

MIB = 1024 * 1024


def _plan(**changes: object) -> soak.Plan:
    values = {"data": Path("."), "minutes": 60.0, "warm_up_s": 300.0, "rss_growth_mib": 16.0}
    return soak.Plan(**{**values, **changes})  # type: ignore[arg-type]


def _points(rss_mib, fds) -> list[tuple[float, int, int]]:  # type: ignore[no-untyped-def]
    """One sample every 20 simulated seconds for an hour."""
    return [(i * 20.0, int(rss_mib(i) * MIB), int(fds(i))) for i in range(180)]


def test_a_flat_process_is_flat_though_samples_fall_inside_reconnections() -> None:
    # 300 MiB with a little noise, 15 descriptors, one fewer now and then (a camera reconnecting)
    flat = soak.trend(
        "w", _points(lambda i: 300 + (i % 3) * 0.2, lambda i: 14 + (i % 12 != 5)), _plan(), 300
    )
    assert flat.flat and abs(flat.rss_slope_mib_per_h) < 1


def test_memory_that_grows_is_not_flat() -> None:
    # A leak of 200 KiB per sample: 35 MiB over the hour, against 16 allowed
    leaking = soak.trend("w", _points(lambda i: 300 + i * 0.2, lambda i: 15), _plan(), 300)
    assert not leaking.flat and leaking.rss_slope_mib_per_h == pytest.approx(36, abs=1)


def test_a_descriptor_leaked_per_drop_is_not_flat() -> None:
    # One socket left open at each drop (every 12 samples): 15 descriptors become 29
    leaking = soak.trend("w", _points(lambda i: 300, lambda i: 15 + i // 12), _plan(), 300)
    assert not leaking.flat
    assert leaking.fds_late > leaking.fds_early


def test_a_second_alert_within_the_window_is_a_duplicate() -> None:
    window = soak.REALERT_WINDOW_S
    assert soak.duplicate_alerts([(1, 7, 0.0), (1, 7, window + 1)]) == 0  # the next window
    assert soak.duplicate_alerts([(1, 7, 0.0), (2, 7, 1.0), (1, 8, 2.0)]) == 0  # others
    assert soak.duplicate_alerts([(1, 7, 0.0), (1, 7, 30.0), (1, 7, window + 1)]) == 1


def test_a_drop_without_a_reconnection_is_unrecovered() -> None:
    log = {"connections": [0.0, 12.0], "drops": [(10.0, 11.0), (20.0, 21.0)], "frames_sent": 5}
    (check,) = soak.drop_checks([log], end=30.0)
    assert check["drops"] == 2 and check["recovered"] == 1


@pytest.mark.slow
def test_short_soak_holds(database_url: str, test_data: Path, tmp_path: Path) -> None:
    """Six simulated minutes (30 s) from the cameras' first viewers: a drop per camera every
    45 simulated seconds, every alert adjudicated, then an operator's stop; memory and
    descriptors flat after the first simulated minute, each alert stored once."""
    plan = soak.Plan(
        data=test_data,
        minutes=6,
        speedup=12,
        drop_every_s=45,
        drop_for_s=10,
        review_every_s=20,
        sample_every_s=5,
        interval_s=60,
        warm_up_s=60,
        database_url=database_url,
        rss_growth_mib=8,  # a leak of 100 KB per processed frame shows in six minutes
    )
    report = soak.soak(plan, tmp_path)
    assert report["failures"] == [], report["failures"]
    assert report["controller_exit"] == 0
    assert report["worker_pids"] == 2  # no restart: a drop is the source's to ride out
    labels = {s["label"]: s for s in report["series"]}
    assert set(labels) == {"controller", "worker 1", "worker 2", "service"}
    assert all(s["steady_samples"] >= 10 for s in labels.values())
    for drop in report["drops"]:
        assert drop["drops"] >= 3 and drop["recovered"] == drop["drops"], drop
    alerts = report["alerts"]
    for camera, counts in alerts["per_camera"].items():
        assert counts["alerts_raised"] >= 1 and counts["frames"] > 20, (camera, counts)
        assert counts["crashes"] == 0, (camera, counts)  # a drop is ridden out, not a crash
    assert alerts["adjudicated_once"] == alerts["alerts"] >= 2
