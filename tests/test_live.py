"""The live pipeline on real video: alerts for enrolled people, nothing for anyone else,
clear errors for bad sources, deployments that end on time and leave no snapshot."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from service_support import ENTRY, count_graph_builds
from sqlalchemy import func, select
from typer.testing import CliRunner

from openlfr.cli import app
from openlfr.errors import OpenLFRError
from openlfr.governance.authorisation import authorise_deployment
from openlfr.governance.policy import Policy
from openlfr.live.deployment import (
    create_deployment,
    freeze_snapshot,
    recover_crashed,
    request_stop,
    run_deployment,
)
from openlfr.live.pipeline import LiveConfig, LivePipeline
from openlfr.live.sources import SourceError, open_source
from openlfr.live.tracker import IouTracker
from openlfr.matching import WatchlistIndex
from openlfr.store import Alert, Deployment, SnapshotTemplate, open_store
from openlfr.store.watchlists import (
    add_reference_image,
    add_subject,
    create_watchlist,
    load_templates,
)
from openlfr.vision import find_faces
from openlfr.vision.detect import Detection
from openlfr.vision.models import get_model


def _frame(video: Path, index: int) -> np.ndarray:
    with open_source(str(video)) as source:
        for frame in source.frames():
            if frame.index == index:
                return frame.image
    raise AssertionError(f"{video} has no frame {index}")


def _enrol(session, watchlist, name: str, image: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    import cv2

    face = max(find_faces(image, upsample=1), key=lambda f: f.box.width)
    entry = replace(ENTRY, category="missing-at-risk", image_source="test clip")
    subject = add_subject(session, watchlist, name=name, entry=entry, policy=Policy())
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    add_reference_image(
        session,
        subject,
        filename=f"{name}.jpg",
        content=jpeg.tobytes(),
        face=face,
        width=image.shape[1],
        height=image.shape[0],
    )


def _plan(factory, name: str, lasts: timedelta, camera: str | dict[str, str]) -> int:  # type: ignore[no-untyped-def]
    """A deployment of the 'clip' watchlist starting now, one camera (or ``{name: source}``);
    returns its id."""
    with factory() as session:
        deployment = create_deployment(
            session,
            name=name,
            location="lab",
            reason="test",
            watchlist="clip",
            starts_at=datetime.now(UTC),
            ends_at=datetime.now(UTC) + lasts,
            cameras=camera if isinstance(camera, dict) else {"cam": camera},
            created_by="test",
            dpia_ref="DPIA-T",
            equality_ref="EIA-T",
            signage_confirmed=True,
        )
        authorise_deployment(session, deployment, by="insp-test", policy=Policy())
        session.commit()
        return deployment.id


@pytest.fixture
def video(test_data: Path) -> Path:
    return test_data / "video"


@pytest.fixture
def watchlist_from_clip(video: Path, test_data: Path):  # type: ignore[no-untyped-def]
    """'walker' enrolled from frame 0 of a clip, with eight unrelated people beside him."""
    factory = open_store()
    cast = test_data / "faces/misc/faceapi_js/examples/images"
    with factory() as session:
        watchlist = create_watchlist(session, "clip")
        _enrol(
            session,
            watchlist,
            "walker",
            _frame(video / "intel-head-pose-face-detection-male.mp4", 0),
        )
        for name in ["amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon"]:
            from openlfr.vision.image import load_image

            _enrol(session, watchlist, name, load_image(cast / name / f"{name}1.jpg"))
        session.commit()
        templates = load_templates(session, watchlist, model=get_model().name)
    return factory, WatchlistIndex(
        templates.embeddings, templates.subject_ids, templates.subject_names, model=templates.model
    )


def test_enrolled_face_alerts_in_another_part_of_the_clip(watchlist_from_clip, video) -> None:  # type: ignore[no-untyped-def]
    _, index = watchlist_from_clip
    pipeline = LivePipeline(index, camera="test", config=LiveConfig())
    events = []
    with open_source(str(video / "intel-head-pose-face-detection-male.mp4")) as source:
        for frame in source.frames():
            if frame.index >= 31:  # enrolled from frame 0: search only the second half
                events.extend(pipeline.process(frame))
    pipeline.finish()
    new = [e for e in events if e.kind == "new"]
    assert [e.subject for e in new] == ["walker"]  # one alert, the right person, no duplicate
    assert pipeline.counts.faces_processed == 1
    assert new[0].latency_s < 1.0
    assert new[0].probe_jpeg[:2] == b"\xff\xd8"


def test_replay_searches_a_face_again_after_the_interval_within_its_cap(
    watchlist_from_clip, video
) -> None:  # type: ignore[no-untyped-def]
    clip = str(video / "intel-head-pose-face-detection-male.mp4")
    searches = {}
    for interval in ("inf", "0.2"):
        result = CliRunner().invoke(
            app, ["replay", clip, "--watchlist", "clip", "--research-after", interval]
        )
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout.splitlines()[-1])["summary"]
        assert summary["faces_processed"] == 1  # one man, one track
        searches[interval] = summary["searches"]
    # His shots' quality barely changes as he turns his head, so by quality alone he is searched
    # once; with the interval he is looked at again, up to the cap of 3 and no more.
    assert searches["inf"] == 1
    assert searches["0.2"] == LiveConfig().max_searches_per_track == 3


def test_replay_prints_alerts_and_a_summary(watchlist_from_clip, video) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        app,
        [
            "replay",
            str(video / "intel-head-pose-face-detection-male.mp4"),
            "--watchlist",
            "clip",
            "--upsample",
            "1",
            "--jsonl",
        ],
    )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    alerts, summary = lines[:-1], lines[-1]["summary"]
    assert [a["subject"] for a in alerts if "updates" not in a] == ["walker"]
    assert set(alerts[0]) >= {"frame", "time_s", "subject", "score", "track", "box"}
    assert summary["frames"] == 62 and summary["dropped_frames"] == 0
    assert summary["faces_processed"] == 1 and summary["alerts"] == 1
    assert summary["fps"] > 0


@pytest.mark.slow
def test_backs_to_camera_raises_nothing_and_counts_no_faces(watchlist_from_clip, video) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        app,
        [
            "replay",
            str(video / "intel-backs-to-camera-no-faces.mp4"),
            "--watchlist",
            "clip",
            "--jsonl",
        ],
    )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 1
    assert lines[0]["summary"]["faces_processed"] == 0 and lines[0]["summary"]["alerts"] == 0
    assert lines[0]["summary"]["frames"] > 1000


def test_non_matches_leave_no_trace(
    watchlist_from_clip,
    video,
    openlfr_home: Path,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DESIGN.md invariant 1: faces that raise no alert reach no database, file or log."""
    import logging

    seen: list[bytes] = []
    model = type(get_model())  # the configured model's unit: the pipeline embeds with it
    real_embed = model.embed

    def spy(self, chips):  # type: ignore[no-untyped-def]
        vectors = real_embed(self, chips)
        seen.extend(v.astype("<f4").tobytes() for v in vectors)
        seen.extend(np.ascontiguousarray(c).tobytes()[:4096] for c in chips)
        return vectors

    monkeypatch.setattr(model, "embed", spy)
    caplog.set_level(logging.DEBUG)
    factory, _ = watchlist_from_clip
    files_before = {p: p.stat().st_size for p in openlfr_home.rglob("*") if p.is_file()}
    with factory() as session:
        deployment = create_deployment(
            session,
            name="invariant 1",
            location="lab",
            reason="test",
            watchlist="clip",
            starts_at=datetime.now(UTC),
            ends_at=datetime.now(UTC) + timedelta(minutes=5),
            cameras={"group": str(video / "openmpf-indoor-group.mp4")},
            created_by="test",
        )
        session.commit()
    # Nobody in the group is on the list; the camera runs in this process to be spied on.
    with factory() as session:
        deployment = session.get(Deployment, deployment.id)
        freeze_snapshot(session, deployment)
        session.commit()
        _, index = watchlist_from_clip
        pipeline = LivePipeline(index, camera="group", config=LiveConfig())
        with open_source(deployment.cameras[0].source) as source:
            events = [e for frame in source.frames() for e in pipeline.process(frame)]
        from openlfr.live.deployment import end_deployment
        from openlfr.live.pipeline import CameraCounts
        from openlfr.live.supervisor import _store_counts

        _store_counts(deployment.cameras[0], CameraCounts(), pipeline.counts)
        end_deployment(session, deployment, "test over")
        assert events == []
        assert pipeline.counts.faces_processed >= 1 and len(seen) >= 2, pipeline.counts
        assert session.scalar(select(func.count()).select_from(Alert)) == 0
        assert session.get(Deployment, deployment.id).cameras[0].faces_processed >= 1
    # No new file, and no file holds any embedding or chip of those faces.
    files_after = {p for p in openlfr_home.rglob("*") if p.is_file()}
    # the audit chain's key and signed checkpoint (counts and hashes) may appear with the first
    # audited action; they are searched for the faces' data below like every other file
    anchors = {openlfr_home / "audit.key"} | set(openlfr_home.glob("audit-checkpoints/*"))
    assert files_after <= set(files_before) | {openlfr_home / "openlfr.sqlite3-journal"} | anchors
    stored = b"".join(p.read_bytes() for p in files_after if p.exists())
    assert not any(blob in stored for blob in seen)
    # Nothing logged or printed about them.
    out, errors = capfd.readouterr()
    assert not [r for r in caplog.records if r.name.startswith("openlfr.live")]
    assert "track" not in out + errors


