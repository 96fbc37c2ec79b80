"""dlib's MMOD CNN face detector on ONNX Runtime: dlib's boxes and confidences, faster.

>>> detector = onnx_mmod_detector()             # loads (and converts on first use) once
>>> found = detector.detect(rgb, upsample=0)     # [MmodBox(left, top, right, bottom, score)]

What ``cnn_face_detection_model_v1(rgb, upsample)`` does in dlib, step by step here:

1. ``upsample`` times ``pyramid_up`` (``pyramid.pyramid_up``, dlib's arithmetic exactly);
2. the tiled pyramid tensor (``pyramid.build_tiled``): ``(pixel - mean) / 256``, levels 5/6
   apart, zero padding;
3. the network (the converted ONNX graph) once over the whole tensor;
4. ``loss_mmod_::to_label``: every output position scoring above 0 becomes a detector
   window centred on ``position * 8 + 14`` in the tensor (``centered_drect``: 80x80 means
   corners 39.5 either side), mapped back through the tile it falls in
   (``TiledLayout.tensor_to_image``), rounded to integers; sorted by score, each box kept
   unless it overlaps a kept one (dlib's ``test_box_overlap``: intersection over the
   bounding box of both above 0.338, or covering all of either);
5. each box mapped back down the ``upsample`` levels (``pyramid.rect_down``).

Boxes are dlib ``rectangle`` s: inclusive integer corners, possibly reaching outside the
image (as dlib's do).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from openlfr.vision.onnx.pyramid import (
    build_tiled,
    pyramid_up,
    rect_down,
    round_half_away,
    tiled_layout,
)
from openlfr.vision.onnx.runtime import inference_session


class MmodBox(NamedTuple):
    """One detection as dlib reports it: inclusive corners and the detector's confidence."""

    left: int
    top: int
    right: int
    bottom: int
    score: float


@dataclass(frozen=True)
class DetectorSettings:
    """What the converted model carries besides its weights (``mmod_graph.detector_metadata``)."""

    mean_rgb: np.ndarray
    padding: int
    outer_padding: int
    windows: tuple[tuple[int, int], ...]
    nms_iou: float
    nms_covered: float
    output_stride: float
    output_offset: float
    min_tensor_size: int
    taps_kernel: int
    taps_padding: int
    taps_bias: np.ndarray

    @classmethod
    def from_json(cls, text: str) -> DetectorSettings:
        meta: dict[str, Any] = json.loads(text)
        return cls(
            mean_rgb=np.array(meta["mean_rgb"], dtype=np.float64),
            padding=int(meta["padding"]),
            outer_padding=int(meta["outer_padding"]),
            windows=tuple((int(w), int(h)) for w, h, _ in meta["windows"]),
            nms_iou=float(meta["nms_iou"]),
            nms_covered=float(meta["nms_covered"]),
            output_stride=float(meta["output_stride"]),
            output_offset=float(meta["output_offset"]),
            min_tensor_size=int(meta["min_tensor_size"]),
            taps_kernel=int(meta["taps_kernel"]),
            taps_padding=int(meta["taps_padding"]),
            taps_bias=np.array(meta["taps_bias"], dtype=np.float32),
        )


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0] + 1) * (boxes[..., 3] - boxes[..., 1] + 1)


