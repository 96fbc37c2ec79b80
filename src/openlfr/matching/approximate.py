"""Approximate 1:N search for large watchlists: a FAISS HNSW graph over the templates.

Above ``APPROXIMATE_FROM`` templates one exact matrix product per probe costs more than walking
a graph: at 1,000,000 MobileFaceNet templates the product reads 768 MB per probe (37 ms on 2
cores), the graph about 28,000 templates (3.0 ms for a lone probe, at recall 0.993).
HNSW beat IVF on these 2 cores at equal recall of the exact top-1, IVF needing to scan a
large share of its lists to reach 0.99 (docs/scale.md, ``benchmarks/faiss_index.py``).

The graph is built once per watchlist snapshot and lives in memory only: nothing here ever
writes it to a file, so a snapshot's templates are destroyed with the processes that hold them,
like the exact index's. A deployment builds it once and its cameras read that one copy in place
(``TemplateGraph.mapped``, over ``openlfr.matching.shared``'s anonymous memory or a cluster
node's object store), so four cameras on a list of millions do not build and hold four graphs.
The graph holds its templates in half precision (IEEE float16): a lone probe's walk is bound by
the memory it touches, one template per step, so halving a template's bytes makes the walk
1.2-1.4 times faster and the graph a third smaller, at the same recall (docs/scale.md). A
candidate's similarity is then the probe's inner product with the float16 template: each
component is rounded by at most 2^-11 of itself and both have unit length, so it is within
2^-11 (5e-4) of the float32 one, and measured within 1.3e-4 on real probes. Only *which*
templates are candidates is approximate.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

log = logging.getLogger(__name__)

# Templates from which the index switches from the exact product to the graph: the measured
# crossover on 2 cores, where a single probe's graph search (ef_search 128) became faster than
# the product at recall >= 0.99 of the exact top-1 (benchmarks/faiss_index.py --crossover).
APPROXIMATE_FROM = 20_000

# Searches from which building the graph pays for itself: its build costs about as much as
# this many exact searches, at any size, since both grow with the list (build ~0.3 ms per
# template on 2 cores, an exact search ~0.1 us per template). A batch job that knows it will
# search fewer probes (``openlfr search`` on a few photos) keeps the exact product.
BUILD_PAYS_FROM = 3_000


def needs_graph(
    templates: int, *, approximate_from: int | None = None, expected_searches: int | None = None
) -> bool:
    """Whether a list of ``templates`` is searched through a graph (read at call time, so a
    site, or a test, may move ``APPROXIMATE_FROM``)."""
    return templates >= (approximate_from or APPROXIMATE_FROM) and (
        expected_searches is None or expected_searches >= BUILD_PAYS_FROM
    )


# The search beam that holds recall of the exact top-1 at 0.99 or more grows with the list
# (measured on real probes among synthetic distractors, benchmarks/faiss_index.py):
# (templates up to, ef_search).
# With m 48 and float16 templates: a beam of 128 holds 0.9914 at 100k, 512 holds 0.9931 at 1M
# (448 held 0.9918, one standard error above 0.99: too thin; m 32 needed 256 and 1024); sizes
# between keep the larger beam, since a smaller graph at the same beam finds more.
SEARCH_BEAMS = ((100_000, 128), (1_500_000, 512), (10**12, 1024))


@dataclass(frozen=True, slots=True)
class GraphSettings:
    """HNSW's knobs. ``m``: links per template (memory: 2m int32 per template at the base
    layer; 48 against 32 at 1M: a third less CPU per lone probe at recall 0.99, for 12% more
    memory and a 1.3 times longer build); ``ef_construction``: the build's beam (80: at 1M
    templates, 40 built in half the time but reached only 0.987 recall at a beam of 1024, 80
    0.992; 160 cost 1.8 times the build for what m 48 gives at 1.2); ``ef_search``: the
    search's beam, by default from ``SEARCH_BEAMS`` for the list's size, and never below the
    number of templates asked for; ``half_precision``: templates held as float16 (False: float32,
    the graph measured until 2026-12-03, kept as the benchmark's baseline)."""

    m: int = 48
    ef_construction: int = 80
    ef_search: int | None = None
    half_precision: bool = True

    def beam(self, templates: int) -> int:
        if self.ef_search is not None:
            return self.ef_search
        return next(ef for size, ef in SEARCH_BEAMS if templates <= size)


_faiss: ModuleType | None = None
_warned = False


def load_faiss() -> ModuleType | None:
    """FAISS, or None with one warning where it cannot be imported (search stays exact)."""
    global _faiss, _warned
    if _faiss is not None:
        return _faiss
    try:
        import faiss
    except ImportError as exc:
        if not _warned:
            _warned = True
            warnings.warn(
                f"faiss-cpu is not installed ({exc}): large watchlists are searched exactly, "
                "which is slower (pip install faiss-cpu)",
                RuntimeWarning,
                stacklevel=3,
            )
        return None
    _faiss = faiss
    return faiss


class TemplateGraph:
    """An HNSW graph over unit-length templates (inner product = cosine similarity)."""

    def __init__(self, embeddings: np.ndarray, settings: GraphSettings | None = None) -> None:
        faiss = load_faiss()
        if faiss is None:
            raise ImportError("faiss-cpu is not installed")
        self.settings = settings or GraphSettings()
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        d, m = embeddings.shape[1], self.settings.m
        if self.settings.half_precision:  # float16 needs no training
            fp16 = faiss.ScalarQuantizer.QT_fp16
            self._index = faiss.IndexHNSWSQ(d, fp16, m, faiss.METRIC_INNER_PRODUCT)
        else:
            self._index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = self.settings.ef_construction
        self._index.add(embeddings)
        self._buffer: np.ndarray | None = None
        self._expose()

    @classmethod
    def mapped(cls, buffer: np.ndarray, settings: GraphSettings | None = None) -> TemplateGraph:
        """The graph that ``write`` serialised into ``buffer`` (uint8), read in place: its
        templates and links stay in ``buffer``'s memory, shared with whoever else maps it, and
        are never written to. ``buffer`` is kept for as long as the graph lives."""
        faiss = load_faiss()
        if faiss is None:
            raise ImportError("faiss-cpu is not installed")
        graph = cls.__new__(cls)
        graph.settings = settings or GraphSettings()
        graph._buffer = buffer
        reader = faiss.ZeroCopyIOReader(faiss.swig_ptr(buffer), buffer.size)
        graph._index = faiss.read_index(reader, faiss.IO_FLAG_MMAP_IFC)
        graph._expose()
        return graph

    @property
    def half_precision(self) -> bool:
        return self.templates.dtype == np.float16

    def write(self, sink: Callable[[bytes], object]) -> None:
        """Serialise the graph, in chunks, to ``sink`` (for ``mapped``; see shared.py)."""
        faiss = load_faiss()
        assert faiss is not None
        faiss.write_index(self._index, faiss.PyCallbackIOWriter(sink))

    def _expose(self) -> None:
        # The graph keeps its own copy of the templates: expose it as a view, so the caller can
        # drop its matrix and the templates are held once, not twice.
        faiss = load_faiss()
        assert faiss is not None
        if not isinstance(self._index, faiss.IndexHNSW):
            raise ValueError(f"not an HNSW graph of templates: {type(self._index).__name__}")
        storage = faiss.downcast_index(self._index.storage)
        fp16 = isinstance(storage, faiss.IndexScalarQuantizer) and (
            storage.sq.qtype == faiss.ScalarQuantizer.QT_fp16
        )
        if not (fp16 or isinstance(storage, faiss.IndexFlat)):
            raise ValueError(f"not an HNSW graph of templates: {type(storage).__name__}")
        n, d = storage.ntotal, storage.d
        codes = faiss.rev_swig_ptr(storage.codes.data(), storage.codes.size())
        self.templates = codes.view(np.float16 if fp16 else np.float32).reshape(n, d)
        self.templates.flags.writeable = False  # a mapped graph's memory is read-only
        neighbours = self._index.hnsw.neighbors
        links = faiss.rev_swig_ptr(neighbours.data(), neighbours.size())
        self.huge_page_bytes = huge_pages(self.templates) + huge_pages(links)

    def search(self, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, template rows)`` of each probe's ``k`` nearest templates, best
        first; rows of -1 where fewer were found."""
        faiss = load_faiss()
        assert faiss is not None
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.settings.beam(len(self.templates)), k)
        return self._index.search(np.ascontiguousarray(probes, np.float32), k, params=params)

    @property
    def memory_bytes(self) -> int:
        """Templates plus the graph's links (an estimate from the base layer's size)."""
        return self.templates.nbytes + faiss_links_bytes(self._index)


# Linux's madvise advice (asm-generic/mman-common.h) and its transparent huge page size.
_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25
_HUGE_PAGE = 2 << 20


def huge_pages(array: np.ndarray) -> int:
    """Back the whole 2 MiB pages inside ``array``'s memory with transparent huge pages, now
    (``MADV_COLLAPSE``: about 2 s for 1 GB, against minutes of build). Bytes moved; 0 where the
    system cannot (not Linux, a kernel before 6.1, huge pages turned off), which only costs
    speed. The memory stays anonymous and in RAM: nothing of it reaches disk."""
    start = (array.ctypes.data + _HUGE_PAGE - 1) // _HUGE_PAGE * _HUGE_PAGE
    end = (array.ctypes.data + array.nbytes) // _HUGE_PAGE * _HUGE_PAGE
    if end <= start or not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return 0
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for advice in (_MADV_HUGEPAGE, _MADV_COLLAPSE):
        if libc.madvise(start, end - start, advice) != 0:
            log.debug("madvise(%d) refused: errno %d", advice, ctypes.get_errno())
            return 0
    return end - start


def faiss_links_bytes(index) -> int:  # type: ignore[no-untyped-def]
    """Bytes of an HNSW graph's neighbour lists, levels and offsets."""
    hnsw = index.hnsw
    return int(hnsw.neighbors.size() * 4 + hnsw.levels.size() * 4 + hnsw.offsets.size() * 8)
