"""Embedding benchmark: each face model's embedding in the same process, at batch 1 and 32,
printed as faces per second and ratios: dlib's ResNet run by dlib and by ONNX Runtime (the
converted model), MobileFaceNet on ONNX Runtime as shipped (the chip and its mirror image
embedded) and without the mirror image, and MobileFaceNet's own TFLite file on LiteRT
(XNNPACK, 2 threads; ``ai-edge-litert``, a test extra), the reference runtime. Then the
roofline: MobileFaceNet's multiply-adds per chip, counted from the ONNX graph, against this
CPU's fp32 peak, which bounds the faces/s any fp32 runtime can reach here.

    python benchmarks/embedding.py            # about three minutes on 2 cores

The chips are the astronaut's (scikit-image, public domain) and its mirror image, aligned by
each model's own unit, so it runs anywhere (MobileFaceNet's rows need ``openlfr models
install``). The load average is printed too: on shared cores it explains slow runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.table import Table
from skimage import data

from openlfr.errors import ModelMissingError
from openlfr.vision import find_faces
from openlfr.vision.embed import raw_descriptors
from openlfr.vision.models import get_model
from openlfr.vision.onnx.convert import load_verified_model
from openlfr.vision.onnx.runtime import OnnxEmbedder, default_threads

# Issue 12: the default model embeds at least this many faces/s at batch 32 on 2 cores.
TARGET_FACES_PER_S = 400
LITERT_NAME = "MobileFaceNet TFLite, LiteRT, 2 threads"
# fp32 multiply-adds per cycle and core, the roofline's assumption: two FMA pipes of 8 lanes
# on AVX2 cores (Intel since Haswell, AMD since Zen 2), of 16 on Intel's AVX-512 server cores
# (AMD's Zen 4 splits 512-bit FMAs in two: 16 there too). An in-cache MatMul on one thread
# checks it (AMD EPYC, AVX2, 2.45 GHz: 38.4 of 39.2 G/s, 98%).
FMA_PER_CYCLE = {"avx2": 16, "avx512": 32}
LITERT_THREADS = 2


def faces_per_second(
    fn: Callable[[], object], batch: int, min_seconds: float
) -> tuple[float, float]:
    """Median rates over repeated calls lasting at least ``min_seconds``, after a warm-up:
    faces per second, and faces per CPU-second of this process (all its threads). On shared
    cores the first falls with the load; the second much less, so it shows the efficiency."""
    fn()
    times: list[float] = []
    cpu: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < min_seconds:
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return batch / float(np.median(times)), batch / max(float(np.median(cpu)), 1e-9)


def chips_of(model: object, n: int = 32) -> list[np.ndarray]:
    """``n`` chips of the astronaut, every other one mirrored, aligned by ``model``'s unit."""
    chip = find_faces(data.astronaut(), model=model, embed=False)[0].chip  # type: ignore[arg-type]
    return [chip[:, ::-1].copy() if i % 2 else chip for i in range(n)]


def per_core_unit(threads: int) -> object:
    """The shipped unit with its session swapped for a ``BatchSession``: each slice cut in one
    part per core, each part through its own single-thread session (the same rows)."""
    from openlfr.vision.models.install import installed_file
    from openlfr.vision.models.mobilefacenet import EMBEDDER_FILE, PACKAGE_DIR, MobileFaceNet
    from openlfr.vision.onnx.runtime import BatchSession

    session = BatchSession(installed_file(PACKAGE_DIR, EMBEDDER_FILE).read_bytes(), threads)

    class PerCore(MobileFaceNet):
        @property
        def _session(self) -> BatchSession:
            return session

    return PerCore()


def litert_embedder(tflite: bytes, mirror: bool) -> Callable[[list[np.ndarray]], np.ndarray]:
    """MobileFaceNet's TFLite file on LiteRT, preprocessed and summed as the ONNX unit does.
    The file's batch is 2 (a RESHAPE fixes it), so chips go in pairs, an odd one with a copy."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite, num_threads=LITERT_THREADS)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    sink = interpreter.get_output_details()[0]["index"]

    def embed(chips: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(chips)
        if mirror:
            batch = np.concatenate([batch, batch[:, :, ::-1]])
        scaled = (batch.astype(np.float32) - 127.5) / 128.0
        if len(scaled) % 2:
            scaled = np.concatenate([scaled, scaled[-1:]])
        rows = []
        for i in range(0, len(scaled), 2):
            interpreter.set_tensor(source, scaled[i : i + 2])
            interpreter.invoke()
            rows.append(interpreter.get_tensor(sink).copy())
        vectors = np.concatenate(rows)
        if mirror:
            vectors = vectors[: len(chips)] + vectors[len(chips) : 2 * len(chips)]
        vectors = vectors[: len(chips)]
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    return embed


def multiply_adds(model: bytes) -> tuple[int, int]:
    """Multiply-adds per chip of a converted graph at batch 1: ``(the model's, the PReLU
    rewrite's)``, the second being the 1x1 depthwise convolutions the converter writes for
    PReLU (element-wise work, memory-bound; see ``openlfr.vision.tflite.convert``)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    graph_model = onnx.load_from_string(model)
    for value in [*graph_model.graph.input, *graph_model.graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_param")
        dim.dim_value = 1
    graph = shape_inference.infer_shapes(graph_model).graph
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.value_info, *graph.output]
    }
    weights = {t.name: numpy_helper.to_array(t).shape for t in graph.initializer}
    model_macs = prelu_macs = 0
    for node in graph.node:
        if node.op_type == "Conv":
            w = weights[node.input[1]]
            macs = int(np.prod(shapes[node.output[0]])) * int(np.prod(w[1:]))
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            if group > 1 and tuple(w[1:]) == (1, 1, 1):
                prelu_macs += macs
            else:
                model_macs += macs
        elif node.op_type in ("Gemm", "MatMul"):
            model_macs += int(np.prod(weights[node.input[1]]))
    return model_macs, prelu_macs


