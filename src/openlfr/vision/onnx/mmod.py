"""dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``): its layers, its detection
options, and a parser that reads both from the file with ``DlibReader`` (no dlib needed).

The network is the ``net_type`` of dlib's Python binding (``tools/python/src/
cnn_face_detector.cpp``, trained by ``examples/dnn_mmod_face_detection_ex.cpp``)::

    con5d<N>    = con<N,5,5,2,2, X>                      (padding 0)
    con5<N>     = con<N,5,5,1,1, X>                      (padding 2)
    downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16, X>>>>>>>>>
    rcon5       = relu<affine<con5<45, X>>>
    net_type    = loss_mmod<con<1,9,9,1,1, rcon5<rcon5<rcon5<downsampler<
                    input_rgb_image_pyramid<pyramid_down<6>>>>>>>>

The shipped file was saved from the *training* network, so each ``affine`` is stored as the
batch normalisation it replaces (``bn_con2``): dlib's ``affine_`` converts it on load to
``gamma / sqrt(running_variance + eps)`` and ``beta - gamma' * running_mean``, and so does
``_read_bn``. Layer order in the file follows ``resnet.py``: the loss layer and its options,
one ``add_layer`` version per layer going down, the input layer, then each layer's fields
going up, each followed by its ``add_layer`` training state.

>>> network = read_network(model_path("mmod").read_bytes())
>>> network.options.windows, network.options.nms_iou
([DetectorWindow(width=80, height=80, label='')], 0.338...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from openlfr.vision.onnx.dlib_format import DlibFormatError, DlibReader
from openlfr.vision.onnx.resnet import (
    Layer,
    _check,
    _read_add_layer_state,
    _read_con,
    _read_input_add_layer_state,
)

# dlib's defaults for input_rgb_image_pyramid (input.h); the file's version of the input
# layer ("input_rgb_image_pyramid", not "...2") does not store them.
PYRAMID_PADDING = 10
PYRAMID_OUTER_PADDING = 11


@dataclass(frozen=True)
class DetectorWindow:
    """One sliding window of ``loss_mmod``: boxes are this size in the pyramid level's pixels."""

    width: int
    height: int
    label: str = ""


@dataclass
class MmodOptions:
    """The parts of dlib's ``mmod_options`` that detection uses (the rest is for training)."""

    windows: list[DetectorWindow]
    # test_box_overlap for non-max suppression: a box is dropped when it overlaps a kept one
    # by more than nms_iou (intersection over the *bounding box* of both, dlib's definition)
    # or covers more than nms_covered of either.
    nms_iou: float
    nms_covered: float
    loss_per_false_alarm: float = 1.0


@dataclass
class MmodNetwork:
    """Layers in forward order (input first, the last convolution last) and the loss options."""

    layers: list[Layer]
    options: MmodOptions
    mean_rgb: np.ndarray = field(default_factory=lambda: np.zeros(3))
    padding: int = PYRAMID_PADDING
    outer_padding: int = PYRAMID_OUTER_PADDING


def architecture() -> list[Layer]:
    """dlib's ``net_type`` as a flat list, input first (fresh objects each call)."""
    layers = [Layer("input")]
    for filters in (16, 32, 32):  # downsampler
        layers += [
            Layer("con", {"filters": filters, "size": 5, "stride": 2}),
            Layer("affine"),
            Layer("relu"),
        ]
    for _ in range(3):  # rcon5
        layers += [
            Layer("con", {"filters": 45, "size": 5, "stride": 1}),
            Layer("affine"),
            Layer("relu"),
        ]
    layers.append(Layer("con", {"filters": 1, "size": 9, "stride": 1}))
    return layers


def read_network(data: bytes | bytearray | memoryview) -> MmodNetwork:
    """Parse the whole file; raises ``DlibFormatError`` if anything is not what dlib writes
    for this detector (a name, a version, a filter count, a stride, padding, trailing bytes)."""
    reader = DlibReader(data)
    layers = architecture()

    reader.expect_int(1, what="add_loss_layer version")
    reader.expect_string("loss_mmod_")
    options = _read_options(reader)

    # Going down: one add_layer version per layer, the innermost one over the input layer.
    versions = {
        i: reader.expect_int(1, 2, what="add_layer version") for i in range(len(layers) - 1, 1, -1)
    }
    input_version = reader.expect_int(2, 3, what="add_layer version (over the input layer)")
    network = MmodNetwork(layers, options)
    _read_input(reader, network)

    for i in range(1, len(layers)):
        _READERS[layers[i].kind](reader, layers[i])
        if i == 1:
            _read_input_add_layer_state(reader, input_version)
        else:
            _read_add_layer_state(reader, versions[i])
    if not reader.at_end:
        raise DlibFormatError(f"{len(reader) - reader.pos} unexpected bytes after the network")
    _check_shapes(layers)
    if len(options.windows) != layers[-1].params["weight"].shape[0]:
        raise DlibFormatError(
            f"{len(options.windows)} detector windows but the last layer has "
            f"{layers[-1].params['weight'].shape[0]} outputs"
        )
    return network


