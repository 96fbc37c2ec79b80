"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``): its layers,
and a parser that reads their weights from the file with ``DlibReader`` (no dlib needed).

The architecture is dlib's ``anet_type`` (``examples/dnn_face_recognition_ex.cpp``)::

    block<N,stride>  = affine<con<N,3,3,1,1, relu<affine<con<N,3,3,stride,stride, X>>>>>
    ares<N>          = relu<add_prev1<block<N,1, tag1<X>>>>
    ares_down<N>     = relu<add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<N,2, tag1<X>>>>>>>
    anet_type        = loss_metric<fc_no_bias<128, avg_pool_everything<
                         ares_down<256> <- ares<256> x2 <- ares_down<256>   (alevel0, alevel1)
                         <- ares<128> x2 <- ares_down<128>                  (alevel2)
                         <- ares<64> x3 <- ares_down<64>                    (alevel3)
                         <- ares<32> x3                                     (alevel4)
                         <- max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2,
                         input_rgb_image_sized<150>>>>>>>>

The file stores this nest outside-in: each wrapper writes its version and then its sub-network
*before* its own fields (``dlib/dnn/core.h``). So the bytes are: the loss layer, one version
number per layer from the top down (tags and skips included: that is all they store), the input
layer, then each computational layer's fields from the bottom up. Tags store no id, so which
tag an ``add_prev`` or ``skip`` refers to comes from the architecture above, not from the file.

>>> layers = read_network(model_path("descriptor").read_bytes())
>>> [layer.kind for layer in layers[:5]]
['input', 'con', 'affine', 'relu', 'max_pool']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openlfr.vision.onnx.dlib_format import DlibFormatError, DlibReader

INPUT_SIZE = 150


@dataclass
class Layer:
    """One layer in forward order: ``kind`` as dlib names it (without the trailing ``_``),
    its hyper-parameters from the architecture, and what the file holds (``params``)."""

    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def _block(n: int, stride: int) -> list[Layer]:
    return [
        Layer("con", {"filters": n, "size": 3, "stride": stride}),
        Layer("affine"),
        Layer("relu"),
        Layer("con", {"filters": n, "size": 3, "stride": 1}),
        Layer("affine"),
    ]


def _ares(n: int) -> list[Layer]:
    return [
        Layer("tag", {"id": 1}),
        *_block(n, 1),
        Layer("add_prev", {"tag": 1}),
        Layer("relu"),
    ]


def _ares_down(n: int) -> list[Layer]:
    return [
        Layer("tag", {"id": 1}),
        *_block(n, 2),
        Layer("tag", {"id": 2}),
        Layer("skip", {"tag": 1}),
        Layer("avg_pool", {"size": 2, "stride": 2}),
        Layer("add_prev", {"tag": 2}),
        Layer("relu"),
    ]


def architecture() -> list[Layer]:
    """dlib's ``anet_type`` as a flat list, input first, loss last (fresh objects each call)."""
    layers = [
        Layer("input", {"size": INPUT_SIZE}),
        Layer("con", {"filters": 32, "size": 7, "stride": 2}),
        Layer("affine"),
        Layer("relu"),
        Layer("max_pool", {"size": 3, "stride": 2}),
    ]
    for _ in range(3):
        layers += _ares(32)  # alevel4
    layers += _ares_down(64)  # alevel3
    for _ in range(3):
        layers += _ares(64)
    layers += _ares_down(128)  # alevel2
    for _ in range(2):
        layers += _ares(128)
    layers += _ares_down(256)  # alevel1
    for _ in range(2):
        layers += _ares(256)
    layers += _ares_down(256)  # alevel0
    layers += [
        Layer("avg_pool", {"size": 0, "stride": 1}),  # avg_pool_everything: the whole plane
        Layer("fc", {"outputs": 128}),  # fc_no_bias
        Layer("loss_metric"),
    ]
    return layers


def _default_padding(size: int, stride: int) -> int:
    # dlib's default for con_, max_pool_ and avg_pool_ (layers.h):
    #     _padding_y = _stride_y!=1 ? 0 : _nr/2
    return 0 if stride != 1 else size // 2