def test_bad_sources_fail_clearly(watchlist_from_clip, tmp_path: Path, video: Path) -> None:  # type: ignore[no-untyped-def]
    truncated = tmp_path / "truncated.mp4"
    data = (video / "intel-head-pose-face-detection-male.mp4").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    for path in (truncated, corrupt):
        with (
            pytest.raises(SourceError, match="cannot open|no frame|truncated"),
            open_source(str(path)) as source,
        ):
            list(source.frames())
    with pytest.raises(SourceError, match="no such"):
        open_source(str(tmp_path / "missing.mp4"))
    result = CliRunner().invoke(app, ["replay", str(truncated), "--watchlist", "clip"])
    assert result.exit_code in (1, 2) and "truncated" in result.stderr
    started = time.monotonic()
    for url in ("rtsp://127.0.0.1:9/dead", "http://127.0.0.1:9/dead.mjpg"):
        with pytest.raises(SourceError, match="cannot open the stream"):
            open_source(url)
    assert time.monotonic() - started < 60


def test_deployment_stops_at_its_end_and_destroys_its_snapshot(watchlist_from_clip, video) -> None:  # type: ignore[no-untyped-def]
    factory, _ = watchlist_from_clip
    long_clip = str(video / "intel-backs-to-camera-no-faces.mp4")
    deployment_id = _plan(factory, "short", timedelta(seconds=10), long_clip)
    ended = run_deployment(factory, deployment_id)
    assert ended.status == "ended" and ended.end_reason == "time limit reached"
    with factory() as session:
        d = session.get(Deployment, deployment_id)
        # Workers get 10 s to stop before they are killed; the snapshot goes right after.
        ended_late = d.ended_at.replace(tzinfo=UTC) - d.ends_at.replace(tzinfo=UTC)
        assert ended_late < timedelta(seconds=12)
        assert d.cameras[0].frames > 0
        assert session.scalar(select(func.count()).select_from(SnapshotTemplate)) == 0
        with pytest.raises(OpenLFRError, match="ended"):
            run_deployment(factory, deployment_id)