def _read_options(reader: DlibReader) -> MmodOptions:
    # mmod_options (loss.h): version 1 holds a single unlabelled window, version 2 a vector of
    # (version, width, height[, label]). Versions 3 and 4 add image-pyramid and bounding-box
    # regression switches that this converter does not implement, so they are refused.
    version = reader.expect_int(1, 2, what="mmod_options version (3 and 4 are not supported)")
    if version == 1:
        windows = [DetectorWindow(reader.uint(), reader.uint())]
    else:
        windows = []
        for _ in range(reader.uint()):
            window_version = reader.expect_int(1, 2, what="detector window version")
            width, height = reader.uint(), reader.uint()
            label = reader.string(max_len=256) if window_version == 2 else ""
            windows.append(DetectorWindow(width, height, label))
    loss_per_false_alarm = reader.float()
    reader.float()  # loss_per_missed_target
    reader.float()  # truth_match_iou_threshold
    nms_iou, nms_covered = reader.float(), reader.float()
    reader.float(), reader.float()  # overlaps_ignore
    if not windows:
        raise DlibFormatError("the detector has no windows")
    return MmodOptions(windows, nms_iou, nms_covered, loss_per_false_alarm)


def _read_input(reader: DlibReader, network: MmodNetwork) -> None:
    version = reader.expect_string("input_rgb_image_pyramid", "input_rgb_image_pyramid2")
    network.mean_rgb = np.array([reader.float() for _ in range(3)], dtype=np.float64)
    if version == "input_rgb_image_pyramid2":
        network.padding, network.outer_padding = reader.uint(), reader.uint()
    network.layers[0].params = {"mean_rgb": network.mean_rgb, "scale": 1.0 / 256.0}


def _read_bn(reader: DlibReader, layer: Layer) -> None:
    """A ``bn_con2`` layer, turned into the ``affine_`` that dlib's detector runs instead."""
    reader.expect_string("bn_con2")
    params = reader.tensor().ravel()
    gamma_shape = reader.alias_tensor()
    _check(layer, "beta shape", reader.alias_tensor(), gamma_shape)
    k = gamma_shape[1]
    _check(layer, "gamma shape", gamma_shape, (1, k, 1, 1))
    _check(layer, "parameter count", params.size, 2 * k)
    reader.tensor(), reader.tensor()  # means, invstds: the last training batch's
    running_mean = reader.tensor().ravel()
    running_variance = reader.tensor().ravel()
    _check(layer, "running statistics", (running_mean.size, running_variance.size), (k, k))
    reader.uint(), reader.uint()  # num_updates, running_stats_window_size
    for _ in range(4):  # learning-rate and weight-decay multipliers
        reader.float()
    eps = reader.float()
    # affine_(const bn_&) in layers.h, in float32 like dlib.
    gamma = params[:k] / np.sqrt(running_variance + np.float32(eps))
    beta = params[k:] - gamma * running_mean
    layer.params = {"gamma": gamma.astype(np.float32), "beta": beta.astype(np.float32)}


def _read_relu(reader: DlibReader, layer: Layer) -> None:
    reader.expect_string("relu_")


# The architecture says affine; the shipped file holds the bn_con2 it was trained with.
_READERS = {"con": _read_con, "affine": _read_bn, "relu": _read_relu}


def _check_shapes(layers: list[Layer]) -> None:
    channels = 3
    for layer in layers:
        if layer.kind == "con":
            weight = layer.params["weight"]
            if weight.shape[1] != channels:
                raise DlibFormatError(f"con expects {weight.shape[1]} channels, gets {channels}")
            channels = weight.shape[0]
        elif layer.kind == "affine" and layer.params["gamma"].size != channels:
            raise DlibFormatError(f"affine has {layer.params['gamma'].size} channels")


def output_to_input(layers: list[Layer], row: np.ndarray, col: np.ndarray) -> tuple:
    """Map output-map positions to input-tensor positions as dlib's ``output_tensor_to_input_
    tensor`` does: through each convolution, top down, ``p * stride - padding + size // 2``."""
    y, x = row.astype(np.float64), col.astype(np.float64)
    for layer in reversed(layers):
        if layer.kind == "con":
            stride, pad, size = (
                layer.config["stride"],
                layer.params["padding"],
                layer.config["size"],
            )
            y = y * stride - pad + size // 2
            x = x * stride - pad + size // 2
    return y, x
