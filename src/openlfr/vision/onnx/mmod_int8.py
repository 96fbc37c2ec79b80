"""The MMOD detector's network with int8 convolutions: the detector about 1.6 times faster on a
CPU with VNNI, but *not* dlib's boxes to the pixel (opt-in, ``OPENLFR_DETECTOR_PRECISION=int8``).

>>> data = quantize_detector(build_detector_model(network))   # serialised ONNX, int8

ONNX Runtime's static quantization (``quantize_static``, QDQ format, weights int8 per output
channel, activations uint8 per tensor, ranges by min/max) over every convolution but the
first and the last: ONNX Runtime then runs the middle five as ``QLinearConv`` in NHWC with
its u8s8 (VNNI) kernels. The first (3 input channels) and the last (the row taps) stay fp32:
quantized, they are slower (the first) and move more boxes (both).

The activation ranges come from running the fp32 network on images every installation has:
Grace Hopper's portrait, which matplotlib (a dependency) ships as sample data, in a few
variations (flipped, darker, brighter, smaller inside a textured frame). Nothing is
downloaded. The ranges come from ONNX Runtime on the machine that converts, so the file's
checksum records what was made there, not a value fixed in advance.

Why it is not the default: dlib's score maps have flat peaks (neighbouring positions within
about 0.01 of each other), and int8 rounding moves about one box in ten by one output stride
(8 pixels at that pyramid level: intersection over union 0.7-0.8), which fails the equality
bar of ``tests/test_onnx_mmod.py``; boxes near the threshold of 0 may also come or go. See
docs/onnx.md for the figures.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx

from openlfr.vision.onnx.mmod_graph import INPUT_NAME, METADATA_KEY


def calibration_images() -> list[np.ndarray]:
    """RGB ``uint8`` images with a face, made from matplotlib's sample portrait."""
    import cv2
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise FileNotFoundError(f"cannot read matplotlib's sample image {path}")
    face = np.ascontiguousarray(bgr[:, :, ::-1])
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:540, 0:960]
    frame = np.stack([x * 0.2, y * 0.3, (x + y) * 0.1], -1) + rng.normal(40, 15, (540, 960, 3))
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    small = cv2.resize(face, (256, 300), interpolation=cv2.INTER_AREA)
    frame[120:420, 600:856] = small
    return [
        face,
        np.ascontiguousarray(face[:, ::-1]),
        (face * 0.5).astype(np.uint8),
        np.clip(face.astype(np.int16) + 70, 0, 255).astype(np.uint8),
        frame,
    ]


def quantize_detector(model: onnx.ModelProto) -> bytes:
    """``model`` (``build_detector_model``'s fp32 graph) with its middle convolutions int8."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from openlfr.vision.onnx.pyramid import build_tiled, tiled_layout

    meta = json.loads({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
    mean = np.array(meta["mean_rgb"], dtype=np.float64)
    tensors = [
        build_tiled(rgb, tiled_layout(*rgb.shape[:2]), mean)[None] for rgb in calibration_images()
    ]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._left = iter(tensors)

        def get_next(self) -> dict[str, np.ndarray] | None:
            tensor = next(self._left, None)
            return None if tensor is None else {INPUT_NAME: tensor}

    convs = [node.name for node in model.graph.node if node.op_type == "Conv"]
    with tempfile.TemporaryDirectory(prefix="openlfr-quantize-") as tmp:
        source, target = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        onnx.save(model, source)
        quantize_static(
            source,
            target,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=[convs[0], convs[-1]],
        )
        return target.read_bytes()