def non_max_suppression(
    boxes: np.ndarray, scores: np.ndarray, iou: float, covered: float
) -> list[int]:
    """Indices of the boxes dlib's ``to_label`` keeps, best first.

    ``boxes`` are integer ``(n, 4)`` inclusive rectangles. dlib's overlap test
    (``test_box_overlap``) divides the intersection by the area of the smallest rectangle
    containing *both* boxes, not by their union, and also fires when the intersection covers
    more than ``covered`` of either box.
    """
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    for i in order:
        if kept:
            k = boxes[kept]
            b = boxes[i]
            w = np.minimum(k[:, 2], b[2]) - np.maximum(k[:, 0], b[0]) + 1
            h = np.minimum(k[:, 3], b[3]) - np.maximum(k[:, 1], b[1]) + 1
            inner = np.where((w > 0) & (h > 0), w * h, 0).astype(np.float64)
            outer = (np.maximum(k[:, 2], b[2]) - np.minimum(k[:, 0], b[0]) + 1) * (
                np.maximum(k[:, 3], b[3]) - np.minimum(k[:, 1], b[1]) + 1
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                hit = (inner > 0) & (
                    (inner / outer > iou)
                    | (inner / _area(k) > covered)
                    | (inner / _area(b) > covered)
                )
            if hit.any():
                continue
        kept.append(int(i))
    return kept


def sum_taps(taps: np.ndarray, bias: np.ndarray, kernel: int, padding: int) -> np.ndarray:
    """The last convolution's output ``(windows, rows, cols)`` from the graph's ``(windows *
    kernel, rows, cols)`` taps (the convolution along rows, one map per kernel row): each
    shifted by its row and added."""
    windows = bias.size
    _, rows, cols = taps.shape
    taps = taps.reshape(windows, kernel, rows, cols)
    # out[y] = sum over ky of tap[ky][y + ky - padding], zero outside: accumulated in a frame
    # tall enough for every shift, then cut out.
    frame = np.zeros((windows, rows + 2 * kernel, cols), dtype=np.float32)
    for ky in range(kernel):
        top = kernel - ky + padding
        frame[:, top : top + rows] += taps[:, ky]
    out = frame[:, kernel : kernel + rows]
    out += bias.astype(np.float32)[:, None, None]
    return out


def decode(
    scores: np.ndarray, rows: int, cols: int, settings: DetectorSettings, threshold: float = 0.0
) -> list[MmodBox]:
    """dlib's detections in an image of ``rows`` x ``cols`` from the network's output
    ``(windows, out_rows, out_cols)`` for its tiled pyramid."""
    layout = tiled_layout(rows, cols, settings.padding, settings.outer_padding)
    found_boxes, found_scores = [], []
    for k, (width, height) in enumerate(settings.windows):
        r, c = np.nonzero(scores[k] > threshold)
        if r.size == 0:
            continue
        y = r * settings.output_stride + settings.output_offset
        x = c * settings.output_stride + settings.output_offset
        half_w, half_h = (width - 1) / 2, (height - 1) / 2  # centered_drect
        left, top, right, bottom = layout.tensor_to_image(
            x - half_w, y - half_h, x + half_w, y + half_h
        )
        # drectangle -> rectangle: each corner rounded, halves away from zero.
        found_boxes.append(round_half_away(np.stack([left, top, right, bottom], axis=1)))
        found_scores.append(scores[k][r, c].astype(np.float64))
    if not found_boxes:
        return []
    boxes = np.concatenate(found_boxes).astype(np.int64)
    confidences = np.concatenate(found_scores)
    kept = non_max_suppression(boxes, confidences, settings.nms_iou, settings.nms_covered)
    return [MmodBox(*(int(v) for v in boxes[i]), float(confidences[i])) for i in kept]


class OnnxMmodDetector:
    """An ``onnxruntime.InferenceSession`` over the converted detector (any image size)."""

    def __init__(self, model: bytes, *, threads: int | None = None) -> None:
        from openlfr.vision.onnx.mmod_graph import METADATA_KEY

        self.session = inference_session(model, threads)
        self.input_name = self.session.get_inputs()[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        self.settings = DetectorSettings.from_json(meta[METADATA_KEY])

    def taps(self, tiled: np.ndarray) -> np.ndarray:
        """The graph's output for one tiled tensor: the last convolution's taps."""
        return self.session.run(None, {self.input_name: tiled[None]})[0][0]

    def scores(self, tiled: np.ndarray) -> np.ndarray:
        """The network's output ``(windows, out_rows, out_cols)`` for one tiled tensor."""
        s = self.settings
        return sum_taps(self.taps(tiled), s.taps_bias, s.taps_kernel, s.taps_padding)

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list[MmodBox]:
        """Faces in an RGB ``uint8`` image, as dlib's ``cnn_face_detection_model_v1(rgb,
        upsample)`` finds them, best first. A greyscale image counts as RGB with three equal
        channels, as dlib's ``assign_image`` makes it."""
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(
                f"expected a uint8 RGB (rows, cols, 3) or greyscale image, got {rgb.dtype} "
                f"{rgb.shape}"
            )
        image = np.ascontiguousarray(rgb)
        for _ in range(upsample):
            image = pyramid_up(image)
        rows, cols = image.shape[:2]
        s = self.settings
        layout = tiled_layout(rows, cols, s.padding, s.outer_padding)
        if min(layout.rows, layout.cols) < s.min_tensor_size:
            return []  # too small for the network's windows: no face fits anyway
        tiled = build_tiled(image, layout, s.mean_rgb)
        found = decode(self.scores(tiled), rows, cols, s)
        if upsample and found:
            boxes = rect_down(np.array([f[:4] for f in found]), upsample)
            found = [
                MmodBox(*(int(v) for v in b), f.score) for b, f in zip(boxes, found, strict=True)
            ]
        return found


Precision = Literal["fp32", "int8"]


def detector_precision() -> Precision:
    """``$OPENLFR_DETECTOR_PRECISION``: ``fp32`` (the default: dlib's boxes and confidences)
    or ``int8`` (faster, but about one box in ten one output stride off dlib's; mmod_int8.py)."""
    value = os.environ.get("OPENLFR_DETECTOR_PRECISION", "fp32").strip().lower()
    if value not in ("fp32", "int8"):
        raise ValueError(f"OPENLFR_DETECTOR_PRECISION must be fp32 or int8, not {value!r}")
    return "int8" if value == "int8" else "fp32"


_detector: tuple[int, Precision, OnnxMmodDetector] | None = None
# As in runtime.py: sessions inherited through fork() are kept, never used or destroyed.
_inherited: list[OnnxMmodDetector] = []


def onnx_mmod_detector() -> OnnxMmodDetector:
    """The process's detector, made on first use from the verified converted model of the
    precision ``detector_precision`` asks for."""
    global _detector
    pid = os.getpid()
    precision = detector_precision()
    if _detector is None or _detector[:2] != (pid, precision):
        from openlfr.vision.onnx.convert import DETECTOR, DETECTOR_INT8, load_verified_model

        if _detector is not None and _detector[0] != pid:
            _inherited.append(_detector[2])
        source = DETECTOR_INT8 if precision == "int8" else DETECTOR
        _detector = (pid, precision, OnnxMmodDetector(load_verified_model(model=source)))
    return _detector[2]
