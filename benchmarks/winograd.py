"""Would Winograd make the MMOD detector's 5x5 layers cheaper on ONNX Runtime? A timing probe.

    python benchmarks/winograd.py

The three 5x5 stride-1 layers (48 -> 48 channels after padding) are 60% of the detector's
multiply-adds. Winograd F(4x4, 5x5) computes the same convolution with 6.25 times fewer
multiplications, but ONNX Runtime has no Winograd kernel, so here it is built from standard
ONNX operators: the input transform as two grouped convolutions (8x1 then 1x8, stride 4), a
channel shuffle to group by frequency, the 64 per-frequency matrix products as one grouped 1x1
convolution, a shuffle back, the output transform as a grouped 1x1 convolution, and
DepthToSpace to put the 4x4 output tiles in place. It times one such layer on the 540p frame's
shape against ONNX Runtime's direct convolution in the same process, and prints where the
Winograd version spends its time. Weights are random: only shapes matter to the time.
"""

from __future__ import annotations

import collections
import json
import os
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from openlfr.vision.onnx.runtime import default_threads

CHANNELS = 48
ROWS, COLS = 248, 120  # the 5x5 layers' input for a 960x540 frame (rounded up to 4)
TILE_ROWS, TILE_COLS = ROWS // 4, COLS // 4


def session(nodes: list, initialisers: dict[str, np.ndarray], *, profile: bool = False):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, ROWS, COLS])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    tensors = [numpy_helper.from_array(a, name) for name, a in initialisers.items()]
    graph = helper.make_graph(nodes, "probe", inputs, outputs, tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = default_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = profile
    return ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])


def direct(rng: np.random.Generator):
    w = rng.normal(0, 0.1, (CHANNELS, CHANNELS, 5, 5)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    return session(nodes, {"w": w})


def winograd(rng: np.random.Generator, *, profile: bool = False):
    c, tiles = CHANNELS, [TILE_ROWS, TILE_COLS]
    f32 = np.float32
    inits = {
        "pads": np.array([0, 0, 2, 2, 0, 0, 2, 2], dtype=np.int64),
        "rows_t": rng.normal(0, 1, (8 * c, 1, 8, 1)).astype(f32),  # B^T along rows
        "cols_t": rng.normal(0, 1, (64 * c, 1, 1, 8)).astype(f32),  # B along columns
        "by_freq": np.array([1, c, 64, *tiles], dtype=np.int64),
        "flat": np.array([1, 64 * c, *tiles], dtype=np.int64),
        "by_chan": np.array([1, 64, c, *tiles], dtype=np.int64),
        "products": rng.normal(0, 0.1, (64 * c, c, 1, 1)).astype(f32),  # transformed filters
        "out_t": rng.normal(0, 1, (16 * c, 64, 1, 1)).astype(f32),  # A^T . A
    }
    node = helper.make_node
    nodes = [
        node("Pad", ["x", "pads"], ["padded"]),
        node(
            "Conv",
            ["padded", "rows_t"],
            ["u1"],
            "in_rows",
            kernel_shape=[8, 1],
            strides=[4, 1],
            group=c,
        ),
        node(
            "Conv",
            ["u1", "cols_t"],
            ["u2"],
            "in_cols",
            kernel_shape=[1, 8],
            strides=[1, 4],
            group=8 * c,
        ),
        node("Reshape", ["u2", "by_freq"], ["u3"]),
        node("Transpose", ["u3"], ["u4"], perm=[0, 2, 1, 3, 4]),
        node("Reshape", ["u4", "flat"], ["u5"]),
        node("Conv", ["u5", "products"], ["m"], "products", kernel_shape=[1, 1], group=64),
        node("Reshape", ["m", "by_chan"], ["m3"]),
        node("Transpose", ["m3"], ["m4"], perm=[0, 2, 1, 3, 4]),
        node("Reshape", ["m4", "flat"], ["m5"]),
        node("Conv", ["m5", "out_t"], ["o"], "out_transform", kernel_shape=[1, 1], group=c),
        node("Relu", ["o"], ["o2"]),
        node("DepthToSpace", ["o2"], ["y"], blocksize=4, mode="CRD"),
    ]
    return session(nodes, inits, profile=profile)


def ms(sess, x: np.ndarray, runs: int = 30) -> float:
    for _ in range(3):
        sess.run(None, {"x": x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {"x": x})
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (1, CHANNELS, ROWS, COLS)).astype(np.float32)
    plain, wino = direct(rng), winograd(rng)
    t_direct, t_wino = ms(plain, x), ms(wino, x)
    profiled = winograd(rng, profile=True)  # timed apart: profiling costs time of its own
    ms(profiled, x, runs=10)
    print(f"one 5x5 layer, {CHANNELS}->{CHANNELS} channels on {ROWS}x{COLS}, 2 cores:")
    print(f"  direct convolution (ONNX Runtime)    {t_direct:6.2f} ms   1.00")
    print(f"  Winograd F(4x4,5x5) from ONNX ops    {t_wino:6.2f} ms   {t_wino / t_direct:.2f}")
    path = profiled.end_profiling()
    per_op: dict[str, float] = collections.defaultdict(float)
    with open(path) as trace:
        events = json.load(trace)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"].get("op_name", "?")
            name = event["name"][: -len("_kernel_time")].removesuffix("_nchwc")
            per_op[f"{op} ({name})" if op == "Conv" else op] += event["dur"]
    os.remove(path)
    calls = 13  # 3 warm-up runs and 10 timed
    print("  where the Winograd version's time goes (ms per run):")
    for op, micros in sorted(per_op.items(), key=lambda kv: -kv[1]):
        print(f"    {op:24s} {micros / calls / 1000:6.2f}")


if __name__ == "__main__":
    main()