def read_network(data: bytes | bytearray | memoryview) -> list[Layer]:
    """Parse the whole file into ``architecture()`` with weights filled in.

    Raises ``DlibFormatError`` if anything (a version, a layer name, a shape, a stride, the
    padding, trailing bytes) is not what dlib writes for this network.
    """
    reader = DlibReader(data)
    layers = architecture()
    loss, body = layers[-1], layers[:-1]

    # add_loss_layer: version, then the loss's own fields, then the network under it.
    reader.expect_int(1, what="add_loss_layer version")
    reader.expect_string("loss_metric_2")
    loss.params = {"margin": reader.float(), "distance_threshold": reader.float()}

    # Going down: one version number per layer, outermost first.
    versions: dict[int, int] = {}
    for i in range(len(body) - 1, 1, -1):
        if body[i].kind in ("tag", "skip"):
            reader.expect_int(1, what=f"add_{body[i].kind}_layer version")
        else:
            versions[i] = reader.expect_int(1, 2, what="add_layer version")
    # The innermost add_layer holds the input layer itself rather than a sub-network.
    input_version = reader.expect_int(2, 3, what="add_layer version (over the input layer)")
    _read_input(reader, body[0])

    # Going up: each computational layer's fields, then its add_layer's cached state.
    for i in range(1, len(body)):
        if body[i].kind in ("tag", "skip"):
            continue
        _READERS[body[i].kind](reader, body[i])
        if i == 1:
            _read_input_add_layer_state(reader, input_version)
        else:
            _read_add_layer_state(reader, versions[i])
    if not reader.at_end:
        raise DlibFormatError(f"{len(reader) - reader.pos} unexpected bytes after the network")
    output_shapes(layers)  # checks that every weight fits the tensor it meets
    return layers


def _read_input(reader: DlibReader, layer: Layer) -> None:
    reader.expect_string("input_rgb_image_sized")
    # input.h: each pixel becomes (value - avg) / 256, channel by channel, R G B.
    mean = [reader.float() for _ in range(3)]
    rows, cols = reader.uint(), reader.uint()
    if (rows, cols) != (layer.config["size"],) * 2:
        raise DlibFormatError(f"input is {rows}x{cols}, expected {layer.config['size']} square")
    layer.params = {"mean_rgb": np.array(mean, dtype=np.float64), "scale": 1.0 / 256.0}


def _read_ints(reader: DlibReader, n: int) -> list[int]:
    return [reader.int() for _ in range(n)]


def _check(layer: Layer, name: str, found: object, wanted: object) -> None:
    if found != wanted:
        raise DlibFormatError(f"{layer.kind}: {name} is {found}, the architecture says {wanted}")


def _read_con(reader: DlibReader, layer: Layer) -> None:
    reader.expect_string("con_4")
    params = reader.tensor().ravel()
    n, rows, cols, stride_y, stride_x, pad_y, pad_x = _read_ints(reader, 7)
    cfg = layer.config
    _check(layer, "filters", n, cfg["filters"])
    _check(layer, "window", (rows, cols), (cfg["size"], cfg["size"]))
    _check(layer, "stride", (stride_y, stride_x), (cfg["stride"], cfg["stride"]))
    padding = _default_padding(cfg["size"], cfg["stride"])
    _check(layer, "padding", (pad_y, pad_x), (padding, padding))
    filters = reader.alias_tensor()  # (num_filters, k, nr, nc)
    biases = reader.alias_tensor()  # (1, num_filters, 1, 1)
    _check(layer, "bias shape", biases, (1, n, 1, 1))
    _check(layer, "filter shape", (filters[0], filters[2], filters[3]), (n, rows, cols))
    size = int(np.prod(filters))
    _check(layer, "parameter count", params.size, size + n)
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        reader.float()
    layer.params = {
        "weight": params[:size].reshape(filters),
        "bias": params[size:].copy(),
        "padding": padding,
    }


def _read_affine(reader: DlibReader, layer: Layer) -> None:
    reader.expect_string("affine_")
    params = reader.tensor().ravel()
    gamma = reader.alias_tensor()
    beta = reader.alias_tensor()
    mode = reader.int()
    # CONV_MODE (0): one gamma and beta per channel, shape (1, k, 1, 1).
    _check(layer, "mode", mode, 0)
    _check(layer, "beta shape", beta, gamma)
    k = gamma[1]
    _check(layer, "gamma shape", gamma, (1, k, 1, 1))
    _check(layer, "parameter count", params.size, 2 * k)
    layer.params = {"gamma": params[:k].copy(), "beta": params[k:].copy()}


def _read_named(name: str) -> Any:
    def read(reader: DlibReader, layer: Layer) -> None:
        reader.expect_string(name)

    return read


def _read_pool(name: str) -> Any:
    def read(reader: DlibReader, layer: Layer) -> None:
        reader.expect_string(name)
        rows, cols, stride_y, stride_x, pad_y, pad_x = _read_ints(reader, 6)
        size, stride = layer.config["size"], layer.config["stride"]
        _check(layer, "window", (rows, cols), (size, size))
        _check(layer, "stride", (stride_y, stride_x), (stride, stride))
        padding = _default_padding(size, stride) if size else 0
        _check(layer, "padding", (pad_y, pad_x), (padding, padding))
        layer.params = {"padding": padding}

    return read