def test_stop_request_ends_a_running_deployment(watchlist_from_clip, video) -> None:  # type: ignore[no-untyped-def]
    factory, _ = watchlist_from_clip
    long_clip = str(video / "intel-backs-to-camera-no-faces.mp4")
    deployment_id = _plan(factory, "stopped", timedelta(hours=1), long_clip)

    def stop_soon() -> None:
        time.sleep(4)
        with factory() as session:
            request_stop(session, deployment_id)

    threading.Thread(target=stop_soon, daemon=True).start()
    started = time.monotonic()
    ended = run_deployment(factory, deployment_id)
    assert ended.end_reason == "stopped by an operator"
    assert time.monotonic() - started < 30
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(SnapshotTemplate)) == 0


def test_crashed_deployment_loses_its_snapshot_at_the_next_start(watchlist_from_clip) -> None:  # type: ignore[no-untyped-def]
    factory, _ = watchlist_from_clip
    deployment_id = _plan(factory, "crashed", timedelta(hours=1), "0")
    with factory() as session:
        deployment = session.get(Deployment, deployment_id)
        assert freeze_snapshot(session, deployment) == 8
        import socket

        deployment.status, deployment.runner_pid = "running", 2**22 + 12345  # no such process
        deployment.runner_host = socket.gethostname()
        session.commit()
        assert session.scalar(select(func.count()).select_from(SnapshotTemplate)) == 8
        assert recover_crashed(session) == [deployment.id]
        assert session.scalar(select(func.count()).select_from(SnapshotTemplate)) == 0
        assert session.get(Deployment, deployment.id).status == "ended"


