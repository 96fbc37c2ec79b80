"""Cameras on one machine against cameras on a local 2-node Ray cluster (issue 13, point 6):
the same deployment, the same clip, the same cores, in the same run; the figure is the
overhead ratio, not a speed-up (on 2 cores there is none to expect).

    python benchmarks/cluster.py [--data ../shared/data] [--cameras 1,2] [--seconds 30]
        [--json FILE]

For each number of cameras, a deployment runs ``--cameras`` cameras on one clip, first with
the local supervisor (one spawned process per camera), then with ``--cluster`` on a Ray test
cluster started here (a head with no CPUs, the controller's node, and two worker nodes,
``site-a`` and ``site-b``, as separate raylets; cameras pinned to them in turn, and the head
started without spilling, as docs/scale.md says). The clip is two shared-data clips played in
turn to ``--seconds`` (``intel-head-pose-face-detection-male.mp4``, then ``-female.mp4``), paced
in real time; the two people are on the watchlist (enrolled from each clip's frame 0), with
seven other people of the shared data. A deployment ends when every camera's clip has ended.

Measured per run, from the store the controller wrote: frames processed per camera per second
of video (the rest dropped: a camera that cannot keep up drops frames, as a live one would),
the alert latency the pipeline records (from the face first usable to the alert raised), and
the wall time including the workers' start. A camera count is *served* when every alert came
within 1 s and at most 20% of the frames were dropped. About 3 minutes with the defaults.

``run(args)`` returns the report as a dict (benchmarks/scale.py calls it); ``--json`` writes it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2

CLIPS = ("intel-head-pose-face-detection-male.mp4", "intel-head-pose-face-detection-female.mp4")
ENROLLED = {"walker": CLIPS[0], "walking-woman": CLIPS[1]}
OTHERS = ["amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon"]
OTHERS_FOLDER = "faces/misc/faceapi_js/examples/images"
SERVED_LATENCY_S = 1.0
SERVED_DROP_SHARE = 0.2


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/data")
    parser.add_argument("--cameras", default="1,2", help="camera counts to run, e.g. 1,2,3")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each clip")
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args(argv)


def make_clip(data: Path, seconds: float, out: Path) -> float:
    """The two clips in turn until ``seconds``; returns its length in seconds."""
    frames, fps = [], 0.0
    for name in CLIPS:
        capture = cv2.VideoCapture(str(data / "video" / name))
        fps = capture.get(cv2.CAP_PROP_FPS)
        while (read := capture.read())[0]:
            frames.append(read[1])
        capture.release()
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    count = 0
    while count < seconds * fps:
        for frame in frames:
            writer.write(frame)
            count += 1
    writer.release()
    return count / fps


def prepare(data: Path, home: Path) -> Any:
    """A store in ``home`` with the watchlist 'bench'; returns its session factory."""
    from openlfr.governance.policy import load_policy
    from openlfr.live.sources import open_source
    from openlfr.store.db import open_store
    from openlfr.store.watchlists import (
        WatchlistEntry,
        add_reference_image,
        add_subject,
        create_watchlist,
    )
    from openlfr.vision import find_faces
    from openlfr.vision.image import load_image

    (home / "policy.toml").write_text(
        f"[cameras]\nlocal_paths = {json.dumps([str(home), str(data)])}\n"
    )
    entry = WatchlistEntry(
        category="missing-at-risk",
        reason="cluster benchmark",
        legal_basis="benchmark: no real person",
        authorised_by="insp-bench",
        added_by="bench",
        image_source="shared development data",
    )
    photos = {}
    for name, clip in ENROLLED.items():
        with open_source(str(data / "video" / clip)) as source:
            photos[name] = next(iter(source.frames())).image
    for name in OTHERS:
        photos[name] = load_image(data / OTHERS_FOLDER / name / f"{name}1.jpg")
    store = open_store(f"sqlite:///{home / 'openlfr.sqlite3'}")
    policy = load_policy()
    with store() as session:
        watchlist = create_watchlist(session, "bench")
        for name, image in photos.items():
            face = max(find_faces(image, upsample=1), key=lambda f: f.box.width)
            subject = add_subject(session, watchlist, name=name, entry=entry, policy=policy)
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
        session.commit()
    return store


def one_run(store: Any, clip: Path, length_s: float, cameras: int, cluster: str | None) -> dict:
    """One deployment of ``cameras`` cameras on ``clip``, locally or on ``cluster``."""
    from sqlalchemy import select

    from openlfr.live.deployment import create_deployment, run_deployment
    from openlfr.store.models import Alert, Deployment

    names = [f"cam-{i + 1}" for i in range(cameras)]
    with store() as session:
        now = datetime.now(UTC)
        deployment = create_deployment(
            session,
            name=f"bench {cameras} {'cluster' if cluster else 'local'}",
            location="bench",
            reason="benchmark",
            watchlist="bench",
            starts_at=now,
            ends_at=now + timedelta(minutes=15),
            cameras={name: str(clip) for name in names},
            resources={name: ("site-a", "site-b")[i % 2] for i, name in enumerate(names)}
            if cluster
            else None,
            created_by="bench",
            dpia_ref="DPIA-B",
            equality_ref="EIA-B",
            signage_confirmed=True,
        )
        deployment.authorised_by, deployment.authorised_at = "insp-bench", now
        session.commit()
        deployment_id = deployment.id
    started = time.monotonic()
    run_deployment(store, deployment_id, cluster=cluster, poll_s=0.25)
    wall_s = time.monotonic() - started
    with store() as session:
        d = session.get(Deployment, deployment_id)
        alerts = session.scalars(select(Alert).where(Alert.deployment_id == deployment_id)).all()
        latencies = sorted(a.latency_s for a in alerts)
        frames = [c.frames for c in d.cameras]
        delivered = [c.frames + c.frames_dropped for c in d.cameras]
        result = {
            "cameras": cameras,
            "backend": "cluster" if cluster else "local",
            "end_reason": d.end_reason,
            "wall_s": round(wall_s, 1),
            "fps_per_camera": round(statistics.mean(frames) / length_s, 2),
            "drop_share": round(1 - sum(frames) / max(sum(delivered), 1), 3),
            "alerts": len(alerts),
            "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "latency_max_s": round(latencies[-1], 3) if latencies else None,
            "nodes": sorted({c.node for c in d.cameras if c.node}),
        }
    result["served"] = bool(
        latencies and latencies[-1] < SERVED_LATENCY_S and result["drop_share"] <= SERVED_DROP_SHARE
    )
    return result


@contextlib.contextmanager
def local_cluster(cpus_per_node: int) -> Any:
    """A head (no CPUs) and two worker nodes with a custom resource each, no spilling."""
    from ray.cluster_utils import Cluster

    from openlfr.live.cluster import FALLBACK_DIR, NO_SPILL_CONFIG

    os.makedirs(FALLBACK_DIR, exist_ok=True)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "object_store_memory": 100 * 2**20,
            "_system_config": NO_SPILL_CONFIG,
        },
    )
    for site in ("site-a", "site-b"):
        cluster.add_node(
            num_cpus=cpus_per_node, resources={site: 100}, object_store_memory=100 * 2**20
        )
    cluster.wait_for_nodes()
    try:
        yield cluster.address
    finally:
        cluster.shutdown()


def run(args: argparse.Namespace) -> dict:
    """The benchmark; returns its report (see the module's description)."""
    counts = [int(c) for c in str(args.cameras).split(",")]
    with tempfile.TemporaryDirectory(prefix="openlfr-cluster-bench-") as folder:
        home = Path(folder)
        previous = os.environ.get("OPENLFR_HOME")
        os.environ["OPENLFR_HOME"] = str(home)
        try:
            clip = home / "clip.mp4"
            length_s = make_clip(args.data, args.seconds, clip)
            store = prepare(args.data, home)
            runs = []
            # local and cluster in turn for each count, so that whatever else loads the
            # machine weighs on both alike (the cluster's idle raylets cost little)
            with local_cluster(max(counts)) as address:
                for n in counts:
                    runs.append(one_run(store, clip, length_s, n, None))
                    runs.append(one_run(store, clip, length_s, n, address))
        finally:
            if previous is None:
                os.environ.pop("OPENLFR_HOME", None)
            else:
                os.environ["OPENLFR_HOME"] = previous
    by = {(r["backend"], r["cameras"]): r for r in runs}
    ratios = []
    for n in counts:
        local, cluster = by["local", n], by["cluster", n]
        ratio = {"cameras": n}
        ratio["fps_cluster_over_local"] = round(
            cluster["fps_per_camera"] / local["fps_per_camera"], 3
        )
        if local["latency_max_s"] and cluster["latency_max_s"]:
            ratio["latency_max_cluster_over_local"] = round(
                cluster["latency_max_s"] / local["latency_max_s"], 3
            )
        ratios.append(ratio)
    served = {
        backend: max(
            (r["cameras"] for r in runs if r["backend"] == backend and r["served"]), default=0
        )
        for backend in ("local", "cluster")
    }
    return {
        "clip_s": round(length_s, 1),
        "cpus": os.cpu_count(),
        "runs": runs,
        "ratios": ratios,
        "cameras_served": served,
    }


def show(report: dict) -> None:
    print(f"clip {report['clip_s']} s, {report['cpus']} CPUs")
    print("backend  cameras  fps/camera  dropped  alerts  latency p50/max (s)  wall (s)")
    for r in report["runs"]:
        print(
            f"{r['backend']:8} {r['cameras']:7} {r['fps_per_camera']:11} "
            f"{r['drop_share']:8.1%} {r['alerts']:7}  {r['latency_p50_s']}/{r['latency_max_s']}"
            f"{'':10} {r['wall_s']}"
        )
    for ratio in report["ratios"]:
        print(f"{ratio['cameras']} camera(s): cluster / local = {ratio}")
    print(f"cameras served with alerts under 1 s: {report['cameras_served']}")


def main() -> None:
    args = arguments()
    report = run(args)
    show(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if not all(r["end_reason"] == "every camera's source ended" for r in report["runs"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
