"""dlib's MMOD face detector network as an ONNX graph, built from ``mmod.read_network``.

>>> model = build_detector_model(read_network(model_path("mmod").read_bytes()))
>>> onnx.save(model, "mmod_human_face_detector.onnx")

Input ``tiled``: float32 ``(batch, 3, height, width)``, any height and width: the tiled image
pyramid as dlib's ``input_rgb_image_pyramid`` fills its tensor, i.e. already ``(pixel - mean)
/ 256`` with zeros between the tiles (``pyramid.py`` builds it; the pyramid is resized *after*
that scaling, so the scaling cannot move into the graph). Output ``taps``: float32
``(batch, 9, height', width')``, the last 9x9 convolution done along rows only, one map per
kernel row; ``detector.sum_taps`` adds them, shifted down by their row, into the detector's
score at each output position (dlib keeps positions scoring above 0).

What the numpy code around the graph needs from dlib's file travels inside the model, as JSON
under the metadata key ``openlfr.mmod`` (``detector_metadata``): the mean colour, the pyramid
padding, the detector windows, the non-max suppression thresholds, and how output positions
map to input positions (``input = output * stride + offset``, from each convolution's
``p * stride - padding + size // 2``: 8 and 14 here).

Every ``con`` + ``affine`` pair becomes one ``Conv`` with the affine folded in (as in
``graph.py``) and dlib's padding (0 for the 5x5 stride-2 convolutions, 2 for the 5x5 stride-1
ones, 4 for the final 9x9); ``relu`` is ``Relu``. Two rewrites, exact up to float rounding,
let ONNX Runtime use its blocked (NCHWc) convolutions everywhere, which it does only where
input channels are a multiple of 16: the 45-channel layers get 3 zero filters more
(``CHANNEL_ALIGN``), and the last convolution (one output channel: a matrix product one row
tall, run by ONNX Runtime through a 3645-row im2col buffer, a quarter of the network's time)
becomes a 1x9 convolution to its 9 kernel rows (16 outputs once ONNX Runtime pads them, 2 ms
at 540p), summed in numpy (0.3 ms); 81 taps by a 1x1 convolution cost 2 ms more to sum.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import helper

from openlfr.vision.onnx.graph import _fold_affine, _Graph, finish_model
from openlfr.vision.onnx.mmod import MmodNetwork, output_to_input

INPUT_NAME = "tiled"
OUTPUT_NAME = "taps"
METADATA_KEY = "openlfr.mmod"
# ONNX Runtime's fast (NCHWc) convolutions need input channels in multiples of 16 (8 with
# AVX2): dlib's 45-channel layers are padded to 48 with zero filters.
CHANNEL_ALIGN = 16


def detector_metadata(network: MmodNetwork) -> dict[str, Any]:
    """Everything besides the weights that detection needs, JSON-ready."""
    (y0, y1), (x0, x1) = output_to_input(network.layers, np.array([0, 1]), np.array([0, 1]))
    if (y0, y1) != (x0, x1):
        raise ValueError("the network maps rows and columns differently")
    options = network.options
    last = [layer for layer in network.layers if layer.kind == "con"][-1]
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
        # The graph stops before the last convolution's spatial sum (``detector.sum_taps``).
        "taps_kernel": int(last.config["size"]),
        "taps_padding": int(last.params["padding"]),
        "taps_bias": [float(v) for v in last.params["bias"]],
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
    convs = [(i, layer) for i, layer in enumerate(layers) if layer.kind == "con"]
    g = _Graph()
    x = INPUT_NAME
    in_pad = 0  # zero input channels the previous convolution added
    for n, (i, layer) in enumerate(convs):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        affine = nxt if nxt is not None and nxt.kind == "affine" else None
        weight, bias = _fold_affine(layer, affine)
        weight = np.pad(weight, ((0, 0), (0, in_pad), (0, 0), (0, 0)))
        pad, stride = layer.params["padding"], layer.config["stride"]
        if n == len(convs) - 1:
            if stride != 1 or weight.shape[2] != weight.shape[3] or 2 * pad + 1 != weight.shape[2]:
                raise ValueError("the last convolution must be square, stride 1, same size")
            g.nodes.append(_taps_node(g, x, weight))
            break
        # Output channels rounded up to a multiple of CHANNEL_ALIGN with zero filters: the
        # extra channels are relu(0) = 0 and the next convolution gives them zero weights.
        out_pad = -weight.shape[0] % CHANNEL_ALIGN
        weight = np.pad(weight, ((0, out_pad), (0, 0), (0, 0), (0, 0)))
        bias = np.pad(bias, (0, out_pad))
        x = g.conv(x, weight, bias, stride, pad)
        if layers[i + (2 if affine is not None else 1)].kind != "relu":
            raise ValueError("every convolution but the last must be followed by a relu")
        x = g.op("Relu", [x])
        in_pad = out_pad

    taps = weight.shape[0] * weight.shape[2]
    return finish_model(
        g,
        "mmod_human_face_detector",
        (INPUT_NAME, ["batch", 3, "h", "w"]),
        (OUTPUT_NAME, ["batch", taps, "out_h", "out_w"]),
        {METADATA_KEY: json.dumps(detector_metadata(network))},
    )


def _taps_node(g: _Graph, x: str, weight: np.ndarray) -> onnx.NodeProto:
    """The last convolution without its vertical sum: a 1xk ``Conv`` (padding k // 2 left and
    right, none above or below) giving, for each output window and kernel row ``ky``,
    ``sum_c,kx W[w, c, ky, kx] * x[c, y, x + kx - k // 2]`` (channel ``w * k + ky``), no bias.
    ``detector.sum_taps`` adds them up shifted by their row, plus the bias."""
    windows, channels, k, _ = weight.shape
    rows = weight.transpose(0, 2, 1, 3).reshape(windows * k, channels, 1, k)
    pad = k // 2
    return helper.make_node(
        "Conv",
        [x, g.const("taps", np.ascontiguousarray(rows))],
        [OUTPUT_NAME],
        name="taps",
        kernel_shape=[1, k],
        pads=[0, pad, 0, pad],
    )
