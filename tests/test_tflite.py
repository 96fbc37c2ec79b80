"""The TFLite -> ONNX converter (``openlfr.vision.tflite``): ONNX Runtime on the converted
models gives LiteRT's numbers on the TFLite files (MobileFaceNet, MTCNN's P-, R- and O-Net),
and hand-built graphs give TensorFlow's semantics (SAME padding, fused activations, layouts).

The model files come from ``$OPENLFR_MODELS_DIR/mobilefacenet/`` (``openlfr models install``);
the faces from ``$OPENLFR_TEST_DATA``. Tests that need either skip without it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tflite")

from openlfr.vision.onnx.runtime import inference_session  # noqa: E402
from openlfr.vision.tflite import convert_tflite  # noqa: E402
from openlfr.vision.tflite.convert import convert_graph  # noqa: E402
from openlfr.vision.tflite.reader import Graph, Operator, Tensor, read_tflite  # noqa: E402

# MobileFaceNet through ONNX Runtime against LiteRT, per chip: 1 - cosine similarity.
MAX_COSINE_DISTANCE = 1e-5
# MTCNN outputs (face probabilities, box and landmark offsets, all of order 1): the largest
# absolute difference allowed between ONNX Runtime and LiteRT.
MTCNN_ATOL = 1e-5
EMBEDDING_CHIPS = 520

SAME, VALID = 0, 1
RELU, RELU6, SIGN_BIT = 1, 3, 5


def tflite_bytes(name: str) -> bytes:
    """One of the installed TFLite files, or a skip saying how to install them."""
    root = os.environ.get("OPENLFR_MODELS_DIR")
    if not root:
        pytest.skip("OPENLFR_MODELS_DIR unset: run 'openlfr models install'")
    path = Path(root) / "mobilefacenet" / f"{name}.tflite"
    if not path.is_file():
        pytest.skip(f"{path} missing: run 'openlfr models install'")
    return path.read_bytes()


def litert(data: bytes, shape: Sequence[int] | None = None) -> Any:
    """A LiteRT interpreter on ``data`` (its input resized to ``shape`` if given)."""
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = interpreter_module.Interpreter(model_content=data, num_threads=2)
    if shape is not None:
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], list(shape))
    interpreter.allocate_tensors()
    return interpreter


def litert_run(interpreter: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}


def onnx_run(session: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: x}), strict=True))


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return 1.0 - (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def mobilefacenet_input(chips: Sequence[np.ndarray]) -> np.ndarray:
    return ((np.stack(chips).astype(np.float32) - 127.5) / 128).astype(np.float32)


def mtcnn_input(rgb: np.ndarray) -> np.ndarray:
    return ((rgb[None].astype(np.float32) - 127.5) * 0.0078125).astype(np.float32)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mobilefacenet() -> bytes:
    return tflite_bytes("MobileFaceNet")


@pytest.fixture(scope="module")
def mobilefacenet_session(mobilefacenet: bytes) -> Any:
    return inference_session(convert_tflite(mobilefacenet).SerializeToString())


@pytest.fixture(scope="module")
def chips(test_data: Path) -> list[np.ndarray]:
    """ArcFace 112x112 chips of real faces (UTKFace, 200x200 images, one face each), made
    with the project's detector, 68 landmarks and alignment; held in memory only. HOG without
    upsampling finds nearly all of these faces (they are over 80 px) and is several times
    faster; the few it misses get a second look with ``upsample=1``."""
    from openlfr.vision.align import arcface_chip, find_landmarks68, five_points_from_68
    from openlfr.vision.detect import detect_faces
    from openlfr.vision.image import load_image

    folder = test_data / "faces" / "utkface-demographics"
    paths = sorted(folder.rglob("*.jpg"))
    out: list[np.ndarray] = []
    for path in paths:
        rgb = load_image(path)
        boxes = detect_faces(rgb) or detect_faces(rgb, upsample=1)
        for box in boxes:
            out.append(arcface_chip(rgb, five_points_from_68(find_landmarks68(rgb, box))))
        if len(out) >= EMBEDDING_CHIPS:
            return out[:EMBEDDING_CHIPS]
    pytest.skip(f"only {len(out)} faces found under {folder}; {EMBEDDING_CHIPS} are needed")


# --- MobileFaceNet --------------------------------------------------------------------------


@pytest.mark.slow
def test_mobilefacenet_matches_litert_on_real_faces(
    mobilefacenet: bytes, mobilefacenet_session: Any, chips: list[np.ndarray]
) -> None:
    x = mobilefacenet_input(chips)
    ours = np.concatenate(
        [onnx_run(mobilefacenet_session, x[i : i + 32])["embeddings"] for i in range(0, len(x), 32)]
    )
    interpreter = litert(mobilefacenet)  # the file's batch of 2: the chips in pairs
    theirs = np.concatenate(
        [litert_run(interpreter, x[i : i + 2])["embeddings"] for i in range(0, len(x) - 1, 2)]
    )
    n = len(theirs)
    assert n >= 500
    distances = cosine_distances(ours[:n], theirs)
    assert distances.max() <= MAX_COSINE_DISTANCE, (
        f"max cosine distance {distances.max():.2e} over {n} chips"
    )


@pytest.mark.slow
def test_mobilefacenet_batch_is_dynamic(
    mobilefacenet_session: Any, chips: list[np.ndarray]
) -> None:
    x = mobilefacenet_input(chips[:32])
    one_by_one = np.concatenate(
        [onnx_run(mobilefacenet_session, x[i : i + 1])["embeddings"] for i in range(32)]
    )
    assert one_by_one.shape == (32, 192)
    for batch in (1, 7, 32):
        rows = onnx_run(mobilefacenet_session, x[:batch])["embeddings"]
        np.testing.assert_allclose(rows, one_by_one[:batch], rtol=0, atol=1e-5)


def test_batch_session_gives_the_plain_sessions_rows(mobilefacenet: bytes) -> None:
    """One single-thread session per slice, side by side: the same bits as one session."""
    from openlfr.vision.onnx.runtime import BatchSession

    model = convert_tflite(mobilefacenet).SerializeToString()
    plain = inference_session(model, 1)
    sharded = BatchSession(model, threads=3)
    assert len(sharded.sessions) == 3
    assert sharded.get_inputs()[0].name == "input"
    x = np.random.default_rng(0).uniform(-1, 1, (8, 112, 112, 3)).astype(np.float32)
    for batch in (1, 2, 7):
        (want,) = plain.run(None, {"input": x[:batch]})
        (got,) = sharded.run(None, {"input": x[:batch]})
        np.testing.assert_array_equal(got, want)
    assert len(BatchSession(model, threads=1).sessions) == 1


def test_mobilefacenet_graph(mobilefacenet: bytes) -> None:
    """The interface is TFLite's; the PReLU chains are fused, every form gives one answer."""
    graph = read_tflite(mobilefacenet)
    models = {form: convert_graph(graph, prelu_form=form) for form in ("conv", "prelu", "none")}
    model = models["conv"]
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "input" and out.name == "embeddings"
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == [
        "batch",
        112,
        112,
        3,
    ]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 192]
    ops = {form: [n.op_type for n in m.graph.node] for form, m in models.items()}
    # No element-wise leftovers of the PReLU chains, one transpose (the input).
    assert not {"Abs", "Sub", "Mul", "PRelu"} & set(ops["conv"])
    assert ops["conv"].count("Transpose") == 1
    assert ops["prelu"].count("PRelu") == 33 and "Abs" not in ops["prelu"]
    assert ops["none"].count("Abs") == 33 and "PRelu" not in ops["none"]

    fixed = convert_tflite(mobilefacenet, dynamic_batch=False)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert convert_tflite(mobilefacenet).SerializeToString() == model.SerializeToString()

    x = np.random.default_rng(0).uniform(-1, 1, (4, 112, 112, 3)).astype(np.float32)
    results = {
        form: onnx_run(inference_session(m.SerializeToString()), x)["embeddings"]
        for form, m in models.items()
    }
    for form in ("prelu", "none"):
        np.testing.assert_allclose(results[form], results["conv"], rtol=1e-6, atol=1e-5)