def test_deployment_refuses_a_past_end_and_no_reason(watchlist_from_clip) -> None:  # type: ignore[no-untyped-def]
    factory, _ = watchlist_from_clip
    now = datetime.now(UTC)
    with factory() as session:
        with pytest.raises(OpenLFRError, match="already passed"):
            create_deployment(
                session,
                name="x",
                location="lab",
                reason="r",
                watchlist="clip",
                starts_at=now - timedelta(hours=2),
                ends_at=now - timedelta(hours=1),
                cameras={"c": "0"},
                created_by="t",
            )
        with pytest.raises(OpenLFRError, match="reason"):
            create_deployment(
                session,
                name="x",
                location="lab",
                reason=" ",
                watchlist="clip",
                starts_at=now,
                ends_at=now + timedelta(hours=1),
                cameras={"c": "0"},
                created_by="t",
            )


def test_tracker_follows_a_moving_box_and_ends_lost_tracks() -> None:
    tracker = IouTracker(min_iou=0.3, max_missed=2)
    ids = []
    for i in range(5):
        matched, _ = tracker.update([Detection(100 + 5 * i, 100, 180 + 5 * i, 180, 1.0)], i)
        ids.append(matched[0][0].id)
    assert len(set(ids)) == 1
    matched, _ = tracker.update([Detection(400, 400, 480, 480, 1.0)], 5)
    assert matched[0][0].id != ids[0]
    ended = []
    for i in range(6, 10):
        ended += tracker.update([], i)[1]
    assert {t.id for t in ended} == {ids[0], matched[0][0].id}


def test_tracker_carries_a_hidden_face_forward_and_gives_its_place_to_a_new_one() -> None:
    tracker = IouTracker(min_iou=0.3, max_missed=12, motion=True)
    walking = [Detection(100 + 30 * i, 100, 180 + 30 * i, 180, 1.0) for i in range(8)]
    first = [tracker.update([walking[i]], i)[0][0][0].id for i in range(4)]
    assert len(set(first)) == 1
    # Hidden for three frames behind a nearer passer-by: its box then lies 120 px on from where
    # it was last seen (no overlap with that box), and the track still finds it.
    for i in range(4, 7):
        tracker.update([], i)
    assert tracker.update([walking[7]], 7)[0][0][0].id == first[0]
    # Without motion (the default) the hidden face gets a new track: no overlap with its box.
    still = IouTracker(min_iou=0.3, max_missed=12)
    before = [still.update([walking[i]], i)[0][0][0].id for i in range(4)][-1]
    assert still.update([walking[7]], 7)[0][0][0].id != before
    # A face that appears where a moving track was last seen is somebody else: a new track.
    tracker = IouTracker(min_iou=0.3, max_missed=12, motion=True)
    for i in range(4):
        tracker.update([walking[i]], i)
    assert tracker.update([walking[3]], 8)[0][0][0].id != first[0]


def test_policy_bounds_deployment_length_and_watchlist_size(watchlist_from_clip) -> None:  # type: ignore[no-untyped-def]
    from openlfr.errors import PolicyError
    from openlfr.governance.policy import DeploymentRules, Policy, WatchlistRules, load_policy

    factory, _ = watchlist_from_clip
    now = datetime.now(UTC)
    # the tests' cameras (conftest's policy file), with a shorter limit
    short = Policy(deployment=DeploymentRules(max_hours=2), cameras=load_policy().cameras)
    with factory() as session:
        with pytest.raises(PolicyError, match="longer than the policy's 2 h"):
            create_deployment(
                session,
                name="x",
                location="lab",
                reason="r",
                watchlist="clip",
                starts_at=now,
                ends_at=now + timedelta(hours=3),
                cameras={"c": "0"},
                created_by="t",
                policy=short,
            )
        deployment = create_deployment(
            session,
            name="x",
            location="lab",
            reason="r",
            watchlist="clip",
            starts_at=now,
            ends_at=now + timedelta(hours=1),
            cameras={"c": "0"},
            created_by="t",
            policy=short,
        )
        small = Policy(watchlist=WatchlistRules(max_subjects_per_deployment=5))
        with pytest.raises(PolicyError, match="8 current subjects; the policy allows 5"):
            freeze_snapshot(session, deployment, policy=small)


