"""Deployments on a Ray cluster (issue 13, points 1-3), for real: Ray's own multi-node test
cluster (a head and two worker nodes, separate raylets on this machine, a custom resource on
each), real faces, PostgreSQL when the suite has it. Checked: alerts stored by the controller,
the hard end, the snapshot gone from every node, an actor killed mid-run (restarted, the gap
counted, no stored alert lost or duplicated), a worker node killed (its cameras down, the rest
carry on), nothing about a face on any node's disk, the controller killed outright (its actors
die with it), a cluster that could spill refused, and an address nobody answers on."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from service_support import authorise_for_tests, count_graph_builds, run_cli, wait_until
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from openlfr.live.deployment import create_deployment, recover_crashed, run_deployment
from openlfr.live.supervisor import camera_record
from openlfr.store import Alert, Deployment, SnapshotTemplate

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install '.[cluster]'")
cluster_utils = pytest.importorskip("ray.cluster_utils")

from openlfr.live import cluster as cluster_module  # noqa: E402  (needs ray)

pytestmark = pytest.mark.slow
WAIT_S = 90  # actors load their models on a loaded 2-core machine
_until = functools.partial(wait_until, timeout_s=WAIT_S, every_s=0.2)
WALKER = "intel-head-pose-face-detection-male.mp4"  # 'walker' is enrolled from its frame 0
LONG_CLIP = "intel-backs-to-camera-no-faces.mp4"  # 139 s: outlasts every test
GROUP = "openmpf-indoor-group.mp4"  # faces, none of them on the list
CAMERAS = {"gate": "walker", "hall": "empty", "yard": "group"}


def _looped(source: Path, times: int, out: Path) -> Path:
    """``source`` played ``times`` over, as one file (the shared clips last a few seconds; a
    camera here must outlast the kills)."""
    import cv2

    frames = []
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS)
    while (read := capture.read())[0]:
        frames.append(read[1])
    capture.release()
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for _ in range(times):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    video = Path(os.environ.get("OPENLFR_TEST_DATA", "/nonexistent")) / "video"
    if not video.is_dir():
        pytest.skip("real-face data absent: set OPENLFR_TEST_DATA to the shared data folder")
    folder = tmp_path_factory.mktemp("clips")
    return {
        "walker": _looped(video / WALKER, 12, folder / "walker.mp4"),  # 62 s
        "group": _looped(video / GROUP, 20, folder / "group.mp4"),  # 60 s
        "empty": video / LONG_CLIP,
    }


@pytest.fixture(scope="module")
def ray_cluster():  # type: ignore[no-untyped-def]
    """A head (no CPUs: the controller's node) and two worker nodes, 'site-a' and 'site-b',
    started as OpenLFR documents a head: no spilling, fallback files on tmpfs. This process
    is a Ray driver of it for the module."""
    os.makedirs(cluster_module.FALLBACK_DIR, exist_ok=True)
    store_mb = 80 * 2**20
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "object_store_memory": store_mb,
            "_system_config": cluster_module.NO_SPILL_CONFIG,
        },
    )
    nodes = {
        site: cluster.add_node(num_cpus=3, resources={site: 100}, object_store_memory=store_mb)
        for site in ("site-a", "site-b")
    }
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="openlfr", log_to_driver=False)
    try:
        yield cluster, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


def _plan(
    store: sessionmaker[Session],
    cameras: dict[str, str],
    resources: dict[str, str],
    lasts: timedelta,
) -> int:
    with store() as session:
        now = datetime.now(UTC)
        deployment = create_deployment(
            session,
            name="cluster",
            location="lab",
            reason="test",
            watchlist="clip",
            starts_at=now,
            ends_at=now + lasts,
            cameras=cameras,
            resources=resources,
            created_by="test",
        )
        authorise_for_tests(deployment)
        session.commit()
        return deployment.id


def _cameras(store: sessionmaker[Session], deployment_id: int) -> dict[str, dict]:
    with store() as session:
        d = session.get(Deployment, deployment_id)
        return {c.name: camera_record(c, d.status) for c in d.cameras}


def _alerts(store: sessionmaker[Session], deployment_id: int) -> dict[str, bytes]:
    with store() as session:
        rows = session.scalars(select(Alert).where(Alert.deployment_id == deployment_id))
        return {a.id: a.probe_image for a in rows}


def _snapshot_rows(store: sessionmaker[Session]) -> int:
    with store() as session:
        return session.scalar(select(func.count()).select_from(SnapshotTemplate))


@pytest.fixture
def store(database_url: str, db_backend: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The shared store a cluster's controller writes to: PostgreSQL when the suite has one (a
    cluster run is costly; test_supervision covers the same bookkeeping on SQLite)."""
    from service_support import service_store

    if db_backend == "sqlite" and request.config.getoption("postgres_url"):
        pytest.skip("cluster deployments are tested on PostgreSQL (it is available)")
    return service_store(database_url)


def _actors_alive() -> list[dict]:
    from ray._private.state import state

    return [a for a in state.actor_table(None).values() if a["State"] != "DEAD"]


@pytest.fixture
def watchlist(store: sessionmaker[Session], test_data: Path) -> sessionmaker[Session]:
    """'walker' and seven others enrolled from real photos, on the test's store."""
    from test_live import _enrol, _frame

    from openlfr.store.watchlists import create_watchlist
    from openlfr.vision.image import load_image

    cast = test_data / "faces/misc/faceapi_js/examples/images"
    with store() as session:
        wl = create_watchlist(session, "clip")
        _enrol(session, wl, "walker", _frame(test_data / "video" / WALKER, 0))
        for name in ["amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon"]:
            _enrol(session, wl, name, load_image(cast / name / f"{name}1.jpg"))
        session.commit()
    return store


def test_a_deployment_across_two_nodes_survives_kills_and_leaves_nothing(
    ray_cluster, watchlist: sessionmaker[Session], clips: dict[str, Path], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # The list counts as large (the bar lowered to it): the runner builds its graph once, and
    # the snapshot object carries it to the nodes, where the actors read it in place (with no
    # templates beside it, an actor could search no other way).
    builds = count_graph_builds(monkeypatch)
    cluster, nodes = ray_cluster
    store = watchlist
    cameras = {name: str(clips[clip]) for name, clip in CAMERAS.items()}
    resources = {"gate": "site-a", "hall": "site-a", "yard": "site-b"}
    deployment_id = _plan(store, cameras, resources, timedelta(seconds=60))
    names = ["walker", "bernadette", "leonard", "sheldon"]
    runner = threading.Thread(
        target=run_deployment,
        args=(store, deployment_id),
        kwargs={"cluster": cluster.address, "poll_s": 0.25},
        daemon=True,
    )
    runner.start()
    _until(
        lambda: all(c["state"] == "running" for c in _cameras(store, deployment_id).values()),
        "every camera to run",
    )
    placed = {name: c["node"] for name, c in _cameras(store, deployment_id).items()}
    node_ids = {site: node.node_id[:12] for site, node in nodes.items()}
    assert placed["gate"].endswith(node_ids["site-a"]) and placed["hall"] == placed["gate"]
    assert placed["yard"].endswith(node_ids["site-b"])
    with store() as session:
        templates = [t.embedding for t in session.scalars(select(SnapshotTemplate))]
    assert templates

    # The controller stores the gate camera's alert for walker.
    _until(lambda: _alerts(store, deployment_id), "walker's alert")
    stored = _alerts(store, deployment_id)

    # Kill the gate camera's actor process: Ray restarts it, the controller records the crash
    # and starts the camera again where a live picture would be.
    actor = ray.get_actor(f"openlfr-{deployment_id}-{_camera_id(store, deployment_id, 'gate')}")
    pid = ray.get(actor.start.remote(0, None, None))[2]  # a second start only says who it is
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    gate = _until(
        lambda: (
            (c := _cameras(store, deployment_id)["gate"])["restarts"]
            and c["state"] in {"running", "lagging", "reconnecting"}
            and c
        ),
        "the gate camera to run again",
    )
    print(f"measured: gate running again {time.monotonic() - killed:.1f} s after the kill")
    assert gate["crashes"] == 1 and gate["last_crash"].startswith("the actor")
    assert gate["down_s"] > 0
    after = _alerts(store, deployment_id)
    assert all(after.get(i) == image for i, image in stored.items())  # none lost, none altered

    # Kill node site-b: the yard camera is down, the others carry on.
    hall_frames = _cameras(store, deployment_id)["hall"]["frames"]
    cluster.remove_node(nodes["site-b"])
    _until(lambda: _cameras(store, deployment_id)["yard"]["state"] == "down", "yard to be down")
    _until(
        lambda: _cameras(store, deployment_id)["hall"]["frames"] > hall_frames + 10,
        "the hall camera to carry on",
    )

    # The hard end, for the whole cluster.
    runner.join(timeout=WAIT_S + 60)
    assert not runner.is_alive()
    with store() as session:
        d = session.get(Deployment, deployment_id)
        assert d.status == "ended" and d.end_reason == "time limit reached"
        assert d.ended_at is not None and abs((d.ended_at - d.ends_at).total_seconds()) < 10
        late = session.scalar(
            select(func.count()).select_from(Alert).where(Alert.raised_at > d.ends_at)
        )
        assert late == 0
    final = _cameras(store, deployment_id)
    assert final["gate"]["frames_dropped"] > 0  # the gap after the kill, counted
    assert final["yard"]["node"].endswith(node_ids["site-b"])
    assert final["yard"]["faces_processed"] > 0 and final["yard"]["alerts"] == 0  # strangers
    assert set(_alerts(store, deployment_id)) >= set(stored)
    with store() as session:  # one alert for walker at the gate, across the restart
        rows = session.scalars(select(Alert).where(Alert.deployment_id == deployment_id)).all()
        per_camera = [(a.camera_id, a.subject_id) for a in rows]
    assert len(per_camera) == len(set(per_camera)), per_camera  # no second alert
    assert _snapshot_rows(store) == 0
    assert len(builds) == 1
    _until(lambda: not _actors_alive(), "every actor to be dead", timeout_s=30)
    _until(lambda: cluster_module.stored_objects() == 0, "no object left on any node", timeout_s=30)

    # Nothing about any face, nor the snapshot, on disk: no spill file or fallback file, and
    # no file Ray wrote on any node (logs included) holds a JPEG, a template or a name.
    fallback = Path(cluster_module.FALLBACK_DIR)
    assert not [p for p in fallback.rglob("*") if p.is_file()]
    session_dir = Path(ray._private.worker._global_node.get_session_dir_path())
    files = [p for p in session_dir.rglob("*") if p.is_file() and not p.is_symlink()]
    assert not [p for p in files if "spilled_objects" in str(p)]
    blobs = [b"\xff\xd8\xff", *(t[:64] for t in templates), *(n.encode() for n in names)]
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:  # a socket or a file Ray is rotating
            continue
        found = [b for b in blobs if b in data]
        assert not found, f"{path} holds {found[0][:8]!r}"
    print(f"measured: {len(files)} files of the Ray session scanned")


def _camera_id(store: sessionmaker[Session], deployment_id: int, name: str) -> int:
    with store() as session:
        d = session.get(Deployment, deployment_id)
        return next(c.id for c in d.cameras if c.name == name)


def test_a_full_object_store_spills_to_memory_only(ray_cluster) -> None:
    """Ray spills a full store even with automatic spilling off (measured: it does): the
    spilling directory on tmpfs is what keeps every copy in memory. 90 MiB into an 80 MiB
    store: the overflow lands in that directory, nothing of it on the disk Ray writes to, and
    it is gone once the objects are freed."""
    import numpy as np

    fallback = Path(cluster_module.FALLBACK_DIR)
    assert cluster_module.on_tmpfs(str(fallback)) and not cluster_module.on_tmpfs("/var/tmp")
    chunks = [np.frombuffer(os.urandom(30 * 2**20), np.uint8) for _ in range(3)]
    refs = [ray.put(chunk) for chunk in chunks]
    spilled = [p for p in fallback.rglob("*") if p.is_file() and p.stat().st_size > 2**20]
    assert spilled, "the store did not overflow: the test proves nothing"
    marks = [chunk[:64].tobytes() for chunk in chunks]
    session_dir = Path(ray._private.worker._global_node.get_session_dir_path())
    for path in (p for p in session_dir.rglob("*") if p.is_file() and not p.is_symlink()):
        with contextlib.suppress(OSError):
            data = path.read_bytes()
            assert not any(mark in data for mark in marks), f"{path} holds an object"
    del refs
    _until(
        lambda: not [p for p in fallback.rglob("*") if p.is_file() and p.stat().st_size],
        "the spilled copies to be deleted",
        timeout_s=30,
    )


def test_the_controller_killed_outright_takes_its_actors_and_snapshot_with_it(
    ray_cluster, watchlist: sessionmaker[Session], test_data: Path, tmp_path: Path
) -> None:
    cluster, _ = ray_cluster
    store = watchlist
    cameras = {"hall": str(test_data / "video" / LONG_CLIP)}
    deployment_id = _plan(store, cameras, {}, timedelta(hours=1))
    log = tmp_path / "runner.log"
    with log.open("wb") as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "openlfr.cli", "deployment", "run", str(deployment_id)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OPENLFR_RAY_ADDRESS": cluster.address},
        )
    try:
        _until(
            lambda: (
                _cameras(store, deployment_id)["hall"]["state"] == "running"
                or runner.poll() is not None
            ),
            "the camera to run",
        )
        assert runner.poll() is None, log.read_text()
        assert _actors_alive()
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        killed = time.monotonic()
        _until(lambda: not _actors_alive(), "the controller's actors to die", timeout_s=30)
        _until(lambda: cluster_module.stored_objects() == 0, "its snapshot freed", timeout_s=30)
        print(f"measured: actors and snapshot gone {time.monotonic() - killed:.1f} s after")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    with store() as session:  # the next deployment command ends it and destroys the copy
        assert recover_crashed(session) == [deployment_id]
    assert _snapshot_rows(store) == 0


def test_a_cluster_that_could_spill_or_answers_nobody_is_refused(
    ray_cluster, watchlist: sessionmaker[Session], test_data: Path
) -> None:
    """Nothing half-started: the deployment stays planned, no snapshot row is left."""
    store = watchlist
    deployment_id = _plan(
        store, {"hall": str(test_data / "video" / LONG_CLIP)}, {}, timedelta(hours=1)
    )
    for config in ({}, {"automatic_object_spilling_enabled": False}):
        assert cluster_module.spilling_problem(config)
    assert cluster_module.spilling_problem(cluster_module.NO_SPILL_CONFIG) is None
    # A head started with Ray's defaults (spilling on), as 'ray start --head' would.
    spilly = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "object_store_memory": 80 * 2**20,
        },
    )
    try:
        refused = run_cli("deployment", "run", str(deployment_id), "--cluster", spilly.address)
    finally:
        spilly.shutdown()
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 2, refused.stderr
    assert "object spilling is on" in said and "--system-config" in said
    started = time.monotonic()
    nobody = run_cli("deployment", "run", str(deployment_id), "--cluster", "127.0.0.1:1")
    said = " ".join(nobody.stderr.split())
    assert nobody.returncode == 2 and "no Ray cluster answers at 127.0.0.1:1" in said, said
    assert time.monotonic() - started < 30
    with store() as session:
        assert session.get(Deployment, deployment_id).status == "planned"
    assert _snapshot_rows(store) == 0
    shown = json.loads(run_cli("deployment", "show", str(deployment_id), "--json").stdout)
    assert shown["status"] == "planned" and shown["cameras"][0]["resource"] is None