# --- MTCNN -------------------------------------------------------------------------------------


def assert_same_outputs(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    assert set(ours) == set(theirs)
    for name, value in theirs.items():
        assert ours[name].shape == value.shape, name
        diff = float(np.abs(ours[name] - value).max())
        assert diff <= MTCNN_ATOL, f"{name}: max abs difference {diff:.2e}"


def test_pnet_matches_litert_at_many_sizes(astronaut: np.ndarray) -> None:
    import cv2

    data = tflite_bytes("pnet")
    model = convert_tflite(data, dynamic_spatial=True)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "height", "width", 3]
    session = inference_session(model.SerializeToString())
    images = [
        astronaut[100:112, 200:212],  # 12x12: P-Net's window, one output cell
        astronaut[30:77, 150:211],  # 47x61: odd sizes, the pool's SAME padding at the end
        astronaut[0:300, 120:340],  # 300x220
        astronaut,  # 512x512
        cv2.resize(astronaut, (181, 181), interpolation=cv2.INTER_AREA),  # a pyramid level
    ]
    for rgb in images:
        x = mtcnn_input(np.ascontiguousarray(rgb))
        ours = onnx_run(session, x)
        theirs = litert_run(litert(data, x.shape), x)
        assert_same_outputs(ours, theirs)
        h, w = (-(-(s - 2) // 2) - 4 for s in rgb.shape[:2])  # conv 3x3, pool /2, 2x conv 3x3
        assert ours["pnet/prob1"].shape == (1, h, w, 2)


def face_windows(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Square windows around the face HOG finds (shifted and scaled as MTCNN's candidates
    are) and a few elsewhere: ``(x1, y1, x2, y2)``, clipped to the image."""
    from openlfr.vision.detect import detect_faces

    box = detect_faces(rgb)[0]
    cx, cy, size = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2, max(box.width, box.height)
    windows = []
    for scale in (0.7, 1.0, 1.4):
        for dx in (-0.2, 0.0, 0.2):
            for dy in (-0.2, 0.0, 0.2):
                half = scale * size / 2
                x, y = cx + dx * size, cy + dy * size
                windows.append((int(x - half), int(y - half), int(x + half), int(y + half)))
    windows += [(0, 0, 60, 60), (400, 400, 512, 512), (300, 20, 420, 140), (10, 300, 200, 490)]
    height, width = rgb.shape[:2]
    return [(max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)) for x1, y1, x2, y2 in windows]


@pytest.mark.parametrize("name, size", [("rnet", 24), ("onet", 48)])
def test_rnet_onet_match_litert_on_real_crops(astronaut: np.ndarray, name: str, size: int) -> None:
    import cv2

    data = tflite_bytes(name)
    crops = [
        cv2.resize(astronaut[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_AREA)
        for x1, y1, x2, y2 in face_windows(astronaut)
    ]
    x = np.concatenate([mtcnn_input(c) for c in crops])
    ours = onnx_run(inference_session(convert_tflite(data).SerializeToString()), x)  # one batch
    interpreter = litert(data)  # the file's batch of 1
    rows = [litert_run(interpreter, x[i : i + 1]) for i in range(len(x))]
    theirs = {key: np.concatenate([r[key] for r in rows]) for key in rows[0]}
    assert_same_outputs(ours, theirs)
    assert ours[f"{name}/prob1"][:27, 1].max() > 0.9  # the face is seen


# --- hand-built graphs against NumPy's TensorFlow semantics ------------------------------------


def make_graph(
    tensors: list[tuple[tuple[int, ...], np.ndarray | None]],
    operators: list[tuple[str, list[int], list[int], dict[str, Any]]],
    outputs: list[int],
) -> Graph:
    """Tensor 0 is the input; the others are listed as ``(shape, constant or None)``."""
    ts = [
        Tensor(i, f"t{i}", shape, np.dtype(np.float32) if value is None else value.dtype, value)
        for i, (shape, value) in enumerate(tensors)
    ]
    ops = [
        Operator(i, kind, tuple(a), tuple(b), opts)
        for i, (kind, a, b, opts) in enumerate(operators)
    ]
    return Graph("synthetic", ts, ops, (0,), tuple(outputs))


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def windows(x: np.ndarray, kh: int, kw: int, stride: int, fill: float) -> np.ndarray:
    """TF SAME windows of an NHWC tensor: ``(n, out_h, out_w, c, kh, kw)``."""
    pads = ((0, 0), same_pads(x.shape[1], kh, stride), same_pads(x.shape[2], kw, stride), (0, 0))
    padded = np.pad(x, pads, constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))
    return view[:, ::stride, ::stride]


def reference(x: np.ndarray, p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The synthetic graph below, computed the TensorFlow way in float64 (NHWC throughout)."""
    x = x.astype(np.float64)
    conv = np.einsum("nhwcij,oijc->nhwo", windows(x, 3, 3, 2, 0.0), p["w1"]) + p["b1"]
    conv = np.clip(conv, 0, 6)  # fused RELU6
    n, h, w, c = conv.shape
    dw = np.einsum(
        "nhwcij,ijcm->nhwcm", windows(conv, 3, 3, 1, 0.0), p["w2"][0].reshape(3, 3, c, 2)
    )
    dw = dw.reshape(n, h, w, 2 * c) + p["b2"]  # TF's channel order: input channel, multiplier
    pool = windows(dw, 3, 3, 2, -np.inf).max(axis=(4, 5))
    added = np.maximum(pool + p["c"], 0)  # a per-channel constant, fused RELU
    flat = added.reshape(n, -1)  # TFLite flattens NHWC
    if flat.shape[1] != p["w3"].shape[1]:  # another size than the graph was built for
        return {"t9": added}
    return {"t9": added, "t12": flat @ p["w3"].T + p["b3"], "t14": flat}


def synthetic(shape: tuple[int, ...], with_dense: bool) -> tuple[Graph, dict[str, np.ndarray]]:
    """CONV_2D (SAME, stride 2, RELU6) -> DEPTHWISE_CONV_2D (SAME, multiplier 2) ->
    MAX_POOL_2D (3x3, SAME, stride 2) -> ADD (constant, RELU) -> t9, and with ``with_dense``
    FULLY_CONNECTED -> t12 and RESHAPE to (n, -1) -> t14 from t9."""
    rng = np.random.default_rng(1)
    n, h, w, _ = shape
    h1, w1 = -(-h // 2), -(-w // 2)
    h2, w2 = -(-h1 // 2), -(-w1 // 2)
    features = h2 * w2 * 8
    sizes = {"w1": (4, 3, 3, 3), "b1": (4,), "w2": (1, 3, 3, 8), "b2": (8,), "c": (8,)}
    sizes |= {"w3": (5, features), "b3": (5,)}
    p = {k: rng.normal(size=v).astype(np.float32) for k, v in sizes.items()}
    tensors: list[tuple[tuple[int, ...], np.ndarray | None]] = [
        (shape, None),  # t0
        (sizes["w1"], p["w1"]),
        (sizes["b1"], p["b1"]),
        ((n, h1, w1, 4), None),  # t3
        (sizes["w2"], p["w2"]),
        (sizes["b2"], p["b2"]),
        ((n, h1, w1, 8), None),  # t6
        ((n, h2, w2, 8), None),  # t7
        (sizes["c"], p["c"]),
        ((n, h2, w2, 8), None),  # t9
        (sizes["w3"], p["w3"]),
        (sizes["b3"], p["b3"]),
        ((n, 5), None),  # t12
        ((2,), np.array([n, features], np.int32)),
        ((n, features), None),  # t14
    ]
    conv = {"padding": SAME, "stride_h": 2, "stride_w": 2, "fused_activation_function": RELU6}
    depthwise = {"padding": SAME, "stride_h": 1, "stride_w": 1, "depth_multiplier": 2}
    pool = {"padding": SAME, "stride_h": 2, "stride_w": 2, "filter_height": 3, "filter_width": 3}
    operators: list[tuple[str, list[int], list[int], dict[str, Any]]] = [
        ("CONV_2D", [0, 1, 2], [3], conv),
        ("DEPTHWISE_CONV_2D", [3, 4, 5], [6], depthwise),
        ("MAX_POOL_2D", [6], [7], pool),
        ("ADD", [7, 8], [9], {"fused_activation_function": RELU}),
    ]
    outputs = [9]
    if with_dense:
        operators += [
            ("FULLY_CONNECTED", [9, 10, 11], [12], {}),
            ("RESHAPE", [9, 13], [14], {}),
        ]
        outputs = [9, 12, 14]
    return make_graph(tensors, operators, outputs), p


def run_synthetic(graph: Graph, x: np.ndarray, **kwargs: bool) -> dict[str, np.ndarray]:
    model = convert_graph(graph, **kwargs)
    return onnx_run(inference_session(model.SerializeToString()), x)


def test_synthetic_graph_has_tensorflow_semantics() -> None:
    graph, p = synthetic((1, 9, 7, 3), with_dense=True)
    x = np.random.default_rng(2).normal(size=(3, 9, 7, 3)).astype(np.float32)  # batch 3
    ours = run_synthetic(graph, x)
    want = reference(x, p)
    for name in ("t9", "t12", "t14"):
        np.testing.assert_allclose(ours[name], want[name], rtol=1e-5, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("size", [(9, 7), (11, 8), (16, 16), (5, 3)])
def test_synthetic_graph_dynamic_spatial(size: tuple[int, int]) -> None:
    graph, p = synthetic((1, 9, 7, 3), with_dense=False)
    x = np.random.default_rng(3).normal(size=(2, *size, 3)).astype(np.float32)
    ours = run_synthetic(graph, x, dynamic_spatial=True)
    np.testing.assert_allclose(ours["t9"], reference(x, p)["t9"], rtol=1e-5, atol=1e-4)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage, not a model at all", b"\x00" * 64, b"\x1c\x00\x00\x00TFL3" + bytes(40)],
)
def test_garbage_is_not_a_tflite_model(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a TFLite model"):
        convert_tflite(data)


def test_truncated_file_is_not_a_tflite_model() -> None:
    data = tflite_bytes("onet")
    with pytest.raises(ValueError, match="not a TFLite model"):
        convert_tflite(data[: len(data) // 3])


def test_unsupported_operators_and_options_are_named() -> None:
    graph, _ = synthetic((1, 9, 7, 3), with_dense=True)
    ops = list(graph.operators)

    def with_op(i: int, kind: str, options: dict[str, Any]) -> Graph:
        changed = list(ops)
        changed[i] = Operator(i, kind, ops[i].inputs, ops[i].outputs, options)
        return Graph(graph.name, graph.tensors, changed, graph.inputs, graph.outputs)

    with pytest.raises(ValueError, match="SPACE_TO_DEPTH"):
        convert_graph(with_op(1, "SPACE_TO_DEPTH", {}))
    sign_bit = {**ops[0].options, "fused_activation_function": SIGN_BIT}
    with pytest.raises(ValueError, match=r"#0 \(CONV_2D\).*activation function 5"):
        convert_graph(with_op(0, "CONV_2D", sign_bit))
    with pytest.raises(ValueError, match="padding 7"):
        convert_graph(with_op(0, "CONV_2D", {**ops[0].options, "padding": 7}))
    with pytest.raises(ValueError, match="FULLY_CONNECTED.*fully convolutional"):
        convert_graph(graph, dynamic_spatial=True)
    # A RESHAPE that folds the batch into the rows cannot keep a dynamic batch.
    tensors = list(graph.tensors)
    tensors[13] = Tensor(13, "t13", (2,), np.dtype(np.int32), np.array([-1, 8], np.int32))
    tensors[14] = Tensor(14, "t14", (6, 8), np.dtype(np.float32))  # 1 x 3 x 2 x 8 as rows of 8
    folded = Graph(graph.name, tensors, ops, graph.inputs, graph.outputs)
    with pytest.raises(ValueError, match="RESHAPE.*batch"):
        convert_graph(folded)
    convert_graph(folded, dynamic_batch=False)  # with a fixed batch it is fine
