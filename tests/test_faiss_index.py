"""The approximate watchlist index (issue 13, point 4): the switch to FAISS above the measured
size, its top-1 against the exact index's on real faces padded with synthetic distractors,
several templates per subject, the score rules from top-k, the model checks, that the graph
never reaches disk, and the one copy a deployment's cameras share."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from openlfr.evaluation.distractors import GaussianDistractors
from openlfr.matching import ModelMismatchError, WatchlistIndex
from openlfr.matching import approximate as ann
from openlfr.matching.shared import SharedGraph, can_share
from openlfr.vision.embed import normalise
from openlfr.vision.models.calibration import load_calibration

MFN = "mobilefacenet-v1"


def _unit(rng: np.random.Generator, n: int, d: int = 192) -> np.ndarray:
    return normalise(rng.normal(size=(n, d)).astype(np.float32))


def _names(ids: np.ndarray) -> dict[int, str]:
    return {int(i): f"s{i}" for i in np.unique(ids)}


def _index(embeddings, ids, **kwargs) -> WatchlistIndex:  # type: ignore[no-untyped-def]
    return WatchlistIndex(embeddings, ids, _names(ids), model=MFN, **kwargs)


def test_the_index_switches_to_the_graph_from_the_measured_size(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    below = _unit(rng, ann.APPROXIMATE_FROM - 1, 8)
    assert not _index(below, np.arange(len(below))).approximate  # the shipped crossover
    monkeypatch.setattr(ann, "APPROXIMATE_FROM", 500)
    small, large = _unit(rng, 499), _unit(rng, 500)
    assert not _index(small, np.arange(499)).approximate
    index = _index(large, np.arange(500))
    assert index.approximate and index.template_count == 500
    # The threshold still follows the list's size in subjects, as the exact index's does.
    assert index.default_threshold() == load_calibration(MFN).threshold(500)
    # A batch known to be too small to repay the build (openlfr search on a few photos).
    few = _index(large, np.arange(500), expected_searches=ann.BUILD_PAYS_FROM - 1)
    assert not few.approximate
    assert _index(large, np.arange(500), expected_searches=ann.BUILD_PAYS_FROM).approximate


@pytest.fixture(scope="module")
def real_faces(test_data: Path) -> dict[str, np.ndarray]:
    """MobileFaceNet embeddings of 8 celeba-dev identities and 40 NASA portraits."""
    from openlfr.evaluation.datasets import identity_folders, largest_faces
    from openlfr.vision.batch import list_images
    from openlfr.vision.models import get_model

    if not get_model(MFN).installed():
        pytest.skip("MobileFaceNet is not installed: run 'openlfr models install'")
    people = dict(list(identity_folders(test_data / "faces" / "celeba-dev").items())[:8])
    strangers = list_images([test_data / "faces" / "nasa-portraits"])[:40]
    paths = [p for ps in people.values() for p in ps] + strangers
    found = largest_faces(paths, cache=None, model=MFN)
    enrolled, enrolled_ids, mated, mated_ids = [], [], [], []
    for sid, images in enumerate(people.values()):
        embs = [found[p].embedding for p in images if found[p] is not None]
        enrolled += embs[:2]  # two templates per subject
        enrolled_ids += [sid] * 2
        mated += embs[2:]
        mated_ids += [sid] * len(embs[2:])
    return {
        "enrolled": normalise(np.stack(enrolled)),
        "enrolled_ids": np.array(enrolled_ids),
        "mated": normalise(np.stack(mated)),
        "mated_ids": np.array(mated_ids),
        "strangers": normalise(np.stack([found[p].embedding for p in strangers if found[p]])),
    }


def test_the_graph_finds_the_exact_top1_on_real_faces_among_30k(real_faces) -> None:
    rng = np.random.default_rng(1)
    real = np.vstack([real_faces["enrolled"], real_faces["mated"], real_faces["strangers"]])
    distractors = GaussianDistractors.fit(real).sample(30_000, rng)
    embeddings = np.vstack([real_faces["enrolled"], distractors])
    ids = np.concatenate([real_faces["enrolled_ids"], 1000 + np.arange(len(distractors))])
    exact = _index(embeddings, ids, approximate=False)
    graph = _index(embeddings, ids)
    assert graph.approximate and not exact.approximate
    probes = np.vstack([real_faces["mated"], real_faces["strangers"]])
    want, got = exact.search(probes, top_k=1, model=MFN), graph.search(probes, top_k=1, model=MFN)
    assert (
        np.mean([w[0].subject_id == g[0].subject_id for w, g in zip(want, got, strict=True)])
        >= 0.99
    )
    # Where it finds the same subject, it reports the exact similarity.
    same = [
        (w[0], g[0]) for w, g in zip(want, got, strict=True) if w[0].subject_id == g[0].subject_id
    ]
    assert all(abs(w.similarity - g.similarity) < 2e-4 for w, g in same)
    # The mated searches find their person as often as through the exact index. (Distractors
    # fitted on only 8 people crowd them: rank-1 here is no measure of the model.)
    n = len(real_faces["mated"])
    hits = [
        sum(r[0].subject_id == s for r, s in zip(res[:n], real_faces["mated_ids"], strict=True))
        for res in (want, got)
    ]
    assert hits[1] >= hits[0] - 1


def test_subjects_with_many_templates_count_once_with_their_best() -> None:
    rng = np.random.default_rng(2)
    centre = _unit(rng, 1)[0]
    crowd = normalise(centre + 0.15 * rng.normal(size=(40, 192)).astype(np.float32) / 14)
    embeddings = np.vstack([crowd, _unit(rng, 2000)])
    ids = np.concatenate([np.full(40, 7), 100 + np.arange(2000)])  # subject 7: 40 templates
    exact = _index(embeddings, ids, approximate=False)
    graph = _index(embeddings, ids, approximate=True)
    probes = normalise(np.vstack([centre, _unit(rng, 20)]))
    for want, got in zip(exact.search(probes, top_k=5), graph.search(probes, top_k=5), strict=True):
        assert len(got) == 5 and len({c.subject_id for c in got}) == 5
        assert [c.subject_id for c in got] == [c.subject_id for c in want]
        assert [c.similarity for c in got] == pytest.approx([c.similarity for c in want], abs=2e-4)
    assert graph.search(centre[None], top_k=1)[0][0].subject == "s7"


@pytest.mark.parametrize("rule", ["gap", "z"])
def test_score_rules_from_top_k_agree_with_the_exact_ones(rule: str) -> None:
    rng = np.random.default_rng(3)
    embeddings = _unit(rng, 3000)
    probes = normalise(embeddings[:30] + 0.06 * rng.normal(size=(30, 192)).astype(np.float32))
    priors = {"mean": 0.0, "std": 0.07, "weight": 50.0} if rule == "z" else {}
    calibration = replace(load_calibration(MFN), score=rule, priors=priors)
    kwargs = {"calibration": calibration}
    exact = _index(embeddings, np.arange(3000), approximate=False, **kwargs)
    graph = _index(embeddings, np.arange(3000), approximate=True, **kwargs)
    want, got = exact.search(probes, top_k=1), graph.search(probes, top_k=1)
    assert [w[0].subject_id for w in want] == [g[0].subject_id for g in got]
    # z: impostor moments from the templates' mean and covariance, less the best one: equal to
    # the exact rule's for one template per subject (up to float rounding).
    assert [g[0].score for g in got] == pytest.approx([w[0].score for w in want], abs=2e-3)


def test_the_graph_holds_half_precision_templates_and_answers_as_float32_does() -> None:
    """float16 templates (approximate.py: a third less memory, a faster walk) give the float32
    graph's answers, with similarities within 2e-4 of float32's, exact products included."""
    from openlfr.matching.index import _products

    rng = np.random.default_rng(8)
    embeddings = _unit(rng, 4000)
    probes = normalise(embeddings[:50] + 0.05 * rng.normal(size=(50, 192)).astype(np.float32))
    half = _index(embeddings, np.arange(4000), approximate=True)
    full = _index(
        embeddings, np.arange(4000), approximate=True, graph=ann.GraphSettings(half_precision=False)
    )
    assert half.graph.templates.dtype == np.float16 and half.graph.half_precision
    assert full.graph.templates.dtype == np.float32 and not full.graph.half_precision
    assert np.all(np.abs(half.graph.templates - embeddings) <= 2**-11 * np.abs(embeddings) + 1e-7)
    saved = full.graph.memory_bytes - half.graph.memory_bytes
    assert saved == embeddings.size * 2  # two bytes a component
    got, want = half.search(probes, top_k=3), full.search(probes, top_k=3)
    assert [[c.subject_id for c in r] for r in got] == [[c.subject_id for c in r] for r in want]
    for g, w in zip(got, want, strict=True):
        assert [c.similarity for c in g] == pytest.approx([c.similarity for c in w], abs=2e-4)
    # Exact products over float16 templates, upcast a block at a time.
    exact = probes @ embeddings.T
    assert np.abs(half.subject_scores(probes) - exact).max() < 2e-4
    blocks = _products(probes, half.graph.templates, block=999)
    assert blocks.dtype == np.float32 and np.abs(blocks - exact).max() < 2e-4


def test_a_mapped_graph_must_hold_templates() -> None:
    """Bytes of some other FAISS index (here 8-bit codes, which lose too much) are refused."""
    faiss = ann.load_faiss()
    rng = np.random.default_rng(9)
    other = faiss.IndexHNSWSQ(32, faiss.ScalarQuantizer.QT_8bit, 16, faiss.METRIC_INNER_PRODUCT)
    other.train(_unit(rng, 500, 32))
    other.add(_unit(rng, 500, 32))
    chunks: list[bytes] = []
    faiss.write_index(other, faiss.PyCallbackIOWriter(lambda c: chunks.append(bytes(c)) or len(c)))
    with pytest.raises(ValueError, match="not an HNSW graph of templates"):
        ann.TemplateGraph.mapped(np.frombuffer(b"".join(chunks), dtype=np.uint8))
    flat = faiss.IndexFlatIP(32)  # no graph at all
    flat.add(_unit(rng, 10, 32))
    chunks.clear()
    faiss.write_index(flat, faiss.PyCallbackIOWriter(lambda c: chunks.append(bytes(c)) or len(c)))
    with pytest.raises(ValueError, match="not an HNSW graph of templates: IndexFlat"):
        ann.TemplateGraph.mapped(np.frombuffer(b"".join(chunks), dtype=np.uint8))


def test_the_graph_refuses_another_models_probes() -> None:
    rng = np.random.default_rng(4)
    graph = _index(_unit(rng, 600), np.arange(600), approximate=True)
    with pytest.raises(ModelMismatchError, match="re-embed"):
        graph.search(_unit(rng, 1), model="dlib-resnet-v1")
    with pytest.raises(ModelMismatchError, match="never compared"):
        graph.search(_unit(rng, 1, 128))


def test_the_graph_never_reaches_disk(tmp_path, monkeypatch, openlfr_home) -> None:
    faiss = ann.load_faiss()
    assert faiss is not None

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a watchlist's graph was written out")

    for name in ("write_index", "serialize_index", "write_VectorTransform"):
        monkeypatch.setattr(faiss, name, refuse)
    monkeypatch.chdir(tmp_path)
    before = {p for p in tmp_path.rglob("*")}
    rng = np.random.default_rng(5)
    graph = _index(_unit(rng, 2000), np.arange(2000), approximate=True)
    graph.search(_unit(rng, 3), top_k=3)
    del graph
    assert {p for p in tmp_path.rglob("*")} == before
    assert not [f for f in os.listdir(openlfr_home) if f != "policy.toml"]


def test_without_faiss_search_stays_exact_with_one_warning(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes 'import faiss' fail
    monkeypatch.setattr(ann, "_faiss", None)
    monkeypatch.setattr(ann, "_warned", False)
    rng = np.random.default_rng(6)
    with pytest.warns(RuntimeWarning, match="pip install faiss-cpu"):
        index = _index(_unit(rng, 50), np.arange(50), approximate=True)
    assert not index.approximate and len(index.search(_unit(rng, 1), top_k=2)[0]) == 2


def _transparent_huge_pages() -> bool:
    try:
        mode = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False
    return "[never]" not in mode and int(os.uname().release.split(".")[0]) >= 6


@pytest.mark.skipif(not _transparent_huge_pages(), reason="no transparent huge pages here")
def test_the_graph_moves_onto_huge_pages_and_still_finds_the_same() -> None:
    # A lone probe's walk is TLB-bound on 4 KiB pages (approximate.py): 16,000 float16
    # templates are 6 MB, so at least two whole 2 MiB pages move.
    rng = np.random.default_rng(7)
    embeddings = _unit(rng, 16_000)
    graph = _index(embeddings, np.arange(16_000), approximate=True)
    assert graph.graph is not None and graph.graph.huge_page_bytes >= 2 << 20
    probes = normalise(embeddings[:20] + 0.05 * rng.normal(size=(20, 192)).astype(np.float32))
    assert [r[0].subject_id for r in graph.search(probes, top_k=1)] == list(range(20))


@pytest.mark.skipif(not can_share(), reason="anonymous memory files (memfd) are Linux's")
def test_a_shared_graph_is_read_in_place_sealed_and_searches_as_built() -> None:
    """The copy a deployment's cameras share (matching/shared.py): the same answers as the
    graph it was written from, its templates in the shared memory itself, and no way to write."""
    rng = np.random.default_rng(5)
    embeddings, ids = _unit(rng, 3000, 32), np.repeat(np.arange(1500), 2)
    built = _index(embeddings, ids, approximate=True)
    shared = SharedGraph.of(built.graph)
    try:
        graph = shared.open()
        index = WatchlistIndex(None, built.graph_ids, _names(ids), model=MFN, prebuilt=graph)
        probes = embeddings[::97] + 0.05 * _unit(rng, len(embeddings[::97]), 32)
        assert index.search(probes, top_k=3) == built.search(probes, top_k=3)
        start = graph.templates.ctypes.data
        view = graph._buffer
        assert view.ctypes.data <= start < view.ctypes.data + view.nbytes  # no private copy
        assert not graph.templates.flags.writeable
        assert os.readlink(f"/proc/self/fd/{shared.fd}").startswith("/memfd:")  # no file
        with pytest.raises(OSError):
            os.write(shared.fd, b"x")  # sealed
        with pytest.raises(ValueError, match="subject ids, in order"):
            WatchlistIndex(None, built.graph_ids[::-1], _names(ids), model=MFN, prebuilt=graph)
    finally:
        shared.close()
