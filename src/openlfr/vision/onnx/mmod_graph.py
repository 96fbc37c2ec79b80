"""dlib's MMOD face detector network as an ONNX graph, built from ``mmod.read_network``.

>>> model = build_detector_model(read_network(model_path("mmod").read_bytes()))
>>> onnx.save(model, "mmod_human_face_detector.onnx")

Input ``tiled``: float32 ``(batch, 3, height, width)``, any height and width: the tiled image
pyramid as dlib's ``input_rgb_image_pyramid`` fills its tensor, i.e. already ``(pixel - mean)
/ 256`` with zeros between the tiles (``pyramid.py`` builds it; the pyramid is resized *after*
that scaling, so the scaling cannot move into the graph). Output ``scores``: float32
``(batch, 1, height', width')``, the detector's score at each output position (dlib keeps
positions scoring above 0).

What the numpy code around the graph needs from dlib's file travels inside the model, as JSON
under the metadata key ``openlfr.mmod`` (``detector_metadata``): the mean colour, the pyramid
padding, the detector windows, the non-max suppression thresholds, and how output positions
map to input positions (``input = output * stride + offset``, from each convolution's
``p * stride - padding + size // 2``: 8 and 14 here).

Every ``con`` + ``affine`` pair becomes one ``Conv`` with the affine folded in (as in
``graph.py``) and dlib's padding (0 for the 5x5 stride-2 convolutions, 2 for the 5x5 stride-1
ones, 4 for the final 9x9); ``relu`` is ``Relu``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from openlfr.vision.onnx.graph import IR_VERSION, OPSET, _fold_affine, _Graph
from openlfr.vision.onnx.mmod import MmodNetwork, output_to_input

INPUT_NAME = "tiled"
OUTPUT_NAME = "scores"
METADATA_KEY = "openlfr.mmod"


def detector_metadata(network: MmodNetwork) -> dict[str, Any]:
    """Everything besides the weights that detection needs, JSON-ready."""
    (y0, y1), (x0, x1) = output_to_input(network.layers, np.array([0, 1]), np.array([0, 1]))
    if (y0, y1) != (x0, x1):
        raise ValueError("the network maps rows and columns differently")
    options = network.options
    return {
        "mean_rgb": [float(v) for v in network.mean_rgb],
        "padding": network.padding,
        "outer_padding": network.outer_padding,
        "windows": [[w.width, w.height, w.label] for w in options.windows],
        "nms_iou": options.nms_iou,
        "nms_covered": options.nms_covered,
        "output_stride": float(y1 - y0),
        "output_offset": float(y0),
        "min_tensor_size": min_tensor_size(network),
    }


def min_tensor_size(network: MmodNetwork) -> int:
    """The fewest rows (or columns) of input for which every convolution's window fits its
    padded input (29: an image of 7 pixels once the pyramid's border is added); ONNX Runtime
    refuses smaller inputs, dlib raises an error."""

    def fits(n: int) -> bool:
        for layer in network.layers:
            if layer.kind == "con":
                size, pad = layer.config["size"], layer.params["padding"]
                if n + 2 * pad < size:
                    return False
                n = (n + 2 * pad - size) // layer.config["stride"] + 1
        return True

    return next(n for n in range(1, 10_000) if fits(n))


def build_detector_model(network: MmodNetwork) -> onnx.ModelProto:
    """The ONNX model of the detector's network; batch, height and width are dynamic."""
    layers = network.layers
    g = _Graph()
    x = INPUT_NAME
    outputs = 3
    i = 1  # layers[0] is the input layer: its scaling happens while the pyramid is built
    while i < len(layers):
        layer = layers[i]
        if layer.kind == "con":
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            affine = nxt if nxt is not None and nxt.kind == "affine" else None
            weight, bias = _fold_affine(layer, affine)
            pad, stride = layer.params["padding"], layer.config["stride"]
            x = g.op(
                "Conv",
                [x, g.const("w", weight), g.const("b", bias)],
                kernel_shape=list(weight.shape[2:]),
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
            )
            outputs = weight.shape[0]
            if affine is not None:
                i += 1
        elif layer.kind == "relu":
            x = g.op("Relu", [x])
        else:
            raise ValueError(f"no ONNX mapping for dlib layer {layer.kind!r} here")
        i += 1

    g.nodes.append(helper.make_node("Identity", [x], [OUTPUT_NAME], name="output"))
    graph = helper.make_graph(
        g.nodes,
        "mmod_human_face_detector",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [
            helper.make_tensor_value_info(
                OUTPUT_NAME, TensorProto.FLOAT, ["batch", outputs, "out_h", "out_w"]
            )
        ],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="openlfr",
        doc_string="mmod_human_face_detector converted by openlfr.vision.onnx",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {METADATA_KEY: json.dumps(detector_metadata(network))})
    onnx.checker.check_model(model)
    return model