def _read_fc(reader: DlibReader, layer: Layer) -> None:
    reader.expect_string("fc_2")
    outputs, inputs = reader.uint(), reader.uint()
    _check(layer, "outputs", outputs, layer.config["outputs"])
    params = reader.tensor().ravel()
    weights = reader.alias_tensor()  # (num_inputs, num_outputs, 1, 1)
    reader.alias_tensor()  # biases: declared even when unused
    bias_mode = reader.int()
    _check(layer, "bias mode (1 = FC_NO_BIAS)", bias_mode, 1)
    _check(layer, "weight shape", weights, (inputs, outputs, 1, 1))
    _check(layer, "parameter count", params.size, inputs * outputs)
    for _ in range(4):
        reader.float()
    # fc_ computes output = input (n x inputs) @ weights (inputs x outputs).
    layer.params = {"weight": params.reshape(inputs, outputs)}


_READERS = {
    "con": _read_con,
    "affine": _read_affine,
    "relu": _read_named("relu_"),
    "add_prev": _read_named("add_prev_"),
    "max_pool": _read_pool("max_pool_2"),
    "avg_pool": _read_pool("avg_pool_2"),
    "fc": _read_fc,
}


def _read_add_layer_state(reader: DlibReader, version: int) -> None:
    # add_layer (core.h): this_layer_setup_called, gradient_input_is_stale,
    # get_output_and_gradient_input_disabled, x_grad, cached_output[, params_grad (v2)].
    # Training state, usually empty; read and dropped.
    for _ in range(3):
        reader.bool()
    for _ in range(3 if version >= 2 else 2):
        reader.tensor()


def _read_input_add_layer_state(reader: DlibReader, version: int) -> None:
    # The add_layer over the input: the same flags, x_grad, cached_output, grad_final, and
    # from version 3 the sample expansion factor.
    for _ in range(3):
        reader.bool()
    for _ in range(3):
        reader.tensor()
    if version >= 3:
        reader.uint()


def _pooled(size: int, window: int, stride: int, padding: int) -> int:
    # dlib's pooling and convolution output size: 1 + (in + 2*pad - window) / stride.
    return 1 + (size + 2 * padding - window) // stride


def output_shapes(layers: list[Layer]) -> list[tuple[int, int, int]]:
    """Each layer's output ``(channels, rows, cols)`` for one sample, as dlib computes them.

    ``add_prev`` takes the larger of its two inputs in every dimension (dlib's ``tt::add``
    zero-fills whatever one side lacks): in this network the strided 3x3 convolution and the
    2x2 average pool on the shortcut disagree at 8 -> 3 vs 4 and 4 -> 1 vs 2 rows.
    """
    shapes: list[tuple[int, int, int]] = []
    tags: dict[int, tuple[int, int, int]] = {}
    shape = (3, INPUT_SIZE, INPUT_SIZE)
    for layer in layers:
        channels, rows, cols = shape
        if layer.kind == "con":
            weight = layer.params["weight"]
            if weight.shape[1] != channels:
                raise DlibFormatError(f"con expects {weight.shape[1]} channels, gets {channels}")
            k, pad, stride = layer.config["size"], layer.params["padding"], layer.config["stride"]
            shape = (
                weight.shape[0],
                _pooled(rows, k, stride, pad),
                _pooled(cols, k, stride, pad),
            )
        elif layer.kind == "affine":
            if layer.params["gamma"].size != channels:
                raise DlibFormatError(f"affine has {layer.params['gamma'].size} channels")
        elif layer.kind in ("max_pool", "avg_pool"):
            k = layer.config["size"]
            if k == 0:
                shape = (channels, 1, 1)
            else:
                stride, pad = layer.config["stride"], layer.params["padding"]
                shape = (channels, _pooled(rows, k, stride, pad), _pooled(cols, k, stride, pad))
        elif layer.kind == "tag":
            tags[layer.config["id"]] = shape
        elif layer.kind == "skip":
            shape = tags[layer.config["tag"]]
        elif layer.kind == "add_prev":
            other = tags[layer.config["tag"]]
            shape = (max(channels, other[0]), max(rows, other[1]), max(cols, other[2]))
        elif layer.kind == "fc":
            inputs = channels * rows * cols
            if layer.params["weight"].shape[0] != inputs:
                raise DlibFormatError(f"fc expects {layer.params['weight'].shape[0]} inputs")
            shape = (layer.params["weight"].shape[1], 1, 1)
        shapes.append(shape)
    return shapes
