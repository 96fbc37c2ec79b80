"""One built graph for every camera process of a deployment on this machine.

A deployment's cameras each search the same frozen watchlist. Above ``APPROXIMATE_FROM``
templates that search walks an HNSW graph that takes minutes to build and about 0.75 GB per
million templates to hold, so the runner builds it once and each camera worker reads that copy
in place. The copy lives in anonymous memory (``memfd_create``): it has no name in any file
system, is sealed read-only once written, and the kernel frees it when the last process holding
it ends, the runner included, however it ends. It is handed to a worker as an open file
descriptor when the worker is spawned, never by a path.

    >>> shared = SharedGraph.of(index.graph)    # in the runner
    >>> job = WorkerJob(..., graph=shared)       # pickled to the worker with its descriptor
    >>> graph = job.graph.open()                 # in the worker: a TemplateGraph, no copy

On a cluster the graph's bytes travel in the snapshot's object instead (``GraphBytes``): Ray's
object store, kept in memory on every node (live/cluster.py), holds one copy per node, which the
node's camera actors read in place.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from dataclasses import dataclass
from multiprocessing.reduction import DupFd
from typing import Any

import numpy as np

from openlfr.matching.approximate import GraphSettings, TemplateGraph

_SEALS = (
    getattr(fcntl, "F_SEAL_SEAL", 1)
    | getattr(fcntl, "F_SEAL_SHRINK", 2)
    | getattr(fcntl, "F_SEAL_GROW", 4)
    | getattr(fcntl, "F_SEAL_WRITE", 8)
)


def can_share() -> bool:
    """Whether this system has anonymous memory files (Linux): elsewhere each worker builds."""
    return hasattr(os, "memfd_create")


class SharedGraph:
    """A built graph in sealed anonymous memory. Picklable only while a process is being
    spawned or through multiprocessing's pipes, which carry the descriptor itself."""

    def __init__(self, fd: int, size: int, settings: GraphSettings) -> None:
        self.fd, self.size, self.settings = fd, size, settings

    @classmethod
    def of(cls, graph: TemplateGraph) -> SharedGraph:
        fd = os.memfd_create("openlfr-watchlist-graph", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            graph.write(lambda chunk: _write_all(fd, chunk))
            size = os.fstat(fd).st_size
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)  # no process can change it from here on
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, size, graph.settings)

    def buffer(self) -> np.ndarray:
        """The serialised graph, mapped read-only (uint8)."""
        view = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ)
        return np.frombuffer(view, dtype=np.uint8)

    def open(self) -> TemplateGraph:
        return TemplateGraph.mapped(self.buffer(), self.settings)

    def close(self) -> None:
        """Let go of this process's descriptor (the memory goes with its last holder)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __reduce__(self) -> tuple[Any, ...]:
        # DupFd: while a worker is spawned, its descriptor is passed to the child with it
        return _received, (DupFd(self.fd), self.size, self.settings)


def _received(dup: Any, size: int, settings: GraphSettings) -> SharedGraph:
    return SharedGraph(dup.detach(), size, settings)


def _write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view) :]


@dataclass(frozen=True)
class GraphBytes:
    """A built graph as bytes, for a cluster's snapshot object (read in place on each node)."""

    data: np.ndarray  # uint8
    settings: GraphSettings

    @classmethod
    def of(cls, shared: SharedGraph) -> GraphBytes:
        return cls(shared.buffer(), shared.settings)

    def open(self) -> TemplateGraph:
        return TemplateGraph.mapped(self.data, self.settings)