def cpu_clock_and_fma() -> tuple[float, int] | None:
    """The cores' clock (GHz) and fp32 multiply-adds per cycle, from /proc/cpuinfo (Linux)."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = info.read().splitlines()
    except OSError:
        return None
    mhz = [float(line.split(":")[1]) for line in lines if line.startswith("cpu MHz")]
    flags = next((line.split(":")[1].split() for line in lines if line.startswith("flags")), [])
    if not mhz:
        return None
    wide = "avx512f" in flags and "AMD" not in " ".join(lines[:8])
    return max(mhz) / 1000, FMA_PER_CYCLE["avx512" if wide else "avx2"]


def matmul_rate() -> float:
    """One thread's best fp32 MatMul rate, G multiply-adds per CPU-second, operands in the
    caches: the practical ceiling of a core (CPU time, so shared cores do not lower it)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    m, k, n = 3136, 64, 128  # MobileFaceNet's first 1x1 convolution of one chip as a GEMM
    rng = np.random.default_rng(0)
    a = rng.random((m, k), dtype=np.float32)
    b = onnx.numpy_helper.from_array(rng.random((k, n), dtype=np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    best = 0.0
    for _ in range(10):
        start = time.process_time()
        for _ in range(40):
            session.run(None, {"a": a})
        best = max(best, 40 * m * k * n / (time.process_time() - start))
    return best / 1e9


def roofline(
    console: Console, model: bytes, shipped_rate: float, shipped_cpu: float, mirror: bool
) -> None:
    """The fp32 ceiling on faces/s for this CPU, and what the target would take."""
    macs, prelu = multiply_adds(model)
    cores = os.cpu_count() or 1
    cpu = cpu_clock_and_fma()
    measured = matmul_rate()
    per_face = macs * (2 if mirror else 1)
    console.print(
        f"roofline: MobileFaceNet is {macs / 1e6:.1f} M multiply-adds per chip (counted from "
        f"the ONNX graph; the PReLU rewrite adds {prelu / 1e6:.1f} M of element-wise work), "
        f"{per_face / 1e6:.0f} M per face {'with its mirror image' if mirror else ''}"
    )
    if cpu is None:
        console.print("roofline: no clock in /proc/cpuinfo; the peak is the measured MatMul's")
        peak = measured * cores
    else:
        ghz, fma = cpu
        peak = max(cores * fma * ghz, measured * cores)  # a MatMul above it disproves it
        console.print(
            f"fp32 peak: {cores} cores x {fma} multiply-adds/cycle x {ghz:.2f} GHz = "
            f"{cores * fma * ghz:.1f} G/s; a 1-thread MatMul measured {measured:.1f} G per "
            f"CPU-second ({measured / (fma * ghz):.0%} of a core's peak)"
        )
    ceiling = peak * 1e9 / per_face
    need = TARGET_FACES_PER_S * per_face / 1e9
    per_core = shipped_cpu * per_face / 1e9
    console.print(
        f"ceiling: at most {ceiling:.0f} faces/s in fp32 on this CPU; shipped {shipped_rate:.0f} "
        f"= {shipped_rate / ceiling:.0%} of it. Per CPU-second the shipped embedder does "
        f"{shipped_cpu:.0f} faces, {per_core:.1f} G multiply-adds/s, "
        f"{per_core / (peak / cores):.0%} of a core's peak (so about {shipped_cpu * cores:.0f} "
        f"faces/s with the {cores} cores free). {TARGET_FACES_PER_S} faces/s needs {need:.0f} G "
        f"multiply-adds/s, {need / peak:.1f}x the peak" + ("" if need > peak else " (within it)")
    )


def main() -> None:
    threads = default_threads()
    dlib_chips = chips_of("dlib-resnet-v1")
    onnx_model = load_verified_model()  # converted here on first use, not timed
    # name -> (embed function over a list of chips, the chips it takes)
    runs: dict[str, tuple[Callable[[list[np.ndarray]], object], list[np.ndarray]]] = {
        "dlib ResNet, dlib": (lambda s: raw_descriptors(s, "dlib"), dlib_chips),
    }
    embedder = OnnxEmbedder(onnx_model, threads=threads)
    runs[f"dlib ResNet, ONNX Runtime, {threads} thread(s)"] = (embedder.descriptors, dlib_chips)
    if threads != 1:
        runs["dlib ResNet, ONNX Runtime, 1 thread"] = (
            OnnxEmbedder(onnx_model, threads=1).descriptors,
            dlib_chips,
        )
    missing = missing_litert = ""
    try:
        shipped = get_model("mobilefacenet-v1")
    except ModelMissingError as exc:
        missing = str(exc)
    else:
        from openlfr.vision.models.mobilefacenet import MobileFaceNet

        mfn_chips = chips_of(shipped)
        runs[f"mobilefacenet-v1 (mirror), {threads} thread(s)"] = (shipped.embed, mfn_chips)
        runs[f"MobileFaceNet(mirror=False), {threads} thread(s)"] = (
            MobileFaceNet(mirror=False).embed,
            mfn_chips,
        )
        if threads > 1:
            runs[f"mobilefacenet-v1 (mirror), {threads} x 1 thread"] = (
                per_core_unit(threads).embed,
                mfn_chips,
            )
        try:
            from openlfr.vision.models.install import installed_file

            tflite = installed_file("mobilefacenet", "MobileFaceNet.tflite").read_bytes()
            runs[f"{LITERT_NAME} (mirror)"] = (litert_embedder(tflite, mirror=True), mfn_chips)
            runs[f"{LITERT_NAME}, no mirror"] = (
                litert_embedder(tflite, mirror=False),
                mfn_chips,
            )
        except ImportError:
            missing_litert = "LiteRT left out: pip install ai-edge-litert (the test extra)"

    rates: dict[tuple[str, int], float] = {}
    cpu_rates: dict[tuple[str, int], float] = {}
    for batch in (1, 32):
        for name, (embed, chips) in runs.items():
            some = chips[:batch]
            rates[name, batch], cpu_rates[name, batch] = faces_per_second(
                lambda e=embed, s=some: e(s), batch, 4.0 if "dlib" in name else 3.0
            )
    onnx_name = f"dlib ResNet, ONNX Runtime, {threads} thread(s)"
    table = Table(
        "model, runtime",
        "batch",
        "faces/s",
        "per CPU-s",
        "vs dlib",
        "vs ResNet on ONNX",
        title="face embedding, same process, same astronaut chips",
    )
    for batch in (1, 32):
        for name in runs:
            rate = rates[name, batch]
            table.add_row(
                name,
                str(batch),
                f"{rate:.1f}",
                f"{cpu_rates[name, batch]:.1f}",
                f"{rate / rates['dlib ResNet, dlib', batch]:.1f}x",
                f"{rate / rates[onnx_name, batch]:.2f}x",
            )
    console = Console(width=110)
    console.print(table)
    if missing:
        console.print(f"MobileFaceNet left out: {missing}")
    else:
        shipped_name = f"mobilefacenet-v1 (mirror), {threads} thread(s)"
        shipped_rate = rates[shipped_name, 32]
        verdict = "met" if shipped_rate >= TARGET_FACES_PER_S else "NOT met"
        console.print(
            f"issue 12: mobilefacenet-v1 at batch 32 embeds {shipped_rate:.0f} faces/s "
            f"(target {TARGET_FACES_PER_S} on 2 cores: {verdict})"
        )
        per_core_name = f"mobilefacenet-v1 (mirror), {threads} x 1 thread"
        if (per_core_name, 32) in rates:
            console.print(
                "one single-thread session per core (BatchSession): "
                f"{rates[per_core_name, 32]:.0f} "
                f"faces/s, {cpu_rates[per_core_name, 32] / cpu_rates[shipped_name, 32]:.2f}x "
                "the shipped session's faces per CPU-s"
            )
        if missing_litert:
            console.print(missing_litert)
        else:
            litert_name = f"{LITERT_NAME} (mirror)"
            litert_rate = rates[litert_name, 32]
            litert_cpu = cpu_rates[litert_name, 32]
            shipped_cpu = cpu_rates[shipped_name, 32]
            console.print(
                f"LiteRT (XNNPACK, {LITERT_THREADS} threads) on the same chips: "
                f"{litert_rate:.0f} faces/s, {litert_cpu:.0f} per CPU-s; ONNX Runtime is "
                f"{shipped_rate / litert_rate:.2f}x it ({shipped_cpu / litert_cpu:.2f}x per CPU-s)"
            )
        from openlfr.vision.models.install import installed_file

        model = installed_file("mobilefacenet", "MobileFaceNet.onnx").read_bytes()
        mirror = shipped.mirror  # type: ignore[attr-defined]
        roofline(console, model, shipped_rate, cpu_rates[shipped_name, 32], mirror=mirror)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(f"{os.cpu_count()} cores; load average before the end: {load}")


if __name__ == "__main__":
    main()