def _mapping_graph(pid: int) -> bool:
    """Whether process ``pid`` maps a deployment's shared graph (matching/shared.py)."""
    try:
        return "memfd:openlfr-watchlist-graph" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memfd is Linux's")
def test_a_large_lists_graph_is_built_once_and_shared_by_every_camera(
    watchlist_from_clip, video, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Two cameras on a list big enough for the graph (the bar lowered to this list): the
    runner builds it once, both workers read that copy in place and alert from it, and no
    process holds it after the end."""
    import psutil

    builds = count_graph_builds(monkeypatch)
    factory, _ = watchlist_from_clip
    clip = str(video / "intel-head-pose-face-detection-male.mp4")
    deployment_id = _plan(factory, "one graph", timedelta(minutes=5), {"east": clip, "west": clip})
    mapped: set[int] = set()
    workers: set[int] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for child in psutil.Process().children():
                workers.add(child.pid)
                if _mapping_graph(child.pid):
                    mapped.add(child.pid)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        ended = run_deployment(factory, deployment_id)
    finally:
        done.set()
        watcher.join()
    assert ended.end_reason == "every camera's source ended"
    assert len(builds) == 1  # in the runner, not once per camera
    assert len(mapped) >= 2  # both cameras' workers read the one copy
    with factory() as session:
        cameras = {c.id for c in session.get(Deployment, deployment_id).cameras}
        alerts = session.scalars(select(Alert).where(Alert.deployment_id == deployment_id)).all()
        assert {a.camera_id for a in alerts} == cameras
        assert {a.subject_name for a in alerts} == {"walker"}
    assert not _mapping_graph(os.getpid())
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            held.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the listing's own descriptor, closed by now
            continue
    assert not [link for link in held if "openlfr-watchlist-graph" in link]


def test_a_stop_during_the_graphs_build_ends_the_deployment_at_once(
    watchlist_from_clip, video, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A list of millions takes minutes to build: an operator's stop, asked meanwhile, ends the
    deployment within a poll, no camera starts, and the graph, once built, is let go."""
    import openlfr.live.deployment as deployment_module
    from openlfr.matching import approximate as ann
    from openlfr.matching.approximate import TemplateGraph
    from openlfr.matching.shared import SharedGraph

    built: list[SharedGraph] = []

    def slow_build(embeddings, subject_ids, names, model):  # type: ignore[no-untyped-def]
        time.sleep(8)  # as if building a large graph
        shared = SharedGraph.of(TemplateGraph(embeddings))
        built.append(shared)
        return None, subject_ids, shared

    monkeypatch.setattr(deployment_module, "share_graph", slow_build)
    monkeypatch.setattr(ann, "APPROXIMATE_FROM", 2)  # the clip's list, as if it were large
    factory, _ = watchlist_from_clip
    clip = str(video / "intel-head-pose-face-detection-male.mp4")
    deployment_id = _plan(factory, "stopped while building", timedelta(hours=1), clip)
    threading.Timer(1.0, lambda: request_stop(factory(), deployment_id)).start()
    started = time.monotonic()
    ended = run_deployment(factory, deployment_id, poll_s=0.25)
    assert time.monotonic() - started < 6  # not after the build's 8 s
    assert ended.status == "ended" and ended.end_reason == "stopped by an operator"
    with factory() as session:
        d = session.get(Deployment, deployment_id)
        assert d.cameras[0].frames == 0
        assert session.scalar(select(func.count()).select_from(SnapshotTemplate)) == 0
    deadline = time.monotonic() + 30
    while not (built and built[0].fd == -1) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert built and built[0].fd == -1  # closed by the abandoned build itself
