"""Run the converted descriptor on ONNX Runtime: the same 128 numbers as dlib, several times
faster on a CPU.

>>> embedder = onnx_embedder()                 # loads (and converts on first use) once
>>> raw = embedder.descriptors([chip1, chip2])  # (2, 128) float32, un-normalised like dlib
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

CHIP_SHAPE = (150, 150, 3)
# Larger batches gain nothing more and cost memory (about 0.7 MB of activations per chip at
# the widest layer), so long lists go through in slices of this many. On a GPU too: there
# converting chips to float on the CPU is the limit, and slices of 256 were slower (docs/onnx.md).
MAX_BATCH = 32


def default_threads() -> int:
    """``$OPENLFR_ONNX_THREADS``, else one thread per core."""
    if value := os.environ.get("OPENLFR_ONNX_THREADS"):
        return max(1, int(value))
    return os.cpu_count() or 1


def execution_providers() -> list[str]:
    """CUDA first where ONNX Runtime has it (``pip install onnxruntime-gpu``, which replaces
    ``onnxruntime``) unless ``OPENLFR_ONNX_DEVICE=cpu``; the CPU always as the fallback."""
    import onnxruntime as ort

    wanted = os.environ.get("OPENLFR_ONNX_DEVICE", "auto")
    if wanted != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def inference_session(model: bytes, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` set up as every converted model here wants it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1  # each graph is one chain: nothing to run beside it
    # Idle worker threads sleep instead of spinning: the cores are shared (worker
    # processes, other programs), and a spinning thread that is descheduled stalls the
    # whole convolution. Measured on 2 busy cores it is also faster (docs/onnx.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=execution_providers())


class BatchSession:
    """``inference_session``'s stand-in for batched single-input models (face embedders): a
    batch is cut into one slice per thread, each run by its own single-thread session, side by
    side. The same rows come out, bit for bit: each row is computed alone either way.

    Why: a 2-thread session splits every one of MobileFaceNet's 118 small convolutions across
    the cores and waits for both after each; measured on 2 shared cores, 2 threads spend about
    20% more CPU per chip than 1, so slices per core embed about 20% more chips per second
    (docs/onnx.md). A batch of one row runs on one core.

    On the CUDA provider (or with one thread) it is one plain session."""

    def __init__(self, model: bytes, threads: int | None = None) -> None:
        threads = threads or default_threads()
        first = inference_session(model, 1 if threads > 1 else threads)
        if threads > 1 and first.get_providers()[0] != "CPUExecutionProvider":
            first = inference_session(model, threads)
            threads = 1
        self.sessions = [first, *(inference_session(model, 1) for _ in range(threads - 1))]
        self._pool: Any = None

    def get_inputs(self) -> Any:
        return self.sessions[0].get_inputs()

    def get_outputs(self) -> Any:
        return self.sessions[0].get_outputs()

    def run(self, output_names: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``InferenceSession.run`` on one input fed with a batch (rows along axis 0)."""
        ((name, batch),) = feeds.items()
        parts = min(len(self.sessions), len(batch))
        if parts <= 1:
            return self.sessions[0].run(output_names, feeds)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            # Made on first use: a pool does not survive fork() (sessions are per process).
            self._pool = ThreadPoolExecutor(len(self.sessions) - 1, "openlfr-onnx")
        bounds = np.linspace(0, len(batch), parts + 1).astype(int)
        slices = [batch[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        # ONNX Runtime lets go of the GIL while it runs, so the slices run in parallel; this
        # thread takes the first.
        futures = [
            self._pool.submit(session.run, output_names, {name: part})
            for session, part in zip(self.sessions[1:], slices[1:], strict=False)
        ]
        first = self.sessions[0].run(output_names, {name: slices[0]})
        results = [first, *(future.result() for future in futures)]
        return [np.concatenate(outputs) for outputs in zip(*results, strict=True)]


class OnnxEmbedder:
    """An ``onnxruntime.InferenceSession`` over the converted model (batch size dynamic)."""

    def __init__(self, model: bytes, *, threads: int | None = None) -> None:
        self.session = inference_session(model, threads)
        self.input_name = self.session.get_inputs()[0].name

    def descriptors(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """dlib's raw descriptors of aligned 150x150 RGB ``uint8`` chips, ``(n, 128)`` float32."""
        for chip in chips:
            if chip.shape != CHIP_SHAPE:
                raise ValueError(f"a face chip must be {CHIP_SHAPE}, got {chip.shape}")
        out = []
        for start in range(0, len(chips), MAX_BATCH):
            batch = np.stack(chips[start : start + MAX_BATCH])
            nchw = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
            out.append(self.session.run(None, {self.input_name: nchw})[0])
        if not out:
            return np.zeros((0, 128), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)


_embedder: tuple[int, OnnxEmbedder] | None = None
# Sessions inherited through fork() are kept alive but never used: their thread pool did not
# survive the fork, and destroying them in the child would try to join threads it lacks.
_inherited: list[OnnxEmbedder] = []


def onnx_embedder() -> OnnxEmbedder:
    """The process's embedder, made on first use from the verified converted model.

    One per process: a worker forked from a process that already had one makes its own.
    """
    global _embedder
    pid = os.getpid()
    if _embedder is None or _embedder[0] != pid:
        from openlfr.vision.onnx.convert import load_verified_model

        if _embedder is not None:
            _inherited.append(_embedder[1])
        _embedder = (pid, OnnxEmbedder(load_verified_model()))
    return _embedder[1]
