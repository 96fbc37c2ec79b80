"""dlib's ResNet as an ONNX graph, built with ``onnx.helper`` from ``resnet.read_network``.

>>> model = build_model(read_network(model_path("descriptor").read_bytes()))
>>> onnx.save(model, "dlib_face_recognition_resnet_model_v1.onnx")

Input ``chips``: float32 ``(batch, 3, 150, 150)``, RGB pixel values 0-255 (NCHW). Output
``descriptor``: float32 ``(batch, 128)``, dlib's raw (un-normalised) descriptor.

Each layer maps to the ONNX operator that computes the same function, with dlib's sizes:

- ``input_rgb_image_sized``: ``(x - mean) * (1/256)``, kept explicit (cheap) so that the
  first convolution sees exactly the floats dlib feeds it;
- ``con`` + ``affine``: one ``Conv``; the per-channel ``gamma * y + beta`` that follows each
  convolution is folded into its weights and bias (``W * gamma``, ``b * gamma + beta``), which
  saves a pass over every activation and changes the result only by float rounding;
- ``add_prev``: ``Add``; where dlib adds tensors of different sizes (it zero-fills the missing
  channels, rows and columns at the end) each side is first ``Pad``-ded with zeros at the end;
- ``max_pool``/``avg_pool``: ``MaxPool``/``AveragePool`` with dlib's padding (0 for stride 2),
  ``avg_pool_everything``: ``GlobalAveragePool``;
- ``fc_no_bias``: ``Flatten`` then ``MatMul`` (dlib's fc is ``x @ W`` with ``W`` inputs x outputs).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from openlfr.vision.onnx.resnet import INPUT_SIZE, Layer, output_shapes

INPUT_NAME = "chips"
OUTPUT_NAME = "descriptor"
OPSET = 17
# Files readable by every onnxruntime since 1.14; newer IR features are not used.
IR_VERSION = 8


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, weight: np.ndarray, bias: np.ndarray, stride: int, pad: int) -> str:
        """A square-strided ``Conv`` with the same padding on every side, as dlib's ``con``."""
        return self.op(
            "Conv",
            [x, self.const("w", weight), self.const("b", bias)],
            kernel_shape=list(weight.shape[2:]),
            strides=[stride, stride],
            pads=[pad, pad, pad, pad],
        )


def _fold_affine(conv: Layer, affine: Layer | None) -> tuple[np.ndarray, np.ndarray]:
    weight = conv.params["weight"].astype(np.float64)
    bias = conv.params["bias"].astype(np.float64)
    if affine is not None:
        gamma = affine.params["gamma"].astype(np.float64)
        beta = affine.params["beta"].astype(np.float64)
        weight = weight * gamma[:, None, None, None]
        bias = bias * gamma + beta
    return weight.astype(np.float32), bias.astype(np.float32)


def build_model(layers: list[Layer], *, fold_affine: bool = True) -> onnx.ModelProto:
    """The ONNX model of ``layers`` (as ``read_network`` returns them); batch size is dynamic."""
    shapes = output_shapes(layers)
    g = _Graph()
    input_shape = (3, INPUT_SIZE, INPUT_SIZE)
    x_shape = input_shape
    x = INPUT_NAME
    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    i = 0
    while i < len(layers):
        layer, shape = layers[i], shapes[i]
        kind = layer.kind
        if kind == "input":
            mean = layer.params["mean_rgb"].astype(np.float32).reshape(1, 3, 1, 1)
            x = g.op("Sub", [x, g.const("mean", mean)])
            scale = np.array(layer.params["scale"], dtype=np.float32)
            x = g.op("Mul", [x, g.const("scale", scale)])
        elif kind == "con":
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            affine = nxt if fold_affine and nxt is not None and nxt.kind == "affine" else None
            weight, bias = _fold_affine(layer, affine)
            x = g.conv(x, weight, bias, layer.config["stride"], layer.params["padding"])
            if affine is not None:
                i += 1  # the affine layer is inside the Conv now
                shape = shapes[i]
        elif kind == "affine":
            k = layer.params["gamma"].size
            gamma = layer.params["gamma"].reshape(1, k, 1, 1)
            beta = layer.params["beta"].reshape(1, k, 1, 1)
            x = g.op("Mul", [x, g.const("gamma", gamma)])
            x = g.op("Add", [x, g.const("beta", beta)])
        elif kind == "relu":
            x = g.op("Relu", [x])
        elif kind in ("max_pool", "avg_pool"):
            size, stride = layer.config["size"], layer.config["stride"]
            pad = layer.params["padding"]
            if size == 0:
                x = g.op("GlobalAveragePool", [x])
            else:
                x = g.op(
                    "MaxPool" if kind == "max_pool" else "AveragePool",
                    [x],
                    kernel_shape=[size, size],
                    strides=[stride, stride],
                    pads=[pad, pad, pad, pad],
                )
        elif kind == "tag":
            tags[layer.config["id"]] = (x, x_shape)
        elif kind == "skip":
            x, shape = tags[layer.config["tag"]]
        elif kind == "add_prev":
            other, other_shape = tags[layer.config["tag"]]
            a = _pad_to(g, x, x_shape, shape)
            b = _pad_to(g, other, other_shape, shape)
            x = g.op("Add", [a, b])
        elif kind == "fc":
            x = g.op("Flatten", [x], axis=1)
            x = g.op("MatMul", [x, g.const("fc", layer.params["weight"])])
        elif kind == "loss_metric":
            pass  # training only: the descriptor is the fc output
        else:
            raise ValueError(f"no ONNX mapping for dlib layer {kind!r}")
        x_shape = shape
        i += 1

    g.nodes.append(helper.make_node("Identity", [x], [OUTPUT_NAME], name="output"))
    return finish_model(
        g,
        "dlib_face_recognition_resnet_model_v1",
        (INPUT_NAME, ["batch", *input_shape]),
        (OUTPUT_NAME, ["batch", 128]),
    )


def finish_model(
    g: _Graph,
    name: str,
    input_: tuple[str, list[int | str]],
    output: tuple[str, list[int | str]],
    metadata: dict[str, str] | None = None,
) -> onnx.ModelProto:
    """The graph's nodes as a checked model: one float input, one float output, our opset."""
    graph = helper.make_graph(
        g.nodes,
        name,
        [helper.make_tensor_value_info(input_[0], TensorProto.FLOAT, input_[1])],
        [helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="openlfr",
        doc_string=f"{name} converted by openlfr.vision.onnx",
    )
    model.ir_version = IR_VERSION
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model


def _pad_to(g: _Graph, x: str, have: tuple[int, int, int], want: tuple[int, int, int]) -> str:
    """Zero-fill ``x`` at the end of channels, rows and columns up to ``want`` (dlib's add)."""
    if have == want:
        return x
    extra = [w - h for h, w in zip(have, want, strict=True)]
    pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
    return g.op("Pad", [x, g.const("pads", pads)], mode="constant")
